package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// StatusCmd shows the state of the vault without reading any value.
type StatusCmd struct {
	Scope `embed:""`
}

// BackendStatus says which backend holds values and why.
type BackendStatus struct {
	Kind      string `json:"kind"`
	Reason    string `json:"reason"`
	Reachable bool   `json:"reachable"`
	Detail    string `json:"detail,omitempty"`
}

// ReleaseEntry names a secret that a human approved for release as a value
// (env or the OpenClaw resolver).
type ReleaseEntry struct {
	Workspace string   `json:"workspace"`
	Project   string   `json:"project"`
	Name      string   `json:"name"`
	Modes     []string `json:"modes"`
}

// SuspendedEntry is a binding the echo tripwire suspended.
type SuspendedEntry struct {
	Workspace string         `json:"workspace"`
	Project   string         `json:"project"`
	Name      string         `json:"name"`
	Binding   policy.Binding `json:"binding"`
	Reapprove string         `json:"reapprove"`
}

// StatusResult is the vault at a glance.
type StatusResult struct {
	Initialised   bool           `json:"initialised"`
	Version       string         `json:"version"`
	Paths         Paths          `json:"paths"`
	VaultID       string         `json:"vault_id,omitempty"`
	Backend       *BackendStatus `json:"backend,omitempty"`
	Workspace     string         `json:"workspace,omitempty"`
	Project       string         `json:"project,omitempty"`
	ProjectSource string         `json:"project_source,omitempty" jsonschema:"enum=flag,enum=link,enum=current"`
	LinkFile      string         `json:"link_file,omitempty"`
	Secrets       int            `json:"secrets"`
	Workspaces    int            `json:"workspaces"`
	Projects      int            `json:"projects"`
	Allowlist     int            `json:"allowlist"`
	// ValueRelease lists every secret whose value may leave the broker
	// (env value mode, OpenClaw resolver), so nobody is surprised.
	ValueRelease []ReleaseEntry `json:"value_release"`
	// Suspended lists every binding the echo tripwire suspended, in every
	// workspace and project, with the command that re-approves it.
	Suspended     []SuspendedEntry `json:"suspended"`
	IndexRevision uint64           `json:"index_revision"`
	Next          []string         `json:"next,omitempty"`
	Notes
}

