// Package vault owns secret storage: the backends that hold values (OS
// keychain or an encrypted file) and the index that holds everything else
// (names, versions, fingerprints, policy). Values never enter the index.
//
// Writers take one advisory file lock, read the index, change it and replace
// it atomically, so concurrent processes never lose an update and a crash
// never leaves a torn file. Readers need no lock.
package vault

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
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

// Backend opens the value backend on first use. The file backend asks for
// its passphrase here, before any lock is taken.
func (s *Store) Backend(ctx context.Context) (Backend, error) {
	s.backendMu.Lock()
	defer s.backendMu.Unlock()
	if s.backend != nil {
		return s.backend, nil
	}
	switch s.Config.Backend {
	case KindKeychain:
		kc := NewKeychain(s.Config.VaultID, s.opts.Getenv)
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
		fv, err := openFileVault(s.Dirs.VaultFile(), s.Config.VaultID, pass)
		if err != nil {
			return nil, err
		}
		s.backend = fv
	}
	return s.backend, nil
}

func (s *Store) fingerprintKey(ctx context.Context) ([]byte, error) {
	s.fpMu.Lock()
	defer s.fpMu.Unlock()
	if s.fpKey != nil {
		return s.fpKey, nil
	}
	b, err := s.Backend(ctx)
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
	key, err := hex.DecodeString(string(hexKey))
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
	return filelock.With(ctx, s.Dirs.LockFile(), func() error {
		removeStaleTemps(s.Dirs.Data)
		ix, err := s.Index()
		if err != nil {
			return err
		}
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

func (s *Store) writeIndex(ix *Index) error {
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
	Value  []byte
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
// value equal to the stored one (same fingerprint) is left alone, so
// repeating a command is harmless.
func (s *Store) PutSecrets(ctx context.Context, sel Selection, puts []Put, mode PutMode) ([]PutResult, error) {
	for _, p := range puts {
		if err := CheckSecretName(p.Name); err != nil {
			return nil, err
		}
		if err := CheckValue(p.Value); err != nil {
			return nil, fmt.Errorf("secret %s: %w", p.Name, err)
		}
	}
	// Open the backend and read the fingerprint key before locking: the
	// file backend may prompt for its passphrase.
	backend, err := s.Backend(ctx)
	if err != nil {
		return nil, err
	}
	fpKey, err := s.fingerprintKey(ctx)
	if err != nil {
		return nil, err
	}
	fingerprints := make([]string, len(puts))
	for i, p := range puts {
		fingerprints[i] = crypto.Fingerprint(fpKey, p.Value)
	}
	var results []PutResult
	err = s.Update(ctx, func(ix *Index) error {
		results = results[:0]
		proj, err := ix.Project(sel)
		if err != nil {
			return err
		}
		now := s.now()
		items := map[string][]byte{}
		for i, p := range puts {
			old := proj.Secrets[p.Name]
			switch {
			case old != nil && mode == CreateOnly:
				return errcode.WithHint(fmt.Errorf("%w: %s", ErrExists, p.Name), "pass --overwrite to replace it, or choose another name")
			case old != nil && mode == SkipExisting:
				results = append(results, PutResult{p.Name, old.Version, "skipped"})
				continue
			case old != nil && old.Fingerprint == fingerprints[i]:
				results = append(results, PutResult{p.Name, old.Version, "unchanged"})
				continue
			}
			items[itemKey(sel, p.Name)] = p.Value
			if old == nil {
				proj.Secrets[p.Name] = &Secret{Version: 1, CreatedAt: now, UpdatedAt: now,
					Fingerprint: fingerprints[i], Source: p.Source, Bindings: []policy.Binding{}}
				results = append(results, PutResult{p.Name, 1, "created"})
			} else {
				old.Version++
				old.UpdatedAt, old.Fingerprint, old.Source = now, fingerprints[i], p.Source
				results = append(results, PutResult{p.Name, old.Version, "updated"})
			}
		}
		if len(items) == 0 {
			return ErrUnchanged
		}
		// Values first, then the index: a crash in between leaves the old
		// metadata describing a newer value, never a name without a value.
		return backend.Put(ctx, items)
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// DeleteSecrets removes names from the index and their values from the
// backend. Every name must exist; otherwise nothing is deleted.
func (s *Store) DeleteSecrets(ctx context.Context, sel Selection, names []string) error {
	backend, err := s.Backend(ctx)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(names))
	return s.updateThen(ctx, func(ix *Index) error {
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
			delete(proj.Secrets, n)
		}
		return nil
	}, func() error {
		if err := backend.Delete(ctx, keys); err != nil {
			return fmt.Errorf("names removed from the index, but deleting values failed: %w", err)
		}
		return nil
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
		if backend, err = s.Backend(ctx); err != nil {
			return 0, err
		}
	}
	var keys []string
	err = s.updateThen(ctx, func(ix *Index) error {
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
		return nil
	}, func() error {
		if len(keys) == 0 {
			return nil
		}
		if err := backend.Delete(ctx, keys); err != nil {
			return fmt.Errorf("project removed from the index, but deleting values failed: %w", err)
		}
		return nil
	})
	return len(keys), err
}

// Value returns a secret's value. Only the broker may call it: it is the
// one place where values are held in memory.
func (s *Store) Value(ctx context.Context, sel Selection, name string) ([]byte, error) {
	ix, err := s.Index()
	if err != nil {
		return nil, err
	}
	if _, err := ix.Secret(sel, name); err != nil {
		return nil, err
	}
	b, err := s.Backend(ctx)
	if err != nil {
		return nil, err
	}
	v, err := b.Get(ctx, itemKey(sel, name))
	if errors.Is(err, ErrValueMissing) {
		return nil, errcode.WithHint(fmt.Errorf("secret %s: %w", name, err), "store it again with `agentsecrets secrets set "+name+"`")
	}
	return v, err
}

// FingerprintCheck proves the backend holds the vault's fingerprint key.
func (s *Store) FingerprintCheck(ctx context.Context) (bool, error) {
	_, err := s.fingerprintKey(ctx)
	return err == nil, err
}
