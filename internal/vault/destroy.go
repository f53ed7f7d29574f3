package vault

import (
	"context"
	"errors"
	"os"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Destroy deletes the whole vault: its values first, then the index and
// the config. A keychain vault's items are deleted one by one (each
// secret's, the fingerprint key, the account's and any journalled key):
// a keychain cannot be listed, so they go while the index still names
// them, and a crash part-way leaves an index naming values that are gone
// (which `broker migrate` run again finishes), never a value nobody can
// find. A file vault's values are its vault file. `broker migrate` calls
// Destroy once everything was copied and verified.
func (s *Store) Destroy(ctx context.Context) error {
	return s.withLock(ctx, func() error {
		if s.Config.Backend != KindFile {
			ix, err := s.Index()
			if err != nil {
				return err
			}
			b, err := s.openBackend(ctx)
			if err != nil {
				return err
			}
			keys := append([]string{fingerprintKeyItem}, accountItems...)
			keys = append(keys, ix.Pending...)
			ix.EachSecret(func(sel Selection, name string, _ *Secret) bool {
				keys = append(keys, itemKey(sel, name))
				return true
			})
			if err := b.Delete(ctx, keys); err != nil {
				return err
			}
		}
		for _, p := range []string{s.Dirs.VaultFile(), s.Dirs.KeychainItemsFile(), s.Dirs.IndexFile(), s.Dirs.ConfigFile()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return errcode.Errorf(errcode.Unavailable, "delete %s: %v", p, err)
			}
		}
		return nil
	})
}