func (c *StatusCmd) Run(env *Env) (*StatusResult, error) {
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	res := &StatusResult{Version: Version, Paths: pathsOf(dirs), ValueRelease: []ReleaseEntry{}}
	st, err := env.Store()
	if errors.Is(err, vault.ErrNotInitialised) {
		res.Next = []string{"agentsecrets init"}
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	res.Initialised = true
	res.VaultID = st.Config.VaultID
	res.Backend = backendStatus(env, st)
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	res.IndexRevision = ix.Revision
	res.Workspaces = len(ix.Workspaces)
	for _, w := range ix.Workspaces {
		res.Projects += len(w.Projects)
	}
	res.ValueRelease = valueReleases(ix)
	res.Suspended = suspendedBindings(ix)
	sel, err := c.Scope.resolve(env, ix.Current)
	if err != nil {
		return nil, err
	}
	res.Workspace, res.Project, res.ProjectSource, res.LinkFile = sel.Workspace, sel.Project, sel.Source, sel.LinkPath
	if w, ok := ix.Workspaces[sel.Workspace]; ok {
		res.Allowlist = len(w.Allowlist)
		if p, ok := w.Projects[sel.Project]; ok {
			res.Secrets = len(p.Secrets)
		} else {
			res.warn("project %s/%s does not exist; run `agentsecrets project list`", sel.Workspace, sel.Project)
		}
	} else {
		res.warn("workspace %s does not exist; run `agentsecrets workspace list`", sel.Workspace)
	}
	if !res.Backend.Reachable {
		res.Next = append(res.Next, "agentsecrets doctor")
	}
	return res, nil
}

// valueReleases lists every secret, in every workspace and project, whose
// value a human approved for release: the list must be complete to be of
// use, so it is not limited to the selected project.
func valueReleases(ix *vault.Index) []ReleaseEntry {
	out := []ReleaseEntry{}
	ix.EachSecret(func(sel vault.Selection, name string, s *vault.Secret) bool {
		if len(s.Releases) > 0 {
			out = append(out, ReleaseEntry{Workspace: sel.Workspace, Project: sel.Project, Name: name, Modes: s.Releases})
		}
		return true
	})
	return out
}

// suspendedBindings lists every suspended binding of the vault.
func suspendedBindings(ix *vault.Index) []SuspendedEntry {
	out := []SuspendedEntry{}
	ix.EachSecret(func(sel vault.Selection, name string, s *vault.Secret) bool {
		for _, b := range s.Bindings {
			if b.Suspended() {
				out = append(out, SuspendedEntry{Workspace: sel.Workspace, Project: sel.Project, Name: name, Binding: b,
					Reapprove: policy.BindCommand(name, unsuspended(b), sel.Workspace, sel.Project)})
			}
		}
		return true
	})
	return out
}

// backendStatus checks reachability without prompting: the keychain is
// probed; the file backend is only checked for presence, because opening it
// needs the passphrase.
func backendStatus(env *Env, st *vault.Store) *BackendStatus {
	b := &BackendStatus{Kind: st.Config.Backend, Reason: st.Config.BackendReason}
	switch st.Config.Backend {
	case vault.KindKeychain:
		kc := vault.NewKeychain(st.Config.VaultID, env.Getenv)
		err := kc.Available()
		if err == nil {
			err = kc.Probe(env.ctx())
		}
		if err != nil {
			b.Detail = errcode.Classify(err).Message
		} else {
			b.Reachable = true
		}
	case vault.KindFile:
		if _, err := os.Stat(st.Dirs.VaultFile()); err != nil {
			b.Detail = "vault.enc is missing"
		} else {
			b.Reachable = true
			b.Detail = "encrypted file " + filepath.Base(st.Dirs.VaultFile()) + " present (opening it needs the passphrase)"
		}
	}
	return b
}

func (r *StatusResult) WriteText(w io.Writer) error {
	if !r.Initialised {
		fmt.Fprintf(w, "No vault in %s.\nRun: agentsecrets init\n", r.Paths.Data)
		return nil
	}
	reach := "reachable"
	if !r.Backend.Reachable {
		reach = "NOT reachable: " + r.Backend.Detail
	}
	fmt.Fprintf(w, "Vault:      %s\n", r.Paths.Data)
	fmt.Fprintf(w, "Backend:    %s, %s (%s)\n", r.Backend.Kind, reach, r.Backend.Reason)
	fmt.Fprintf(w, "Project:    %s/%s (from %s)\n", r.Workspace, r.Project, r.ProjectSource)
	fmt.Fprintf(w, "Secrets:    %d in this project; %d workspaces, %d projects\n", r.Secrets, r.Workspaces, r.Projects)
	fmt.Fprintf(w, "Allowlist:  %d hosts\n", r.Allowlist)
	if len(r.ValueRelease) == 0 {
		fmt.Fprintln(w, "Release:    no secret may be released as a value")
	}
	for _, e := range r.ValueRelease {
		fmt.Fprintf(w, "Release:    %s/%s/%s: value released to %s\n", e.Workspace, e.Project, e.Name, strings.Join(e.Modes, ", "))
	}
	for _, e := range r.Suspended {
		fmt.Fprintf(w, "SUSPENDED:  %s/%s/%s → %s (%s); re-approve: %s\n", e.Workspace, e.Project, e.Name, e.Binding.Target(), e.Binding.SuspendReason, e.Reapprove)
	}
	fmt.Fprintf(w, "Version:    %s (%s/%s)\n", r.Version, runtime.GOOS, runtime.GOARCH)
	return nil
}
