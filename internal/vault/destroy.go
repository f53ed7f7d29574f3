package vault

import (
	"context"
	"errors"
	"os"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Destroy deletes the whole vault: every value from the backend first
// (each secret's item, the fingerprint key, the account's items and any
// journalled key), then the vault file, the index and the config. The
// order matters: a crash part-way leaves an index naming values that are
// gone, which doctor reports, never a value without an index to find it
// by (a keychain cannot be listed). `broker migrate` calls it once
// everything was copied and verified.
func (s *Store) Destroy(ctx context.Context) error {
	b, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	return s.withLock(ctx, func() error {
		ix, err := s.Index()
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
		for _, p := range []string{s.Dirs.VaultFile(), s.Dirs.IndexFile(), s.Dirs.ConfigFile()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return errcode.Errorf(errcode.Unavailable, "delete %s: %v", p, err)
			}
		}
		return nil
	})
}
