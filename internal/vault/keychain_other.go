//go:build !linux

package vault

import (
	"context"
	"errors"

	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/zalando/go-keyring"
)

// keychainReachable: macOS Keychain and Windows Credential Manager are
// always present; failures surface from the call itself.
func keychainReachable(func(string) string) error { return nil }

// keychainConn is Linux's D-Bus connection; go-keyring keeps its own here.
type keychainConn struct{}

// startWarm has nothing to do: go-keyring connects per call.
func (k *Keychain) startWarm(context.Context) {}

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
		if errors.Is(err, keyring.ErrNotFound) {
			return err
		}
		return keychainError(op, err)
	case <-ctx.Done():
		return keychainError(op, ctx.Err())
	}
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

// getMany reads keys one by one: go-keyring has no batch read. A key
// without a value is absent from the result.
func (k *Keychain) getMany(ctx context.Context, keys []string) (map[string]secret.Value, error) {
	out := make(map[string]secret.Value, len(keys))
	for _, key := range keys {
		v, err := k.Get(ctx, key)
		if errors.Is(err, ErrValueMissing) {
			continue
		}
		if err != nil {
			for _, v := range out {
				v.Wipe()
			}
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}
