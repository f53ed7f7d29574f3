package vault

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/secret"
	dbus "github.com/godbus/dbus/v5"
)

// Remembered item paths.
//
// Reading a value by its key takes a SearchItems before the GetSecrets: a
// round trip to the keyring daemon per key, about 0.5 ms of the 3 ms a
// one-shot `call` spends reading the keychain on a busy 2-core machine. An
// item keeps its object path while it lives, so the paths that searches
// find and writes return are kept in the vault's data directory
// (keychain-items.json: item keys and D-Bus object paths, never a value),
// and a read whose every path is known goes straight to GetSecrets.
//
// A path can go stale: another program deletes the item, and the daemon
// later gives the path to another item, ours or not. So a read by
// remembered paths is never trusted by itself: getKnown hands its values to
// a caller that can tell the right ones (the Store checks each against its
// index fingerprint, see Store.knownValues), which forgets what did not
// match and reads the usual way. The file is a cache: unreadable, foreign
// or lost, it only costs the next read its searches.

// knownItems is keychain-items.json.
type knownItems struct {
	// Service is the Keychain's service: a file copied from another vault
	// remembers nothing for this one.
	Service string                     `json:"service"`
	Items   map[string]dbus.ObjectPath `json:"items"`
}

// loadItems returns the remembered paths by key; nil when there are none.
func (k *Keychain) loadItems() map[string]dbus.ObjectPath {
	if k.itemsFile == "" {
		return nil
	}
	data, err := os.ReadFile(k.itemsFile)
	if err != nil {
		return nil
	}
	var f knownItems
	if json.Unmarshal(data, &f) != nil || f.Service != k.service {
		return nil
	}
	return f.Items
}

// rememberItems records paths by key; an empty path forgets its key. The
// file is replaced atomically; two processes remembering at once may lose
// one's update, which only costs a later read its search.
func (k *Keychain) rememberItems(paths map[string]dbus.ObjectPath) {
	if k.itemsFile == "" || len(paths) == 0 {
		return
	}
	items := k.loadItems()
	if items == nil {
		items = map[string]dbus.ObjectPath{}
	}
	changed := false
	for key, p := range paths {
		old, had := items[key]
		switch {
		case p == "" && had:
			delete(items, key)
		case p != "" && old != p:
			items[key] = p
		default:
			continue
		}
		changed = true
	}
	if !changed {
		return
	}
	data, err := json.Marshal(knownItems{Service: k.service, Items: items})
	if err != nil {
		return
	}
	// Best effort, as a cache: a failed write (a read-only data directory)
	// leaves reads as they were.
	_ = writeAtomic(k.itemsFile, data)
}

// forgetKnown drops the remembered paths of keys.
func (k *Keychain) forgetKnown(keys []string) {
	paths := make(map[string]dbus.ObjectPath, len(keys))
	for _, key := range keys {
		paths[key] = ""
	}
	k.rememberItems(paths)
}

// getKnown reads keys by their remembered paths: one GetSecrets on the
// warm session, no search. ok is false, and no value is returned, when a
// key has no remembered path, or when the daemon refuses the read or has
// no secret at one of the paths (a locked or deleted item): the caller then
// reads the usual way, which unlocks and searches. An error is returned
// only when the keychain cannot be reached or does not answer, which a
// second read would only wait for again. The values may belong to other
// items than their keys' (a stale path): the caller must check them.
func (k *Keychain) getKnown(ctx context.Context, keys []string) (values map[string]secret.Value, ok bool, err error) {
	known := k.loadItems()
	paths := make([]dbus.ObjectPath, len(keys))
	for i, key := range keys {
		if paths[i] = known[key]; paths[i] == "" {
			return nil, false, nil
		}
		// Two keys on one path: at least one is stale, and there is no
		// telling which without a search, so both are forgotten.
		if j := slices.Index(paths[:i], paths[i]); j >= 0 {
			k.forgetKnown([]string{keys[j], key})
			return nil, false, nil
		}
	}
	b, err := k.openSession(ctx)
	if errors.Is(err, ErrKeychainUnavailable) {
		return nil, false, err
	}
	if err != nil {
		return nil, false, keychainError("read", err)
	}
	defer b.close()
	var secrets map[dbus.ObjectPath]ssSecret
	if err := b.call(ctx, ssPath, ssService+".GetSecrets", paths, b.session).Store(&secrets); err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || !b.conn.Connected() {
			return nil, false, keychainError("read", err)
		}
		return nil, false, nil
	}
	for i := range keys {
		if _, held := secrets[paths[i]]; !held {
			for _, s := range secrets {
				clear(s.Value)
			}
			return nil, false, nil
		}
	}
	values = make(map[string]secret.Value, len(keys))
	for i, key := range keys {
		values[key] = secret.New(secrets[paths[i]].Value)
	}
	return values, true, nil
}
