package vault

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// IndexFormat is the on-disk format version of index.json.
const IndexFormat = 1

// Index is everything agentsecrets knows about secrets except their values:
// names, versions, timestamps, keyed fingerprints and policy. It is safe to
// print, back up and diff; the canary tests prove no value reaches it.
type Index struct {
	Format int `json:"format"`
	// Revision increases with every write, so a long-running reader (the
	// proxy) can tell cheaply that something changed.
	Revision   uint64                `json:"revision"`
	Current    Selection             `json:"current"`
	Approval   policy.Approval       `json:"approval"`
	Workspaces map[string]*Workspace `json:"workspaces"`
	// Pending lists backend keys a write in progress may leave without an
	// index entry: the keys of new secrets, written here before their
	// values, and the keys of deleted ones, written here in the same update
	// that drops their names. The write clears them when it completes, so
	// a key still listed means a crash, and doctor checks it for an
	// orphaned value (a keychain cannot be listed).
	Pending []string `json:"pending,omitempty"`
	// Account is the sync account this vault is signed in to, if any.
	Account *Account `json:"account,omitempty"`
	// Teams is what this device knows of the members of remote
	// workspaces, by workspace id: pinned public keys and the invites it
	// holds the code of. Keyed by id, not local name, because a device
	// pins an inviter's keys when it joins, before the workspace is known
	// locally.
	Teams map[string]*Team `json:"teams,omitempty"`
}

// Selection names a workspace and project.
type Selection struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"`
}

// Workspace is a namespace of projects sharing one allowlist.
type Workspace struct {
	CreatedAt time.Time           `json:"created_at"`
	Allowlist []policy.AllowEntry `json:"allowlist"`
	// AllowlistLog is every allowlist change, oldest first, written in the
	// same index update as the change itself.
	AllowlistLog []policy.AllowlistChange `json:"allowlist_log,omitempty"`
	Projects     map[string]*Project      `json:"projects"`
	// Remote links the workspace to a workspace on a sync server; nil for a
	// local-only workspace.
	Remote *RemoteWorkspace `json:"remote,omitempty"`
}

// Project groups secrets.
type Project struct {
	CreatedAt time.Time          `json:"created_at"`
	Secrets   map[string]*Secret `json:"secrets"`
	// Sync is the project's sync state in a remote workspace.
	Sync *ProjectSync `json:"sync,omitempty"`
}

// Secret is the metadata of one stored value.
type Secret struct {
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Fingerprint is HMAC-SHA256 under the vault's local fingerprint key
	// (kept in the backend, not here) of the value and, from scheme 2, the
	// workspace, project and name (crypto.SecretFingerprint).
	Fingerprint string `json:"fingerprint"`
	// FingerprintScheme is 2 for crypto.SecretFingerprint. Absent means 1,
	// the unsalted crypto.Fingerprint of indexes written before; such a
	// fingerprint is upgraded by the next write of the secret (a `secrets
	// set` of the same value included) or by `doctor --repair`.
	FingerprintScheme int `json:"fingerprint_scheme,omitempty"`
	// Source says how the current version arrived: set, generate or import.
	Source   string           `json:"source"`
	Bindings []policy.Binding `json:"bindings"`
	// Releases names the ways a human approved handing the value itself to
	// another process (policy.ReleaseEnv, policy.ReleaseOpenClaw); empty
	// for almost every secret, and then left out of the file.
	Releases []string `json:"releases,omitempty"`
	// Synced is the remote version this secret last matched (pull or push).
	Synced *SecretSync `json:"synced,omitempty"`
	// RotateUpstream: a member removed from the remote workspace could
	// read this value; replace it at its provider and store the new one.
	// Pulled from the remote version; a new value clears it.
	RotateUpstream bool `json:"rotate_upstream,omitempty"`
}

// validSecretName: a letter or '_' then up to 127 letters, digits or '_'.
// Hand-written rather than a regexp: a bounded repetition compiles into
// 128 states at process start, which every command would pay for.
func validSecretName(s string) bool {
	if len(s) == 0 || len(s) > 128 || isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '_' {
			return false
		}
	}
	return true
}

// validSpaceName: a letter or digit then up to 63 letters, digits, '.', '_' or '-'.
func validSpaceName(s string) bool {
	if len(s) == 0 || len(s) > 64 || !isLetter(s[0]) && !isDigit(s[0]) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }

// ErrInvalidName is returned for names outside the documented syntax.
var ErrInvalidName = errcode.New(errcode.Usage, "invalid name")

// CheckSecretName accepts environment-variable style names.
func CheckSecretName(name string) error {
	if !validSecretName(name) {
		return errcode.WithHint(fmt.Errorf("%w %q: a secret name is a letter or '_' followed by up to 127 letters, digits or '_'", ErrInvalidName, printable(name)),
			"use a name like STRIPE_KEY")
	}
	return nil
}

// CheckSpaceName accepts workspace and project names.
func CheckSpaceName(kind, name string) error {
	if !validSpaceName(name) {
		return errcode.WithHint(fmt.Errorf("%w %q: a %s name is a letter or digit followed by up to 63 letters, digits, '.', '_' or '-'", ErrInvalidName, printable(name), kind),
			"use a name like my-app")
	}
	return nil
}

// printable shortens and sanitises a user-given name before it goes into an
// error: a value pasted where a name belongs must not be echoed back.
func printable(s string) string {
	if len(s) > 40 || !validSecretName(s) && !validSpaceName(s) {
		return fmt.Sprintf("<%d bytes>", len(s))
	}
	return s
}

