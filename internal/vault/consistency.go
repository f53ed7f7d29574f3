package vault

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Kinds of Problem.
const (
	// ProblemMismatch: the backend holds another value than the index
	// describes (a crash between a value write and its index write).
	ProblemMismatch = "mismatch"
	// ProblemLeftover: a value no index entry names, under a key the
	// journal (Index.Pending) lists: what an interrupted write or delete
	// left. The next write of a secret removes it, as it removes leftover
	// temp files, so it is not a fault.
	ProblemLeftover = "leftover"
	// ProblemOrphan: the backend holds a value no index entry names (a
	// crash during a delete, or before a new secret's index write).
	ProblemOrphan = "orphan"
	// ProblemMissing: the index names a secret the backend has no value for.
	ProblemMissing = "missing"
)

// Problem is one disagreement between the index and the backend. It names
// a backend key (workspace/project/NAME), never a value.
type Problem struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
}

// snapshotter is a backend that can read all its items at once (the file
// vault, where every Get decrypts the whole file): the check then reads it
// once, and finds orphans by listing. A keychain cannot be listed
// portably: for it, orphans are found through Index.Pending only.
type snapshotter interface {
	All(ctx context.Context) (map[string]secret.Value, error)
}

// sessionReader is a backend that reads many keys faster through one open
// session (the Secret Service: one connection, session and unlock instead
// of one per key).
type sessionReader interface {
	openReader(ctx context.Context) (keyReader, error)
}

// keyReader is an open session of a sessionReader. Close ends it.
type keyReader interface {
	Get(ctx context.Context, key string) (secret.Value, error)
	Close()
}

