// Package vault owns secret storage: the backends that hold values (OS
// keychain or an encrypted file) and the index that holds everything else
// (names, versions, fingerprints, policy). Values never enter the index.
//
// Writers take one advisory file lock, read the index, change it and replace
// it atomically, so concurrent processes never lose an update and a crash
// never leaves a torn file. Readers need no lock.
package vault

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Config is the vault's identity and backend choice, written once by Init.
type Config struct {
	Format        int       `json:"format"`
	VaultID       string    `json:"vault_id"`
	Backend       string    `json:"backend"`
	BackendReason string    `json:"backend_reason"`
	CreatedAt     time.Time `json:"created_at"`
}

// Options are the dependencies of a Store. Passphrases are read through
// functions so that nothing prompts unless a backend actually needs one.
type Options struct {
	// Getenv is the process environment (the keychain client reads it).
	Getenv func(string) string
	Now    func() time.Time
	// VaultPassphrase supplies the file backend's passphrase; confirm asks
	// twice on a terminal (used when creating a vault).
	VaultPassphrase func(confirm bool) ([]byte, error)
	// OnValue, if set, sees every value this Store hands to a caller or
	// stores for one: the CLI scans its own output for them before
	// printing (the output guard). It must not log or copy them out.
	OnValue func(value secret.Value)
	// OnUnlock, if set, runs once the file backend has derived its key,
	// opening the vault or creating it. Argon2id leaves its 64 MiB of work
	// memory as garbage, and Go's heap goal at twice that until the next
	// collection: a process that goes on running wants it back at once.
	OnUnlock func()
}

// Store is an opened vault.
type Store struct {
	Dirs   home.Dirs
	Config Config
	opts   Options

	// backend and fpKey are set on first use. A Store is shared by
	// concurrent requests (the proxy, the MCP server), so each is set
	// under its lock: once, by one caller, the others waiting.
	backendMu sync.Mutex
	backend   Backend
	fpMu      sync.Mutex
	fpKey     []byte

	// indexWrites counts the index replacements made through this Store,
	// so that a cache of the index in this process (the broker's) sees
	// them at once without a stat.
	indexWrites atomic.Uint64

	// shared is the index SharedIndex last decoded, and sharedRaw the
	// bytes it was decoded from.
	sharedMu  sync.Mutex
	sharedRaw []byte
	shared    *Index
	// sharedDecodes counts SharedIndex's decodes.
	sharedDecodes atomic.Uint64
}

// Open reads the config of an initialised vault. It touches no backend.
func Open(dirs home.Dirs, opts Options) (*Store, error) {
	b, err := os.ReadFile(dirs.ConfigFile())
	if err != nil {
		// ENOTDIR: a component of the path is a file, so there is no vault
		// here either; init then reports that it cannot create the directory.
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, errcode.WithHint(fmt.Errorf("%w (%s)", ErrNotInitialised, dirs.Config), "run `agentsecrets init`")
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "read config: %w", err),
			"check the permissions of "+dirs.Config+", or set AGENTSECRETS_HOME to a directory you can read and write")
	}
	var cfg Config
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.VaultID == "" ||
		(cfg.Backend != KindKeychain && cfg.Backend != KindFile) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Internal, "config %s is corrupt", dirs.ConfigFile()), "run `agentsecrets doctor`")
	}
	return &Store{Dirs: dirs, Config: cfg, opts: opts}, nil
}

// Index reads the current index without taking the lock: atomic replacement
// means a reader always sees a whole file.
func (s *Store) Index() (*Index, error) {
	return readIndex(s.Dirs.IndexFile())
}

// SharedIndex is Index for a reader that does not modify what it gets: the
// result is shared with every other caller of SharedIndex on this Store. The
// file is read each time, as Index reads it, so a change by any process is
// seen, but decoded again only when its bytes differ from the last decoded:
// decoding is most of the cost of reading a large index, and a one-shot call
// reads it at every step (scope, policy, values).
func (s *Store) SharedIndex() (*Index, error) {
	b, err := readIndexFile(s.Dirs.IndexFile())
	if err != nil {
		return nil, err
	}
	s.sharedMu.Lock()
	defer s.sharedMu.Unlock()
	if s.shared != nil && bytes.Equal(b, s.sharedRaw) {
		return s.shared, nil
	}
	ix, err := decodeIndex(b)
	if err != nil {
		return nil, err
	}
	s.sharedDecodes.Add(1)
	s.shared, s.sharedRaw = ix, b
	return ix, nil
}