func newIndex(now time.Time) *Index {
	return &Index{
		Format:     IndexFormat,
		Current:    Selection{Workspace: DefaultName, Project: DefaultName},
		Workspaces: map[string]*Workspace{DefaultName: NewWorkspace(now)},
	}
}

// DefaultName is the workspace and project init creates.
const DefaultName = "default"

// NewWorkspace returns an empty workspace with a default project.
func NewWorkspace(now time.Time) *Workspace {
	return &Workspace{
		CreatedAt: now.UTC(),
		Allowlist: []policy.AllowEntry{},
		Projects:  map[string]*Project{DefaultName: NewProject(now)},
	}
}

// NewProject returns an empty project.
func NewProject(now time.Time) *Project {
	return &Project{CreatedAt: now.UTC(), Secrets: map[string]*Secret{}}
}

// ErrCorruptIndex means index.json exists but cannot be trusted.
var ErrCorruptIndex = errcode.New(errcode.Internal, "index is corrupt")

func readIndex(path string) (*Index, error) {
	b, err := readIndexFile(path)
	if err != nil {
		return nil, err
	}
	return decodeIndex(b)
}

func readIndexFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotInitialised
		}
		return nil, fmt.Errorf("read index: %w", err)
	}
	return b, nil
}

func decodeIndex(b []byte) (*Index, error) {
	var ix Index
	if err := decodeIndexJSON(b, &ix); err != nil {
		return nil, errcode.WithHint(fmt.Errorf("%w: %v", ErrCorruptIndex, err), "run `agentsecrets doctor`")
	}
	if err := ix.Validate(); err != nil {
		return nil, errcode.WithHint(fmt.Errorf("%w: %v", ErrCorruptIndex, err), "run `agentsecrets doctor`")
	}
	return &ix, nil
}

// Validate checks the structural invariants every reader relies on.
func (ix *Index) Validate() error {
	if ix.Format != IndexFormat {
		return fmt.Errorf("unsupported index format %d", ix.Format)
	}
	if ix.Workspaces == nil {
		return errors.New("no workspaces")
	}
	for wn, w := range ix.Workspaces {
		if w == nil || CheckSpaceName("workspace", wn) != nil || w.Projects == nil {
			return fmt.Errorf("invalid workspace entry %q", printable(wn))
		}
		for pn, p := range w.Projects {
			if p == nil || CheckSpaceName("project", pn) != nil || p.Secrets == nil {
				return fmt.Errorf("invalid project entry %q", printable(pn))
			}
			for sn, s := range p.Secrets {
				if s == nil || CheckSecretName(sn) != nil || s.Version < 1 {
					return fmt.Errorf("invalid secret entry %q", printable(sn))
				}
				for _, r := range s.Releases {
					if !slices.Contains(policy.ReleaseModes, r) {
						return fmt.Errorf("secret %q has an unknown release mode", sn)
					}
				}
			}
		}
	}
	return nil
}

// Workspace returns the named workspace or a not_found error.
func (ix *Index) Workspace(name string) (*Workspace, error) {
	w, ok := ix.Workspaces[name]
	if !ok {
		return nil, errcode.WithHint(fmt.Errorf("%w: workspace %q", ErrNotFound, printable(name)), DidYouMean(name, SortedKeys(ix.Workspaces))+"run `agentsecrets workspace list`")
	}
	return w, nil
}

// Project returns the selected project or a not_found error.
func (ix *Index) Project(sel Selection) (*Project, error) {
	w, err := ix.Workspace(sel.Workspace)
	if err != nil {
		return nil, err
	}
	p, ok := w.Projects[sel.Project]
	if !ok {
		return nil, ix.projectError(sel)
	}
	return p, nil
}

// projectError is the not_found error for a selection whose workspace or
// project is missing.
func (ix *Index) projectError(sel Selection) error {
	if _, err := ix.Workspace(sel.Workspace); err != nil {
		return err
	}
	return errcode.WithHint(fmt.Errorf("%w: project %q in workspace %q", ErrNotFound, printable(sel.Project), sel.Workspace),
		DidYouMean(sel.Project, SortedKeys(ix.Workspaces[sel.Workspace].Projects))+
			"run `agentsecrets project list` or `agentsecrets project create "+printable(sel.Project)+"`")
}

// Secret returns the named secret's metadata or a not_found error.
func (ix *Index) Secret(sel Selection, name string) (*Secret, error) {
	p, err := ix.Project(sel)
	if err != nil {
		return nil, err
	}
	s, ok := p.Secrets[name]
	if !ok {
		return nil, errcode.WithHint(fmt.Errorf("%w: secret %q in %s/%s", ErrNotFound, printable(name), sel.Workspace, sel.Project),
			DidYouMean(name, SortedKeys(p.Secrets))+"run `agentsecrets secrets list`")
	}
	return s, nil
}

// EachSecret calls fn for every secret of every workspace and project, in
// sorted order, until fn returns false.
func (ix *Index) EachSecret(fn func(sel Selection, name string, s *Secret) bool) {
	for _, wn := range SortedKeys(ix.Workspaces) {
		w := ix.Workspaces[wn]
		for _, pn := range SortedKeys(w.Projects) {
			p := w.Projects[pn]
			for _, sn := range SortedKeys(p.Secrets) {
				if !fn(Selection{Workspace: wn, Project: pn}, sn, p.Secrets[sn]) {
					return
				}
			}
		}
	}
}

// SortedKeys returns a map's keys in order, for stable output.
func SortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