// Consistency compares every index entry with the value the backend holds
// (by keyed fingerprint) and looks for orphaned values. It reads every
// value once and keeps none.
func (s *Store) Consistency(ctx context.Context) ([]Problem, error) {
	b, fpKey, err := s.backendAndKey(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := s.Index()
	if err != nil {
		return nil, err
	}
	return s.problems(ctx, b, fpKey, ix, nil)
}

// Repair fixes what Consistency finds, under the lock, and returns what it
// fixed; a missing value cannot be repaired here and stays a problem.
//
//   - mismatch: the stored value is adopted. It is the newer write (values
//     are written before the index), the old one is gone from the backend,
//     and the broker has been sending it; so the index gets a new version
//     with its fingerprint, source "repair". A human who meant another value
//     stores it again with `secrets set`.
//   - orphan: the value is deleted: no name refers to it, so nothing can
//     use it, and it should not outlive a delete.
//
// It also upgrades every fingerprint still in the unsalted scheme, and
// clears Index.Pending.
func (s *Store) Repair(ctx context.Context) (fixed, left []Problem, err error) {
	b, fpKey, err := s.backendAndKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	err = s.withLock(ctx, func() error {
		fixed, left = nil, nil
		ix, err := s.Index()
		if err != nil {
			return err
		}
		// An interrupted pull is finished, not repaired: its stored
		// values are the pulled versions.
		settled, err := s.settleIncoming(ctx, b, ix)
		if err != nil {
			return err
		}
		changed := settled || len(ix.Pending) > 0
		problems, err := s.problems(ctx, b, fpKey, ix, func(sel Selection, name string, sec *Secret, value secret.Value) {
			fp := fingerprintOf(fpKey, sel, name, value)
			if !holds(fpKey, sel, name, sec, value) {
				sec.Version++
				sec.UpdatedAt, sec.Source = s.now(), "repair"
			} else if sec.FingerprintScheme == fingerprintScheme {
				return
			}
			sec.Fingerprint, sec.FingerprintScheme = fp, fingerprintScheme
			changed = true
		})
		if err != nil {
			return err
		}
		var orphans []string
		for _, p := range problems {
			switch p.Kind {
			case ProblemOrphan, ProblemLeftover:
				orphans = append(orphans, p.Key)
				fixed = append(fixed, p)
			case ProblemMismatch:
				fixed = append(fixed, p)
			default:
				left = append(left, p)
			}
		}
		ix.Pending = nil
		if changed {
			if err := s.writeIndex(ix); err != nil {
				return err
			}
		}
		if len(orphans) > 0 {
			return b.Delete(ctx, orphans)
		}
		return nil
	})
	return fixed, left, err
}

func (s *Store) backendAndKey(ctx context.Context) (Backend, []byte, error) {
	b, err := s.openBackend(ctx)
	if err != nil {
		return nil, nil, err
	}
	fpKey, err := s.fingerprintKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	return b, fpKey, nil
}

// problems checks ix against b. visit, if set, sees every indexed secret
// with its stored value (to repair it) before the value is wiped.
func (s *Store) problems(ctx context.Context, b Backend, fpKey []byte, ix *Index,
	visit func(sel Selection, name string, sec *Secret, value secret.Value)) ([]Problem, error) {
	get, keys, done := bulkGetter(b)
	defer done()
	var candidates []string
	if keys != nil {
		list, err := keys(ctx)
		if err != nil {
			return nil, err
		}
		candidates = list
	}
	var out []Problem
	indexed := map[string]bool{}
	for _, wn := range SortedKeys(ix.Workspaces) {
		for _, pn := range SortedKeys(ix.Workspaces[wn].Projects) {
			sel := Selection{Workspace: wn, Project: pn}
			secrets := ix.Workspaces[wn].Projects[pn].Secrets
			for _, name := range SortedKeys(secrets) {
				key := itemKey(sel, name)
				indexed[key] = true
				v, err := get(ctx, key)
				if errors.Is(err, ErrValueMissing) {
					out = append(out, Problem{ProblemMissing, key})
					continue
				}
				if err != nil {
					return nil, err
				}
				// A value an interrupted pull stored is the pulled
				// version: the next write adopts its metadata.
				if !holds(fpKey, sel, name, secrets[name], v) && !ix.holdsIncoming(fpKey, sel, name, v) {
					out = append(out, Problem{ProblemMismatch, key})
				}
				if visit != nil {
					visit(sel, name, secrets[name], v)
				}
				v.Wipe()
			}
		}
	}
	candidates = append(candidates, ix.Pending...)
	sort.Strings(candidates)
	for i, key := range candidates {
		if indexed[key] || strings.HasPrefix(key, "meta/") || i > 0 && candidates[i-1] == key {
			continue
		}
		v, err := get(ctx, key)
		if errors.Is(err, ErrValueMissing) {
			continue // a journalled key whose write or delete did complete
		}
		if err != nil {
			return nil, err
		}
		pulled := holdsIncomingKey(ix, fpKey, key, v)
		v.Wipe()
		if pulled {
			continue // a new secret an interrupted pull stored
		}
		kind := ProblemOrphan
		if slices.Contains(ix.Pending, key) {
			kind = ProblemLeftover
		}
		out = append(out, Problem{kind, key})
	}
	return out, nil
}

// All reads every item of the file vault in one decryption.
func (v *FileVault) All(context.Context) (map[string]secret.Value, error) {
	items, err := v.read()
	if err != nil {
		return nil, err
	}
	out := make(map[string]secret.Value, len(items))
	for k, b := range items {
		out[k] = secret.New(b)
	}
	return out, nil
}

// bulkGetter is a Get for reading many keys. For a snapshotter it reads all
// items once, on first use, and keys lists them; for a sessionReader it
// opens one session on first use; otherwise it is the backend's Get. keys
// is nil unless b is a snapshotter. done wipes what was read and ends the
// session.
func bulkGetter(b Backend) (get func(context.Context, string) (secret.Value, error), keys func(context.Context) ([]string, error), done func()) {
	if sr, ok := b.(sessionReader); ok {
		var r keyReader
		get = func(ctx context.Context, key string) (secret.Value, error) {
			if r == nil {
				var err error
				if r, err = sr.openReader(ctx); err != nil {
					return secret.Value{}, err
				}
			}
			return r.Get(ctx, key)
		}
		done = func() {
			if r != nil {
				r.Close()
			}
		}
		return get, nil, done
	}
	sn, ok := b.(snapshotter)
	if !ok {
		return b.Get, nil, func() {}
	}
	var all map[string]secret.Value
	load := func(ctx context.Context) error {
		if all != nil {
			return nil
		}
		var err error
		all, err = sn.All(ctx)
		return err
	}
	get = func(ctx context.Context, key string) (secret.Value, error) {
		if err := load(ctx); err != nil {
			return secret.Value{}, err
		}
		v, ok := all[key]
		if !ok {
			return secret.Value{}, ErrValueMissing
		}
		// A copy, as Backend.Get returns: the caller wipes it.
		return secret.New(bytes.Clone(v.Reveal())), nil
	}
	keys = func(ctx context.Context) ([]string, error) {
		if err := load(ctx); err != nil {
			return nil, err
		}
		return SortedKeys(all), nil
	}
	done = func() {
		for _, v := range all {
			v.Wipe()
		}
	}
	return get, keys, done
}

// settlePending removes what an interrupted write left: the values of
// journalled keys that no index entry names, and their journal entries.
// The caller holds the lock, so no write in progress owns those keys.
func (s *Store) settlePending(ctx context.Context, b Backend) error {
	ix, err := s.Index()
	if err != nil || len(ix.Pending) == 0 {
		return err
	}
	settled, err := s.settleIncoming(ctx, b, ix)
	if err != nil {
		return err
	}
	// A journalled key with an index entry is an interrupted update: its
	// value may disagree with the entry, so it stays journalled (Value
	// checks it, doctor reports it) until a write of that secret or
	// `doctor --repair` settles it.
	var orphans, keep []string
	for _, key := range ix.Pending {
		if ix.names(key) {
			keep = append(keep, key)
		} else {
			orphans = append(orphans, key)
		}
	}
	if len(orphans) == 0 {
		if settled {
			return s.writeIndex(ix)
		}
		return nil
	}
	if err := b.Delete(ctx, orphans); err != nil {
		return err
	}
	ix.Pending = keep
	return s.writeIndex(ix)
}

// names reports whether an index entry has backend key key.
func (ix *Index) names(key string) bool {
	if named, ok := ix.namedAccountItem(key); ok {
		return named
	}
	found := false
	ix.EachSecret(func(sel Selection, name string, _ *Secret) bool {
		found = itemKey(sel, name) == key
		return !found
	})
	return found
}
