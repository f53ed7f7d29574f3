package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
)

// KeychainTimeout bounds every keychain call. A locked keychain that waits
// for a desktop prompt nobody can answer must not hang an agent.
const KeychainTimeout = 5 * time.Second

// Keychain stores values in the OS keychain: macOS Keychain and Windows
// Credential Manager through go-keyring (keychain_other.go), the
// freedesktop Secret Service through its D-Bus API with one session per
// batch (keychain_linux.go), writing the very items go-keyring writes.
// Items are named service "agentsecrets/<vault id>", account = item key, so
// two vaults (two AGENTSECRETS_HOME directories) never see each other.
type Keychain struct {
	service string
	getenv  func(string) string
	bus     keychainConn
	// itemsFile is where the Secret Service's item paths are remembered
	// between processes (keychainitems_linux.go); "" remembers none.
	itemsFile string
}

// ErrKeychainUnavailable: no usable keychain on this machine or session.
var ErrKeychainUnavailable = errcode.New(errcode.Unavailable, "the OS keychain is not available")

// ErrKeychainLocked: the keychain answered but refuses access until a human
// unlocks it.
var ErrKeychainLocked = errcode.New(errcode.Unavailable, "the OS keychain is locked")

// ErrKeychainTimeout: the keychain did not answer, usually because it is
// locked and waiting for an unlock prompt.
var ErrKeychainTimeout = errcode.New(errcode.Unavailable, "the OS keychain did not answer (is it locked?)")

const unlockHint = "unlock the login keyring (log in to the desktop session, or unlock it in Seahorse / Keychain Access), then retry"

// isLockedError recognises the Secret Service's and macOS's ways of saying
// "locked": go-keyring has no typed error for it.
func isLockedError(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "unlock") || strings.Contains(msg, "locked") ||
		strings.Contains(msg, "user interaction is not allowed") // macOS errSecInteractionNotAllowed
}

const fileBackendHint = "unlock the keychain (log in to the desktop session), or use the encrypted file backend: `agentsecrets init --backend file`"

// NewKeychain returns the keychain backend of one vault. getenv must be the
// real process environment: go-keyring's D-Bus client reads it.
func NewKeychain(vaultID string, getenv func(string) string) *Keychain {
	return &Keychain{service: "agentsecrets/" + vaultID, getenv: getenv}
}

// keychainOf is the keychain backend of the vault in dirs, remembering its
// item paths in the data directory.
func keychainOf(dirs home.Dirs, vaultID string, getenv func(string) string) *Keychain {
	k := NewKeychain(vaultID, getenv)
	k.itemsFile = dirs.KeychainItemsFile()
	return k
}

func (k *Keychain) Kind() string { return KindKeychain }

// Available reports whether a keychain can be reached at all, without
// starting anything: on Linux it never lets D-Bus autolaunch a session bus.
func (k *Keychain) Available() error {
	if err := keychainReachable(k.getenv); err != nil {
		return errcode.WithHint(fmt.Errorf("%w: %v", ErrKeychainUnavailable, err), fileBackendHint)
	}
	return nil
}

// keychainError maps a failed keychain operation to the vault's errors.
// Errors from go-keyring and the Secret Service name the service and
// account, never the value. A context that ended means the keychain did
// not answer in time.
func keychainError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return errcode.WithHint(fmt.Errorf("%w: keychain %s after %s", ErrKeychainTimeout, op, KeychainTimeout), fileBackendHint)
	case isLockedError(err):
		return errcode.WithHint(fmt.Errorf("%w: keychain %s: %v", ErrKeychainLocked, op, err), unlockHint)
	}
	return errcode.WithHint(fmt.Errorf("%w: keychain %s: %v", ErrKeychainUnavailable, op, err), fileBackendHint)
}

// Probe reads an item that need not exist: "not found" proves the keychain
// answers and is unlocked enough to search.
func (k *Keychain) Probe(ctx context.Context) error {
	v, err := k.Get(ctx, "meta/probe")
	v.Wipe()
	if errors.Is(err, ErrValueMissing) {
		return nil
	}
	return err
}