// PrefetchIndex reads and decodes the index in the background, for a
// one-shot command that is about to need it: the decode, most of a cold
// process's first read of the index, then overlaps parsing the command
// line, and the command's own SharedIndex finds it done (or waits for it,
// rather than decoding the same bytes again). A failure is left for that
// SharedIndex to report.
func (s *Store) PrefetchIndex() {
	go func() { _, _ = s.SharedIndex() }()
}

// Warm starts connecting to the keychain in the background, for a command
// that is about to read values: on the Secret Service the connection, the
// daemon's greeting and the session (about half of a one-shot call's
// keychain time) then overlap parsing the command line, reading the index
// and checking policy. It does nothing on the file backend, whose
// passphrase must be asked for in order.
func (s *Store) Warm(ctx context.Context) {
	if s.Config.Backend != KindKeychain {
		return
	}
	if b, err := s.openBackend(ctx); err == nil {
		if kc, ok := b.(*Keychain); ok {
			kc.startWarm(ctx)
		}
	}
}

// openBackend opens the value backend on first use. The file backend asks
// for its passphrase here, before any lock is taken. It is unexported so
// that nothing outside the vault reads or writes values around the index
// and its fingerprint checks; doctor uses Probe.
func (s *Store) openBackend(ctx context.Context) (Backend, error) {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	if s.backend != nil {
		return s.backend, nil
	}
	switch s.Config.Backend {
	case KindKeychain:
		kc := keychainOf(s.Dirs, s.Config.VaultID, s.opts.Getenv)
		if err := kc.Available(); err != nil {
			return nil, err
		}
		s.backend = kc
	case KindFile:
		if s.opts.VaultPassphrase == nil {
			return nil, errors.New("no vault passphrase source")
		}
		pass, err := s.opts.VaultPassphrase(false)
		if err != nil {
			return nil, err
		}
		fv, err := OpenFileVault(s.Dirs.VaultFile(), s.Config.VaultID, pass)
		if err != nil {
			return nil, err
		}
		s.backend = fv
		if s.opts.OnUnlock != nil {
			s.opts.OnUnlock()
		}
	}
	return s.backend, nil
}

func (s *Store) fingerprintKey(ctx context.Context) ([]byte, error) {
	s.fpMu.Lock()
	defer s.fpMu.Unlock()
	if s.fpKey != nil {
		return s.fpKey, nil
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return nil, err
	}
	hexKey, err := b.Get(ctx, fingerprintKeyItem)
	if err != nil {
		if errors.Is(err, ErrValueMissing) {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Internal, "the vault's fingerprint key is missing from the %s backend", b.Kind()), "run `agentsecrets doctor`")
		}
		return nil, err
	}
	defer hexKey.Wipe()
	key, err := hex.DecodeString(string(hexKey.Reveal()))
	if err != nil || len(key) != crypto.KeySize {
		return nil, errcode.Errorf(errcode.Internal, "the vault's fingerprint key is malformed")
	}
	s.fpKey = key
	return key, nil
}

// ErrUnchanged lets an Update callback skip the write.
var ErrUnchanged = errors.New("unchanged")

// Update runs fn on the current index under the lock and writes the result
// atomically. If fn returns an error nothing is written.
func (s *Store) Update(ctx context.Context, fn func(ix *Index) error) error {
	return s.updateThen(ctx, fn, nil)
}

// updateThen is Update followed, still under the lock, by then: the step
// that must happen only once the index no longer names what it removes
// (deleting values from the backend).
func (s *Store) updateThen(ctx context.Context, fn func(ix *Index) error, then func() error) error {
	return s.updateWith(ctx, nil, fn, then)
}

