package vault

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// InitOptions choose how a vault is created.
type InitOptions struct {
	Options
	// Backend is auto, keychain or file.
	Backend string
	// AdminPassphrase supplies the approval passphrase (asked twice on a terminal).
	AdminPassphrase func() ([]byte, error)
}

// BackendChoice says which backend init picked and why.
type BackendChoice struct {
	Kind   string
	Reason string
}

// ChooseBackend decides the backend for a new vault without writing anything.
func ChooseBackend(ctx context.Context, want string, getenv func(string) string) (BackendChoice, error) {
	probe := NewKeychain("probe", getenv)
	keychainErr := probe.Available()
	if keychainErr == nil {
		keychainErr = probe.Probe(ctx)
	}
	switch want {
	case KindKeychain:
		if keychainErr != nil {
			return BackendChoice{}, keychainErr
		}
		return BackendChoice{KindKeychain, "chosen with --backend keychain; " + keychainName() + " answered"}, nil
	case KindFile:
		return BackendChoice{KindFile, "chosen with --backend file"}, nil
	case "", "auto":
		if keychainErr == nil {
			return BackendChoice{KindKeychain, "auto: " + keychainName() + " answered"}, nil
		}
		return BackendChoice{KindFile, "auto: keychain unusable (" + errcode.Classify(keychainErr).Message + ")"}, nil
	default:
		return BackendChoice{}, errcode.Errorf(errcode.Usage, "unknown backend %q (want auto, keychain or file)", want)
	}
}

func keychainName() string {
	switch runtime.GOOS {
	case "darwin":
		return "the macOS Keychain"
	case "windows":
		return "Windows Credential Manager"
	default:
		return "the Secret Service"
	}
}

// ErrPartialHome: files exist without a config, so init cannot tell whether
// it would destroy something.
var ErrPartialHome = errcode.New(errcode.Conflict, "found vault files but no config")

// Init creates a vault under dirs. It validates everything and asks for
// every passphrase before it writes the first file; the config is written
// last, so an interrupted init leaves a home that a second init completes.
// If a vault exists it is returned unchanged with created=false.
// ErrSamePassphrase: init was given the vault passphrase as the admin one.
var ErrSamePassphrase = errcode.New(errcode.Usage, "the admin passphrase must differ from the vault passphrase")

func Init(ctx context.Context, dirs home.Dirs, opts InitOptions) (st *Store, created bool, err error) {
	if st, err := Open(dirs, opts.Options); err == nil {
		return st, false, nil
	} else if !errors.Is(err, ErrNotInitialised) {
		return nil, false, err
	}
	if _, err := os.Stat(dirs.IndexFile()); err == nil {
		return nil, false, errcode.WithHint(fmt.Errorf("%w: %s exists", ErrPartialHome, dirs.IndexFile()),
			"move the directory aside or point AGENTSECRETS_HOME elsewhere, then run `agentsecrets init` again")
	}
	choice, err := ChooseBackend(ctx, opts.Backend, opts.Getenv)
	if err != nil {
		return nil, false, err
	}
	admin, err := opts.AdminPassphrase()
	if err != nil {
		return nil, false, err
	}
	approval, err := policy.NewApproval(admin)
	if err != nil {
		return nil, false, fmt.Errorf("admin passphrase: %w", err)
	}
	var vaultPass []byte
	if choice.Kind == KindFile {
		if vaultPass, err = opts.VaultPassphrase(true); err != nil {
			return nil, false, err
		}
		if len(vaultPass) < policy.MinPassphraseLen {
			return nil, false, fmt.Errorf("vault passphrase: %w", policy.ErrWeakPassphrase)
		}
		// The vault passphrase sits in a file that unattended commands
		// (and so agents) read; the admin passphrase is what a human
		// types to approve policy changes. Equal, one file approves
		// everything.
		if subtle.ConstantTimeCompare(admin, vaultPass) == 1 {
			return nil, false, errcode.WithHint(ErrSamePassphrase,
				"choose an admin passphrase different from the vault passphrase (keep the admin one out of any file an agent can read), then run `agentsecrets init` again")
		}
	}
	idBytes, err := crypto.Random(16)
	if err != nil {
		return nil, false, err
	}
	fpKey, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return nil, false, err
	}
	cfg := Config{Format: 1, VaultID: hex.EncodeToString(idBytes), Backend: choice.Kind, BackendReason: choice.Reason}
	st = &Store{Dirs: dirs, Config: cfg, opts: opts.Options}
	cfg.CreatedAt = st.now()
	st.Config.CreatedAt = cfg.CreatedAt

	if err := dirs.Ensure(); err != nil {
		return nil, false, errcode.WithHint(errcode.Errorf(errcode.Unavailable, "cannot create the agentsecrets directory: %w", err),
			"set AGENTSECRETS_HOME to a writable directory")
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	err = filelock.With(ctx, dirs.LockFile(), func() error {
		if choice.Kind == KindFile {
			fv, err := createFileVault(dirs.VaultFile(), cfg.VaultID, vaultPass)
			if err != nil {
				return fmt.Errorf("create vault file: %w", err)
			}
			written = append(written, dirs.VaultFile())
			st.backend = fv
			if opts.OnUnlock != nil {
				opts.OnUnlock()
			}
		} else {
			st.backend = keychainOf(dirs, cfg.VaultID, opts.Getenv)
			written = append(written, dirs.KeychainItemsFile())
		}
		if err := st.backend.Put(ctx, map[string]secret.Value{fingerprintKeyItem: secret.New([]byte(hex.EncodeToString(fpKey)))}); err != nil {
			return fmt.Errorf("store fingerprint key: %w", err)
		}
		ix := newIndex(cfg.CreatedAt)
		ix.Approval = approval
		written = append(written, dirs.IndexFile())
		if err := st.writeIndex(ix); err != nil {
			return err
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return err
		}
		written = append(written, dirs.ConfigFile())
		return writeAtomic(dirs.ConfigFile(), b)
	})
	if err != nil {
		return nil, false, err
	}
	st.fpKey = fpKey
	return st, true, nil
}
