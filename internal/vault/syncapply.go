package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"

	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Pulled is one verified remote version a pull adopts: a value with its
// bindings, or a deletion.
type Pulled struct {
	Name     string
	Deleted  bool
	Value    secret.Value
	Bindings []policy.Binding
	Source   string
	// Version and Hash are the remote version and its envelope hash.
	Version int
	Hash    string
	// RotateUpstream is the remote version's mark (Secret.RotateUpstream).
	RotateUpstream bool
	// Expect is the local version the caller decided from (0: not
	// stored). A secret changed here since is refused as a conflict, so a
	// pull never overwrites a local change it did not see.
	Expect int
}

// ErrChangedDuringPull: a secret changed locally between a pull's
// decision and its write.
var ErrChangedDuringPull = errcode.New(errcode.Conflict, "secrets changed locally while the pull was running")

// PullResult reports what a pull did to one name.
type PullResult struct {
	Name string `json:"name"`
	// Version is the local version after the pull (0 once deleted);
	// RemoteVersion the remote version it now matches.
	Version       int `json:"version"`
	RemoteVersion int `json:"remote_version"`
	// Action is created, updated, unchanged or deleted.
	Action string `json:"action"`
}

// ApplyPull writes pulled values and their metadata into the vault as one
// store update, and lets commit change the rest of the index (sync times,
// drift, the allowlist) in the same final index write.
//
// Order, all under the lock: (1) an index write records the new metadata
// of every secret whose value changes (ProjectSync.Incoming) and journals
// their keys; (2) the values are stored; (3) one index write adopts the
// metadata, drops deleted names and runs commit; (4) deleted names' values
// are removed. A crash after (1) and before (3) leaves each value old or
// new; Incoming describes the new ones, so Value and doctor accept either,
// and the next write adopts the new metadata for every secret whose new
// value is stored (settleIncoming). Local-only state survives: value
// release approvals (Releases), the echo tripwire's suspensions and the
// admin approval are never taken from a pull.
func (s *Store) ApplyPull(ctx context.Context, sel Selection, pulls []Pulled, commit func(ix *Index) error) ([]PullResult, error) {
	for _, p := range pulls {
		if err := CheckSecretName(p.Name); err != nil {
			return nil, err
		}
		if p.Deleted {
			continue
		}
		s.observe(p.Value)
		if err := CheckValue(p.Value); err != nil {
			return nil, err
		}
	}
	var results []PullResult
	err := s.writeProject(ctx, sel, func(backend Backend, fpKey []byte, ix *Index, proj *Project) error {
		results = results[:0]
		now := s.now()
		items := map[string]secret.Value{}
		adopt := map[string]*Secret{}
		var written, deleted, moved []string
		for _, p := range pulls {
			if old := proj.Secrets[p.Name]; old == nil && p.Expect != 0 || old != nil && old.Version != p.Expect {
				moved = append(moved, p.Name)
			}
		}
		if len(moved) > 0 {
			return errcode.WithHint(fmt.Errorf("%w: %s", ErrChangedDuringPull, strings.Join(moved, ", ")), "run `agentsecrets secrets diff`, then pull again")
		}
		for _, p := range pulls {
			key := itemKey(sel, p.Name)
			old := proj.Secrets[p.Name]
			if p.Deleted {
				if old != nil {
					deleted = append(deleted, key)
					results = append(results, PullResult{Name: p.Name, RemoteVersion: p.Version, Action: "deleted"})
				}
				adopt[p.Name] = nil
				continue
			}
			ns := &Secret{Version: 1, CreatedAt: now, UpdatedAt: now, Fingerprint: fingerprintOf(fpKey, sel, p.Name, p.Value),
				FingerprintScheme: fingerprintScheme, Source: p.Source, Bindings: KeepLocalState(p.Bindings, nil), RotateUpstream: p.RotateUpstream}
			action := "created"
			if old != nil {
				ns.CreatedAt, ns.Releases, ns.Version = old.CreatedAt, old.Releases, old.Version
				ns.Bindings = KeepLocalState(p.Bindings, old.Bindings)
				action = "unchanged"
				if !holds(fpKey, sel, p.Name, old, p.Value) {
					ns.Version++
					action = "updated"
				} else {
					ns.UpdatedAt = old.UpdatedAt
					if BindingsDigest(old.Bindings) != BindingsDigest(ns.Bindings) {
						action = "updated"
					}
				}
			}
			ns.MarkSynced(p.Version, p.Hash)
			adopt[p.Name] = ns
			results = append(results, PullResult{Name: p.Name, Version: ns.Version, RemoteVersion: p.Version, Action: action})
			// A value the index already describes is not written again,
			// unless an interrupted write journalled its key.
			if old != nil && action != "created" && old.Fingerprint == ns.Fingerprint && !slices.Contains(ix.Pending, key) {
				continue
			}
			items[key] = p.Value
			written = append(written, key)
		}
		if len(items) > 0 {
			if proj.Sync == nil {
				proj.Sync = &ProjectSync{}
			}
			proj.Sync.Incoming = map[string]*Secret{}
			for _, p := range pulls {
				if _, ok := items[itemKey(sel, p.Name)]; ok {
					proj.Sync.Incoming[p.Name] = adopt[p.Name]
				}
			}
			ix.Pending = append(without(ix.Pending, written), written...)
			if err := s.writeIndex(ix); err != nil {
				return err
			}
			if err := backend.Put(ctx, items); err != nil {
				return err
			}
		}
		for _, p := range pulls {
			ns := adopt[p.Name]
			if ns != nil {
				proj.Secrets[p.Name] = ns
				if proj.Sync != nil {
					delete(proj.Sync.Tombstones, p.Name)
				}
				continue
			}
			// A remote deletion is remembered as matched, so the next
			// pull asks only for what comes after it.
			delete(proj.Secrets, p.Name)
			if proj.Sync == nil {
				proj.Sync = &ProjectSync{}
			}
			if proj.Sync.Tombstones == nil {
				proj.Sync.Tombstones = map[string]SecretSync{}
			}
			proj.Sync.Tombstones[p.Name] = SecretSync{Version: p.Version, Hash: p.Hash, Deleted: true}
		}
		if proj.Sync != nil {
			proj.Sync.Incoming = nil
		}
		ix.Pending = append(without(ix.Pending, written), deleted...)
		if commit != nil {
			if err := commit(ix); err != nil {
				return err
			}
		}
		if err := s.writeIndex(ix); err != nil {
			return err
		}
		if len(deleted) == 0 {
			return nil
		}
		if err := backend.Delete(ctx, deleted); err != nil {
			return err
		}
		return s.journal(nil, deleted)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// incoming returns the metadata an interrupted pull meant name to get.
func (ix *Index) incoming(sel Selection, name string) *Secret {
	w := ix.Workspaces[sel.Workspace]
	if w == nil {
		return nil
	}
	p := w.Projects[sel.Project]
	if p == nil || p.Sync == nil {
		return nil
	}
	return p.Sync.Incoming[name]
}

// holdsIncoming reports whether value is the one an interrupted pull
// stored for name.
func (ix *Index) holdsIncoming(fpKey []byte, sel Selection, name string, value secret.Value) bool {
	in := ix.incoming(sel, name)
	return in != nil && holds(fpKey, sel, name, in, value)
}

// settleIncoming finishes pulls a crash interrupted: a secret whose pulled
// value is stored gets the pulled metadata; any other keeps its old entry
// (and, unless its old value is verifiably stored, its journalled key for
// the usual checks). The caller holds the
// lock and writes ix.
func (s *Store) settleIncoming(ctx context.Context, b Backend, ix *Index) (changed bool, err error) {
	var fpKey []byte
	for _, wn := range SortedKeys(ix.Workspaces) {
		for _, pn := range SortedKeys(ix.Workspaces[wn].Projects) {
			proj := ix.Workspaces[wn].Projects[pn]
			if proj.Sync == nil || len(proj.Sync.Incoming) == 0 {
				continue
			}
			if fpKey == nil {
				if fpKey, err = s.fingerprintKey(ctx); err != nil {
					return false, err
				}
			}
			sel := Selection{Workspace: wn, Project: pn}
			for name, ns := range proj.Sync.Incoming {
				key := itemKey(sel, name)
				v, err := b.Get(ctx, key)
				if errors.Is(err, ErrValueMissing) {
					continue
				}
				if err != nil {
					return false, err
				}
				old := proj.Secrets[name]
				switch {
				case holds(fpKey, sel, name, ns, v):
					proj.Secrets[name] = ns
					delete(proj.Sync.Tombstones, name)
					ix.Pending = without(ix.Pending, []string{key})
				case old != nil && holds(fpKey, sel, name, old, v):
					// The old value is still stored: nothing to settle.
					ix.Pending = without(ix.Pending, []string{key})
				}
				v.Wipe()
			}
			proj.Sync.Incoming = nil
			changed = true
		}
	}
	return changed, nil
}

// holdsIncomingKey is holdsIncoming for a backend key.
func holdsIncomingKey(ix *Index, fpKey []byte, key string, value secret.Value) bool {
	found := false
	for _, wn := range SortedKeys(ix.Workspaces) {
		for _, pn := range SortedKeys(ix.Workspaces[wn].Projects) {
			sel := Selection{Workspace: wn, Project: pn}
			p := ix.Workspaces[wn].Projects[pn]
			if p.Sync == nil {
				continue
			}
			for name := range p.Sync.Incoming {
				if itemKey(sel, name) == key {
					found = ix.holdsIncoming(fpKey, sel, name, value)
				}
			}
		}
	}
	return found
}

// recordTombstone remembers, when a synced secret is deleted locally, the
// remote version it matched, so the next push stores a deletion on top of
// it and a diff reports the name as local_newer rather than remote_only.
func recordTombstone(proj *Project, name string) {
	sec := proj.Secrets[name]
	if sec == nil || sec.Synced == nil || proj.Sync == nil {
		return
	}
	if proj.Sync.Tombstones == nil {
		proj.Sync.Tombstones = map[string]SecretSync{}
	}
	proj.Sync.Tombstones[name] = *sec.Synced
}

// SettleInterrupted finishes what an interrupted write left (a pull's
// incoming metadata above all), so a caller that decides from the index
// decides from the settled state. Without anything to settle it only
// reads the index.
func (s *Store) SettleInterrupted(ctx context.Context) error {
	ix, err := s.Index()
	if err != nil || len(ix.Pending) == 0 {
		return err
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	return s.withLock(ctx, func() error { return s.settlePending(ctx, b) })
}

// SessionOf is Session for a caller that has just read the index: the
// signed-in check uses ix instead of decoding the index again (2 ms for a
// 200-secret vault, on every remote command).
func (s *Store) SessionOf(ctx context.Context, ix *Index) (Session, error) {
	if !ix.Account.SignedIn() {
		return Session{}, ErrSignedOut
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return Session{}, err
	}
	return s.readSession(ctx, b)
}