// updateWith is updateThen for a caller that opened the backend: what an
// interrupted write left is settled first (see settlePending).
func (s *Store) updateWith(ctx context.Context, backend Backend, fn func(ix *Index) error, then func() error) error {
	return s.lockedIndex(ctx, backend, func(ix *Index) error {
		if err := fn(ix); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return nil
			}
			return err
		}
		if err := s.writeIndex(ix); err != nil {
			return err
		}
		if then != nil {
			return then()
		}
		return nil
	})
}

// writeProject is the frame of a write of sel's secrets. The backend is
// opened and the fingerprint key read before locking (the file backend
// may prompt for its passphrase); under the lock, interrupted writes are
// settled first and fn gets the index and sel's project as they are now.
// fn writes the index itself.
func (s *Store) writeProject(ctx context.Context, sel Selection, fn func(backend Backend, fpKey []byte, ix *Index, proj *Project) error) error {
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	fpKey, err := s.fingerprintKey(ctx)
	if err != nil {
		return err
	}
	return s.lockedIndex(ctx, backend, func(ix *Index) error {
		proj, err := ix.Project(sel)
		if err != nil {
			return err
		}
		return fn(backend, fpKey, ix, proj)
	})
}

// lockedIndex runs fn under the lock with the index as it is then; with
// a backend, what an interrupted write left is settled first (see
// settlePending).
func (s *Store) lockedIndex(ctx context.Context, backend Backend, fn func(ix *Index) error) error {
	return s.withLock(ctx, func() error {
		if backend != nil {
			if err := s.settlePending(ctx, backend); err != nil {
				return err
			}
		}
		ix, err := s.Index()
		if err != nil {
			return err
		}
		return fn(ix)
	})
}

// withLock runs fn under the store's lock, after removing what a crashed
// writer left behind.
func (s *Store) withLock(ctx context.Context, fn func() error) error {
	return filelock.With(ctx, s.Dirs.LockFile(), func() error {
		removeStaleTemps(s.Dirs.Data)
		return fn()
	})
}

// journal adds and removes keys of Index.Pending in an index write of its
// own; the caller holds the lock.
func (s *Store) journal(add, remove []string) error {
	ix, err := s.Index()
	if err != nil {
		return err
	}
	ix.Pending = append(without(ix.Pending, remove), add...)
	return s.writeIndex(ix)
}

// without returns keys minus drop.
func without(keys, drop []string) []string {
	var out []string
	for _, k := range keys {
		if !slices.Contains(drop, k) {
			out = append(out, k)
		}
	}
	return out
}

// fingerprintScheme is the scheme of fingerprints written now (see
// Secret.FingerprintScheme).
const fingerprintScheme = 2

func fingerprintOf(key []byte, sel Selection, name string, value secret.Value) string {
	return crypto.SecretFingerprint(key, sel.Workspace, sel.Project, name, value.Reveal())
}

// holds reports whether value is the value sec describes, under the scheme
// its fingerprint was written with.
func holds(key []byte, sel Selection, name string, sec *Secret, value secret.Value) bool {
	if sec.FingerprintScheme == fingerprintScheme {
		return crypto.FingerprintEqual(sec.Fingerprint, fingerprintOf(key, sel, name, value))
	}
	return crypto.FingerprintEqual(sec.Fingerprint, crypto.Fingerprint(key, value.Reveal()))
}

// IndexWrites is how many times this Store has tried to replace index.json
// (counted after each attempt, failed ones too: a rename may have happened
// before the failure). A cache of the index compares it to tell a change
// made in this process at once; changes by other processes need a stat.
func (s *Store) IndexWrites() uint64 { return s.indexWrites.Load() }

func (s *Store) writeIndex(ix *Index) error {
	defer s.indexWrites.Add(1)
	ix.Revision++
	b, err := json.Marshal(ix)
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := writeAtomic(s.Dirs.IndexFile(), b); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC()
	}
	return time.Now().UTC()
}

// Put is one value to store.
type Put struct {
	Name   string
	Value  secret.Value
	Source string
}

// PutMode decides what happens to a name that already exists.
type PutMode int

