package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/buildinfo"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// StatusCmd shows the state of the vault without reading any value. It
// makes no network call, unless --check asks for a diff.
type StatusCmd struct {
	Check bool `help:"Compare the selected project with its sync server first (a diff), so drift is current." json:"check,omitempty"`
	Scope `embed:""`
}

// AccountStatus is the sync account this vault is signed in to.
type AccountStatus struct {
	Email    string `json:"email"`
	Server   string `json:"server"`
	SignedIn bool   `json:"signed_in"`
}

// ProjectSyncStatus is one remote project's sync state as last recorded:
// no request is made to show it.
type ProjectSyncStatus struct {
	Workspace string     `json:"workspace"`
	Project   string     `json:"project"`
	Server    string     `json:"server"`
	AutoPush  bool       `json:"auto_push"`
	LastPull  *time.Time `json:"last_pull,omitempty"`
	LastPush  *time.Time `json:"last_push,omitempty"`
	// CheckedAt is when the drift was last found (diff, pull or push).
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	// Drift lists the names that were out of sync then.
	Drift []vault.Drift `json:"drift"`
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
	Suspended []SuspendedEntry `json:"suspended"`
	// RotateUpstream lists every secret, in every workspace and project,
	// that a member removed from its workspace could read: replace each
	// at its provider, then `secrets set` the new value.
	RotateUpstream      []RotateEntry `json:"rotate_upstream"`
	RotateUpstreamCount int           `json:"rotate_upstream_count"`
	// Account is the sync account, if the vault has one.
	Account *AccountStatus `json:"account,omitempty"`
	// Sync lists every project of a remote workspace with its last pull,
	// push and drift.
	Sync          []ProjectSyncStatus `json:"sync,omitempty"`
	IndexRevision uint64              `json:"index_revision"`
	Next          []string            `json:"next,omitempty"`
	Notes
}

func (c *StatusCmd) Run(env *Env) (*StatusResult, error) {
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	res := &StatusResult{Version: buildinfo.Version(), Paths: pathsOf(dirs), ValueRelease: []ReleaseEntry{}, RotateUpstream: []RotateEntry{}}
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
	if c.Check {
		if ix, err = c.check(env, st, ix, res); err != nil {
			return nil, err
		}
	}
	res.Account, res.Sync = syncStatus(ix)
	res.IndexRevision = ix.Revision
	res.Workspaces = len(ix.Workspaces)
	for _, w := range ix.Workspaces {
		res.Projects += len(w.Projects)
	}
	res.ValueRelease = valueReleases(ix)
	res.Suspended = suspendedBindings(ix)
	res.RotateUpstream = rotateUpstream(ix)
	res.RotateUpstreamCount = len(res.RotateUpstream)
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

// check runs a diff of the selected project, which records its drift, and
// returns the index as it is after.
func (c *StatusCmd) check(env *Env, st *vault.Store, ix *vault.Index, res *StatusResult) (*vault.Index, error) {
	sel, err := c.Scope.resolve(env, ix.Current)
	if err != nil {
		return nil, err
	}
	if err := needProject(sel); err != nil {
		return nil, err
	}
	p, err := ix.Project(sel.Selection)
	if err != nil {
		return nil, err
	}
	if ix.Workspaces[sel.Workspace].Remote == nil || p.Sync == nil {
		res.warn("--check: %s/%s is not synced to a server; nothing to compare", sel.Workspace, sel.Project)
		return ix, nil
	}
	conn, err := env.syncConn()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Diff(env.ctx(), sel.Selection, nil); err != nil {
		return nil, err
	}
	return st.Index()
}

// syncStatus reads the account and every remote project's recorded sync
// state from the index.
func syncStatus(ix *vault.Index) (*AccountStatus, []ProjectSyncStatus) {
	var acct *AccountStatus
	if ix.Account != nil {
		acct = &AccountStatus{Email: ix.Account.Email, Server: ix.Account.Server, SignedIn: ix.Account.SignedIn()}
	}
	var out []ProjectSyncStatus
	for _, wn := range vault.SortedKeys(ix.Workspaces) {
		w := ix.Workspaces[wn]
		if w.Remote == nil {
			continue
		}
		for _, pn := range vault.SortedKeys(w.Projects) {
			ps := w.Projects[pn].Sync
			if ps == nil {
				continue
			}
			drift := append([]vault.Drift{}, ps.Drift...)
			out = append(out, ProjectSyncStatus{Workspace: wn, Project: pn, Server: w.Remote.Server, AutoPush: ps.AutoPush,
				LastPull: ps.LastPull, LastPush: ps.LastPush, CheckedAt: ps.CheckedAt, Drift: drift})
		}
	}
	return acct, out
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

// RotateEntry is a secret marked rotate_upstream.
type RotateEntry struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"`
	Name      string `json:"name"`
}

// rotateUpstream lists every secret marked rotate_upstream.
func rotateUpstream(ix *vault.Index) []RotateEntry {
	out := []RotateEntry{}
	ix.EachSecret(func(sel vault.Selection, name string, s *vault.Secret) bool {
		if s.RotateUpstream {
			out = append(out, RotateEntry{Workspace: sel.Workspace, Project: sel.Project, Name: name})
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
	if r.RotateUpstreamCount > 0 {
		byProject := map[string][]string{}
		for _, e := range r.RotateUpstream {
			p := e.Workspace + "/" + e.Project
			byProject[p] = append(byProject[p], e.Name)
		}
		fmt.Fprintf(w, "Rotate:     %d secret(s) a removed member could read\n", r.RotateUpstreamCount)
		for _, p := range vault.SortedKeys(byProject) {
			writeRotateUpstream(w, p, byProject[p])
		}
	}
	if r.Account != nil {
		signed := "signed in"
		if !r.Account.SignedIn {
			signed = "signed out"
		}
		fmt.Fprintf(w, "Account:    %s on %s (%s)\n", r.Account.Email, r.Account.Server, signed)
	}
	for _, p := range r.Sync {
		fmt.Fprintf(w, "Sync:       %s/%s: last pull %s, last push %s, checked %s\n", p.Workspace, p.Project,
			timeOrNever(p.LastPull), timeOrNever(p.LastPush), timeOrNever(p.CheckedAt))
		if p.Workspace != r.Workspace || p.Project != r.Project {
			if len(p.Drift) > 0 {
				fmt.Fprintf(w, "            %d out of sync\n", len(p.Drift))
			}
			continue
		}
		for _, d := range p.Drift {
			fmt.Fprintln(w, driftLine(d.Name, d.State))
		}
	}
	fmt.Fprintf(w, "Version:    %s (%s/%s)\n", r.Version, runtime.GOOS, runtime.GOARCH)
	return nil
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}
