package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/zalando/go-keyring"
)

// KeychainTimeout bounds every keychain call. A locked keychain that waits
// for a desktop prompt nobody can answer must not hang an agent.
const KeychainTimeout = 5 * time.Second

// Keychain stores values in the OS keychain (macOS Keychain, Windows
// Credential Manager, the freedesktop Secret Service) through go-keyring.
// Items are named service "agentsecrets/<vault id>", account = item key, so
// two vaults (two AGENTSECRETS_HOME directories) never see each other.
type Keychain struct {
	service string
	getenv  func(string) string
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

func (k *Keychain) Kind() string { return KindKeychain }

// Available reports whether a keychain can be reached at all, without
// starting anything: on Linux it never lets D-Bus autolaunch a session bus.
func (k *Keychain) Available() error {
	if err := keychainReachable(k.getenv); err != nil {
		return errcode.WithHint(fmt.Errorf("%w: %v", ErrKeychainUnavailable, err), fileBackendHint)
	}
	return nil
}

func (k *Keychain) call(ctx context.Context, op string, fn func() error) error {
	if err := k.Available(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, KeychainTimeout)
	defer cancel()
	done := make(chan error, 1)
	// go-keyring calls cannot be cancelled. On timeout the goroutine is
	// abandoned; it ends when the keychain finally answers or the process exits.
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, keyring.ErrNotFound) {
			return err
		}
		// go-keyring errors name the service and account, never the value.
		if isLockedError(err) {
			return errcode.WithHint(fmt.Errorf("%w: keychain %s: %v", ErrKeychainLocked, op, err), unlockHint)
		}
		return errcode.WithHint(fmt.Errorf("%w: keychain %s: %v", ErrKeychainUnavailable, op, err), fileBackendHint)
	case <-ctx.Done():
		return errcode.WithHint(fmt.Errorf("%w: keychain %s after %s", ErrKeychainTimeout, op, KeychainTimeout), fileBackendHint)
	}
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

func (k *Keychain) Get(ctx context.Context, key string) (secret.Value, error) {
	var v string
	err := k.call(ctx, "read", func() error {
		var err error
		v, err = keyring.Get(k.service, key)
		return err
	})
	if errors.Is(err, keyring.ErrNotFound) {
		return secret.Value{}, ErrValueMissing
	}
	if err != nil {
		return secret.Value{}, err
	}
	return secret.New([]byte(v)), nil
}

func (k *Keychain) Put(ctx context.Context, items map[string]secret.Value) error {
	for _, key := range SortedKeys(items) {
		v := string(items[key].Reveal())
		if err := k.call(ctx, "write", func() error { return keyring.Set(k.service, key, v) }); err != nil {
			return err
		}
	}
	return nil
}

func (k *Keychain) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		err := k.call(ctx, "delete", func() error { return keyring.Delete(k.service, key) })
		if err != nil && !errors.Is(err, keyring.ErrNotFound) {
			return err
		}
	}
	return nil
}