const (
	// Upsert replaces existing values (a new version if the value changed).
	Upsert PutMode = iota
	// CreateOnly fails with conflict if any name exists.
	CreateOnly
	// SkipExisting leaves existing names alone.
	SkipExisting
)

// PutResult reports what happened to one name.
type PutResult struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// Action is created, updated, unchanged or skipped.
	Action string `json:"action"`
}

// ErrExists: CreateOnly met an existing name.
var ErrExists = errcode.New(errcode.Conflict, "secret already exists")

// PutSecrets stores values in the backend and records them in the index. A
// value equal to the stored one (same fingerprint in the index, and the
// backend really holding it) is left alone, so repeating a command is
// harmless.
func (s *Store) PutSecrets(ctx context.Context, sel Selection, puts []Put, mode PutMode) ([]PutResult, error) {
	for _, p := range puts {
		s.observe(p.Value)
		if err := CheckSecretName(p.Name); err != nil {
			return nil, err
		}
		if err := CheckValue(p.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w", p.Name, err)
		}
	}
	var results []PutResult
	err := s.writeProject(ctx, sel, func(backend Backend, fpKey []byte, ix *Index, proj *Project) error {
		results = results[:0]
		// Read under the lock: the unchanged check must see the values
		// as they are now. The file vault is read once, not per name.
		get, _, done := bulkGetter(backend)
		defer done()
		now := s.now()
		items := map[string]secret.Value{}
		var created, updated, settled []string
		migrated := false
		for _, p := range puts {
			key := itemKey(sel, p.Name)
			fp := fingerprintOf(fpKey, sel, p.Name, p.Value)
			old := proj.Secrets[p.Name]
			switch {
			case old != nil && mode == CreateOnly:
				return errcode.WithHint(fmt.Errorf("%w: %s", ErrExists, p.Name), "pass --overwrite to replace it, or choose another name")
			case old != nil && mode == SkipExisting:
				results = append(results, PutResult{p.Name, old.Version, "skipped"})
				continue
			case old != nil && holds(fpKey, sel, p.Name, old, p.Value):
				// The index describes this value; the backend must hold it
				// too. A crash between a value write and its index write
				// leaves another value there, which this write replaces.
				cur, err := get(ctx, key)
				if err != nil && !errors.Is(err, ErrValueMissing) {
					return err
				}
				same := err == nil && holds(fpKey, sel, p.Name, old, cur)
				cur.Wipe()
				if same {
					// An interrupted update journalled the key; the value
					// turned out to be the indexed one after all.
					settled = append(settled, key)
					if old.FingerprintScheme != fingerprintScheme {
						old.Fingerprint, old.FingerprintScheme = fp, fingerprintScheme
						migrated = true
					}
					results = append(results, PutResult{p.Name, old.Version, "unchanged"})
					continue
				}
			}
			items[key] = p.Value
			if old == nil {
				created = append(created, key)
				proj.Secrets[p.Name] = &Secret{Version: 1, CreatedAt: now, UpdatedAt: now,
					Fingerprint: fp, FingerprintScheme: fingerprintScheme, Source: p.Source, Bindings: []policy.Binding{}}
				results = append(results, PutResult{p.Name, 1, "created"})
			} else {
				updated = append(updated, key)
				old.Version++
				old.UpdatedAt, old.Fingerprint, old.FingerprintScheme, old.Source = now, fp, fingerprintScheme, p.Source
				// A new value is the rotation a removal asked for.
				old.RotateUpstream = false
				results = append(results, PutResult{p.Name, old.Version, "updated"})
			}
		}
		if len(items) == 0 {
			if migrated || slices.ContainsFunc(settled, func(k string) bool { return slices.Contains(ix.Pending, k) }) {
				ix.Pending = without(ix.Pending, settled)
				return s.writeIndex(ix)
			}
			return nil
		}
		// Journal the keys before writing their values, so that a crash
		// before the final index write leaves a key doctor can find: for a
		// new secret an orphan, for an updated one a value its index entry
		// may not describe (Value checks journalled keys only).
		journalled := append(created, updated...)
		if err := s.journal(journalled, nil); err != nil {
			return err
		}
		// Values first, then the index: a crash in between leaves the old
		// metadata describing another value, which Value refuses and
		// doctor reports, never a name without a value.
		if err := backend.Put(ctx, items); err != nil {
			return err
		}
		cur, err := s.Index()
		if err != nil {
			return err
		}
		ix.Revision, ix.Pending = cur.Revision, without(cur.Pending, append(journalled, settled...))
		return s.writeIndex(ix)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// DeleteSecrets removes names from the index and their values from the
// backend. Every name must exist; otherwise nothing is deleted.
func (s *Store) DeleteSecrets(ctx context.Context, sel Selection, names []string) error {
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(names))
	return s.updateWith(ctx, backend, func(ix *Index) error {
		proj, err := ix.Project(sel)
		if err != nil {
			return err
		}
		for _, n := range names {
			if _, err := ix.Secret(sel, n); err != nil {
				return err
			}
			keys = append(keys, itemKey(sel, n))
		}
		for _, n := range names {
			recordTombstone(proj, n)
			delete(proj.Secrets, n)
		}
		ix.Pending = append(ix.Pending, keys...)
		return nil
	}, func() error {
		if err := backend.Delete(ctx, keys); err != nil {
			return errcode.WithHint(fmt.Errorf("names removed from the index, but deleting values failed: %w", err), repairHint)
		}
		return s.journal(nil, keys)
	})
}

// DeleteProject removes a project and every value in it.
func (s *Store) DeleteProject(ctx context.Context, sel Selection) (int, error) {
	ix, err := s.Index()
	if err != nil {
		return 0, err
	}
	if _, err := ix.Project(sel); err != nil {
		return 0, err
	}
	var backend Backend
	if p := ix.Workspaces[sel.Workspace].Projects[sel.Project]; len(p.Secrets) > 0 {
		if backend, err = s.openBackend(ctx); err != nil {
			return 0, err
		}
	}
	var keys []string
	err = s.updateWith(ctx, backend, func(ix *Index) error {
		proj, err := ix.Project(sel)
		if err != nil {
			return err
		}
		for name := range proj.Secrets {
			keys = append(keys, itemKey(sel, name))
		}
		if len(keys) > 0 && backend == nil {
			return errcode.New(errcode.Conflict, "the project changed while it was being deleted; retry")
		}
		delete(ix.Workspaces[sel.Workspace].Projects, sel.Project)
		if ix.Current == sel {
			ix.Current.Project = ""
		}
		ix.Pending = append(ix.Pending, keys...)
		return nil
	}, func() error {
		if len(keys) == 0 {
			return nil
		}
		if err := backend.Delete(ctx, keys); err != nil {
			return errcode.WithHint(fmt.Errorf("project removed from the index, but deleting values failed: %w", err), repairHint)
		}
		return s.journal(nil, keys)
	})
	return len(keys), err
}

// ErrDisagreement: the backend holds another value than the one the
// index describes, left by a write a crash interrupted.
var ErrDisagreement = errcode.New(errcode.Conflict, "the stored value does not match the index (an interrupted write)")

const repairHint = "run `agentsecrets doctor --repair`"

// Value returns a secret's value. Only the broker may call it: it is the
// one place where values are held in memory. The value must be the one the
// index describes: after a crash between a value write and its index write
// it is not, and sending it would send a value nobody saw stored. Every
// write journals its key (Index.Pending) before the value and clears it
// with the index, so only a journalled key can disagree: those are checked
// against their fingerprint, and the others cost no read of the
// fingerprint key (a keychain round trip on every `call`) unless it comes
// in the same read: a keychain on Linux that remembers the item paths
// reads the value and that key in one call, and checks the value against
// its fingerprint (knownValues).
func (s *Store) Value(ctx context.Context, sel Selection, name string) (secret.Value, error) {
	b, err := s.openBackend(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	ix, err := s.SharedIndex()
	if err != nil {
		return secret.Value{}, err
	}
	if _, err := ix.Secret(sel, name); err != nil {
		return secret.Value{}, err
	}
	if !slices.Contains(ix.Pending, itemKey(sel, name)) {
		if kg, ok := b.(knownGetter); ok {
			known, err := s.knownValues(ctx, kg, ix, sel, []string{name})
			if err != nil {
				return secret.Value{}, err
			}
			if v, ok := known[name]; ok {
				s.observe(v)
				return v, nil
			}
		}
		v, err := getValue(ctx, b, sel, name)
		if err != nil {
			return secret.Value{}, err
		}
		s.observe(v)
		return v, nil
	}
	fpKey, err := s.fingerprintKey(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	v, ok, err := s.checkedValue(ctx, b, fpKey, sel, name)
	if err != nil {
		return secret.Value{}, err
	}
	if ok {
		s.observe(v)
		return v, nil
	}
	// Readers take no lock, so a writer may be between its value and its
	// index write right now. Under the lock no writer is; a disagreement
	// that remains is a crash's.
	err = s.withLock(ctx, func() error {
		v, ok, err = s.checkedValue(ctx, b, fpKey, sel, name)
		return err
	})
	if err != nil {
		return secret.Value{}, err
	}
	if !ok {
		return secret.Value{}, errcode.WithHint(fmt.Errorf("%w: secret %s in %s/%s", ErrDisagreement, name, sel.Workspace, sel.Project), repairHint)
	}
	s.observe(v)
	return v, nil
}

// knownGetter is a backend that can read keys by what it remembers of
// earlier reads and writes, in fewer round trips than getMany, without
// being able to vouch for what it read (the Secret Service's remembered
// item paths, keychainitems_linux.go). ok false means nothing was read.
type knownGetter interface {
	getKnown(ctx context.Context, keys []string) (values map[string]secret.Value, ok bool, err error)
	forgetKnown(keys []string)
}

// multiGetter is a backend that reads many keys in fewer round trips than
// one Get each (the keychain: on Linux one Secret Service session and one
// GetSecrets). A key without a value is absent from the result.
type multiGetter interface {
	getMany(ctx context.Context, keys []string) (map[string]secret.Value, error)
}

// Values is Value for several secrets of one project, read from the
// backend together: a `call` that injects one secret and redacts the others
// bound to the origin pays for one keychain session, not one per secret.
// Every name must be in the index; each value is checked as Value checks
// it. The values are the caller's to wipe.
func (s *Store) Values(ctx context.Context, sel Selection, names []string) (map[string]secret.Value, error) {
	out := make(map[string]secret.Value, len(names))
	fail := func(err error) (map[string]secret.Value, error) {
		for _, v := range out {
			v.Wipe()
		}
		return nil, err
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := s.SharedIndex()
	if err != nil {
		return nil, err
	}
	var plain []string
	for _, name := range names {
		if _, err := ix.Secret(sel, name); err != nil {
			return nil, err
		}
		if !slices.Contains(ix.Pending, itemKey(sel, name)) && !slices.Contains(plain, name) {
			plain = append(plain, name)
		}
	}
	if kg, ok := b.(knownGetter); ok && len(plain) > 0 {
		known, err := s.knownValues(ctx, kg, ix, sel, plain)
		if err != nil {
			return nil, err
		}
		for name, v := range known {
			out[name] = v
			s.observe(v)
		}
		plain = slices.DeleteFunc(plain, func(name string) bool { _, done := known[name]; return done })
	}
	mg, ok := b.(multiGetter)
	if ok && len(plain) > 1 {
		keys := make([]string, len(plain))
		for i, name := range plain {
			keys[i] = itemKey(sel, name)
		}
		got, err := mg.getMany(ctx, keys)
		if err != nil {
			return fail(err)
		}
		for i, name := range plain {
			if _, held := got[keys[i]]; !held {
				wipeAll(got)
				return fail(getValueMissing(name))
			}
		}
		for i, name := range plain {
			out[name] = got[keys[i]]
			s.observe(out[name])
		}
	}
	// One name, a backend without batches, and journalled keys (checked
	// against their fingerprints) take Value's path.
	for _, name := range names {
		if _, done := out[name]; done {
			continue
		}
		v, err := s.Value(ctx, sel, name)
		if err != nil {
			return fail(err)
		}
		out[name] = v
	}
	return out, nil
}

// knownValues reads the values of names (none of them journalled) by what
// kg remembers, in one read with the fingerprint key, and returns those
// that hold their index fingerprints. A remembered path that now names
// another item gives a value that does not; kg forgets it (and, when no
// value held, the fingerprint key's too), and the caller reads what is
// missing from the result the usual way. A nil result with no error means
// kg remembers too little for this read.
func (s *Store) knownValues(ctx context.Context, kg knownGetter, ix *Index, sel Selection, names []string) (map[string]secret.Value, error) {
	keys := make([]string, len(names), len(names)+1)
	for i, name := range names {
		keys[i] = itemKey(sel, name)
	}
	got, ok, err := kg.getKnown(ctx, append(keys, fingerprintKeyItem))
	if err != nil || !ok {
		return nil, err
	}
	// Decoded in place, with no string copy: a stale path may have read
	// a secret's value here, not the key.
	hexKey := got[fingerprintKeyItem]
	raw := hexKey.Reveal()
	fpKey := make([]byte, hex.DecodedLen(len(raw)))
	n, err := hex.Decode(fpKey, raw)
	hexKey.Wipe()
	if err != nil || n != crypto.KeySize {
		clear(fpKey)
		fpKey = nil
	}
	out := make(map[string]secret.Value, len(names))
	var wrong []string
	for i, name := range names {
		v := got[keys[i]]
		sec, err := ix.Secret(sel, name)
		if fpKey == nil || err != nil || !holds(fpKey, sel, name, sec, v) {
			v.Wipe()
			wrong = append(wrong, keys[i])
			continue
		}
		out[name] = v
	}
	if len(out) == 0 {
		clear(fpKey)
		wrong = append(wrong, fingerprintKeyItem)
	} else {
		// It made every value in out hold: the vault's own key.
		s.fpMu.Lock()
		if s.fpKey == nil {
			s.fpKey = fpKey
		}
		s.fpMu.Unlock()
	}
	if len(wrong) > 0 {
		kg.forgetKnown(wrong)
	}
	return out, nil
}

// getValue reads a secret's value from the backend.
func getValue(ctx context.Context, b Backend, sel Selection, name string) (secret.Value, error) {
	v, err := b.Get(ctx, itemKey(sel, name))
	if errors.Is(err, ErrValueMissing) {
		return secret.Value{}, getValueMissing(name)
	}
	return v, err
}

// getValueMissing is the error of a secret the index names and the backend
// has no value for.
func getValueMissing(name string) error {
	return errcode.WithHint(fmt.Errorf("secret %s: %w", name, ErrValueMissing), "store it again with `agentsecrets secrets set "+name+"`")
}

func (s *Store) observe(v secret.Value) {
	if s.opts.OnValue != nil {
		s.opts.OnValue(v)
	}
}

// checkedValue reads the index entry and the value; ok reports whether
// they agree.
func (s *Store) checkedValue(ctx context.Context, b Backend, fpKey []byte, sel Selection, name string) (secret.Value, bool, error) {
	ix, err := s.SharedIndex()
	if err != nil {
		return secret.Value{}, false, err
	}
	sec, err := ix.Secret(sel, name)
	if err != nil {
		return secret.Value{}, false, err
	}
	v, err := getValue(ctx, b, sel, name)
	if err != nil {
		return secret.Value{}, false, err
	}
	if !holds(fpKey, sel, name, sec, v) && !ix.holdsIncoming(fpKey, sel, name, v) {
		v.Wipe()
		return secret.Value{}, false, nil
	}
	return v, true, nil
}

// Probe opens the backend (the file backend asks for its passphrase), checks
// that it answers without changing anything, and that it holds the vault's
// fingerprint key: what doctor reports as a healthy backend. It reads no
// secret's value.
func (s *Store) Probe(ctx context.Context) error {
	b, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	if err := b.Probe(ctx); err != nil {
		return err
	}
	_, err = s.fingerprintKey(ctx)
	return err
}
