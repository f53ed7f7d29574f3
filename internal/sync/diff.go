package sync

import (
	"fmt"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Diff states of one name.
const (
	InSync      = "in_sync"
	LocalOnly   = "local_only"
	RemoteOnly  = "remote_only"
	LocalNewer  = "local_newer"
	RemoteNewer = "remote_newer"
	Conflict    = "conflict"
)

// States lists every diff state, for schemas and docs.
var States = []string{InSync, LocalOnly, RemoteOnly, LocalNewer, RemoteNewer, Conflict}

// Local is what the index says about one name: nothing here needs a value.
type Local struct {
	Exists bool
	// Changed: the value or bindings changed since Base.
	Changed bool
	// Base is the remote version this device last matched: the secret's
	// own, else the tombstone's of a local deletion.
	Base *vault.SecretSync
	// Deleted: deleted locally since Base.
	Deleted bool
	// Version is the local version (0 when the name is not stored).
	Version int
}

// Remote is the server's head of one name.
type Remote struct {
	// Head is the newest version (0: the name was never pushed).
	Head int
	// Deleted: the head is a deletion.
	Deleted bool
}

func (r Remote) live() bool { return r.Head > 0 && !r.Deleted }

// ErrRollback: the server answers with an older version than this device
// already verified. A server cannot roll a secret back unnoticed.
var ErrRollback = errcode.New(errcode.Conflict, "the server's version is older than one this device already verified (a rollback)")

// Decide says how one name stands, from versions alone. same compares the
// local value with the remote head by the keyed sync fingerprint; it is
// called only when both sides changed since their last common version, the
// one case versions cannot settle. The empty state means the name exists
// nowhere (or only as a deletion both sides agree on).
func Decide(name string, l Local, r Remote, same func() (bool, error)) (string, error) {
	if l.Base == nil {
		switch {
		case !l.Exists && r.live():
			return RemoteOnly, nil
		case !l.Exists:
			return "", nil
		case !r.live():
			return LocalOnly, nil
		}
		return compare(same)
	}
	if r.Head < l.Base.Version {
		return "", errcode.WithHint(fmt.Errorf("%w: secret %s is at version %d on the server, this device verified version %d",
			ErrRollback, name, r.Head, l.Base.Version), "do not pull from this server; check it with its operator")
	}
	remoteMoved := r.Head > l.Base.Version
	localMoved := l.Changed || l.Deleted
	switch {
	case !remoteMoved && !localMoved:
		return InSync, nil
	case !remoteMoved:
		return LocalNewer, nil
	case !localMoved:
		return RemoteNewer, nil
	case l.Deleted && r.Deleted:
		return InSync, nil
	case l.Deleted || r.Deleted:
		return Conflict, nil
	}
	return compare(same)
}

func compare(same func() (bool, error)) (string, error) {
	if same == nil {
		return Conflict, nil
	}
	eq, err := same()
	if err != nil {
		return "", err
	}
	if eq {
		return InSync, nil
	}
	return Conflict, nil
}

// NameDiff is one name's state.
type NameDiff struct {
	Name  string `json:"name"`
	State string `json:"state" jsonschema:"enum=in_sync,enum=local_only,enum=remote_only,enum=local_newer,enum=remote_newer,enum=conflict"`
	// LocalVersion is the local version (0: not stored here);
	// RemoteVersion the server's head (0: never pushed).
	LocalVersion  int `json:"local_version"`
	RemoteVersion int `json:"remote_version"`
	// Deleted says which side deleted the name: local or remote.
	Deleted string `json:"deleted,omitempty" jsonschema:"enum=local,enum=remote"`
	// RotateUpstream: a member removed from the workspace could read the
	// value (marked here, or on the server's newest version).
	RotateUpstream bool `json:"rotate_upstream,omitempty"`
}

// LocalOf reads one name's local state from a project's index entry.
func LocalOf(p *vault.Project, name string) Local {
	var tomb *vault.SecretSync
	if p.Sync != nil {
		if t, ok := p.Sync.Tombstones[name]; ok {
			tomb = &t
		}
	}
	if _, ok := p.Secrets[name]; !ok && tomb != nil && tomb.Deleted {
		// The deletion this device matched is the server's own: nothing
		// changed here since.
		return Local{Base: tomb}
	}
	if s, ok := p.Secrets[name]; ok {
		l := Local{Exists: true, Changed: s.ChangedSinceSync(), Base: s.Synced, Version: s.Version}
		if l.Base == nil {
			// Stored again after a local delete: it builds on the deletion's base.
			l.Base = tomb
		}
		return l
	}
	return Local{Base: tomb, Deleted: tomb != nil}
}

// Names is every name a project diff covers: stored or deleted here, or
// known to the server.
func Names(p *vault.Project, heads map[string]Remote) []string {
	seen := map[string]bool{}
	for n := range p.Secrets {
		seen[n] = true
	}
	if p.Sync != nil {
		for n := range p.Sync.Tombstones {
			seen[n] = true
		}
	}
	for n := range heads {
		seen[n] = true
	}
	return vault.SortedKeys(seen)
}

// DiffProject decides every name of names (all of Names when empty) and
// returns those with a state; a name given that exists nowhere is
// not_found. same(name) is DiffProject's only way to a value.
func DiffProject(p *vault.Project, heads map[string]Remote, names []string, same func(name string) (bool, error)) ([]NameDiff, error) {
	all := Names(p, heads)
	for _, n := range names {
		if !slices.Contains(all, n) {
			return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "secret %s is neither stored here nor on the server", n),
				"run `agentsecrets secrets list` and `agentsecrets secrets diff`")
		}
	}
	if len(names) == 0 {
		names = all
	}
	out := []NameDiff{}
	for _, n := range names {
		l, r := LocalOf(p, n), heads[n]
		var eq func() (bool, error)
		if same != nil {
			eq = func() (bool, error) { return same(n) }
		}
		state, err := Decide(n, l, r, eq)
		if err != nil {
			return nil, err
		}
		if state == "" || state == InSync && !l.Exists && !r.live() {
			continue // deleted on both sides
		}
		d := NameDiff{Name: n, State: state, LocalVersion: l.Version, RemoteVersion: r.Head}
		if s := p.Secrets[n]; s != nil {
			d.RotateUpstream = s.RotateUpstream
		}
		switch {
		case l.Deleted && state != InSync:
			d.Deleted = "local"
		case r.Deleted && r.Head > 0 && state != InSync:
			d.Deleted = "remote"
		}
		out = append(out, d)
	}
	return out, nil
}

// Drift is the part of a diff that is out of sync, as the index keeps it.
func Drift(diffs []NameDiff) []vault.Drift {
	var out []vault.Drift
	for _, d := range diffs {
		if d.State != InSync {
			out = append(out, vault.Drift{Name: d.Name, State: d.State})
		}
	}
	return out
}
