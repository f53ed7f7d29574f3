package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/secret"
	dbus "github.com/godbus/dbus/v5"
)

// keychainReachable decides, without calling D-Bus, whether a session bus
// exists. godbus would otherwise run dbus-launch and leave a stray bus and
// keyring daemon behind on a headless machine.
func keychainReachable(getenv func(string) string) error {
	if getenv("DBUS_SESSION_BUS_ADDRESS") != "" {
		return nil
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		if _, err := os.Stat(filepath.Join(rt, "bus")); err == nil {
			return nil
		}
	}
	return errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is empty and $XDG_RUNTIME_DIR/bus does not exist), so no Secret Service")
}

// The Secret Service API (https://specifications.freedesktop.org/secret-service/).
// go-keyring opens a session, looks up and unlocks the collection for every
// single item, and overwrites with CreateItem(replace=true); a pull of 200
// secrets spent seconds on that. Here one connection, session and unlock
// serve a whole batch, and an existing item is overwritten with SetSecret.
// gnome-keyring rewrites its keyring file on every change, so each write
// still costs one save: that is the floor.
const (
	ssName            = "org.freedesktop.secrets"
	ssPath            = dbus.ObjectPath("/org/freedesktop/secrets")
	ssService         = "org.freedesktop.Secret.Service"
	ssCollection      = "org.freedesktop.Secret.Collection"
	ssItem            = "org.freedesktop.Secret.Item"
	ssPrompt          = "org.freedesktop.Secret.Prompt"
	ssLoginCollection = dbus.ObjectPath("/org/freedesktop/secrets/collection/login")
	ssDefaultAlias    = dbus.ObjectPath("/org/freedesktop/secrets/aliases/default")
	ssNoPrompt        = dbus.ObjectPath("/")
	// ssContentType is go-keyring's, so its items and ours are alike.
	ssContentType = "text/plain; charset=utf8"
)

// ssSecret is the Secret Service's Secret struct, (oayays).
type ssSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// ssBatch is one open connection, plain session and unlocked collection.
type ssBatch struct {
	conn       *dbus.Conn
	session    dbus.ObjectPath
	collection dbus.ObjectPath
}

// call makes one D-Bus call bounded by KeychainTimeout: a locked keychain
// that waits for a prompt nobody answers fails instead of hanging.
func (b *ssBatch) call(ctx context.Context, path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(ctx, KeychainTimeout)
	defer cancel()
	return b.conn.Object(ssName, path).CallWithContext(ctx, method, 0, args...)
}

// openSS connects to the session bus (Available has ruled out autolaunch),
// opens a plain session (the bus is private to the user's session; this is
// what go-keyring does) and unlocks go-keyring's collection: "login" when
// it exists, else the default alias.
func (k *Keychain) openSS(ctx context.Context) (*ssBatch, error) {
	if err := k.Available(); err != nil {
		return nil, err
	}
	// A private connection, closed at the end: a context given to
	// ConnectSessionBus would bound the connection's life, not the dial.
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return nil, err
	}
	b := &ssBatch{conn: conn, collection: ssDefaultAlias}
	var output dbus.Variant
	if err := b.call(ctx, ssPath, ssService+".OpenSession", "plain", dbus.MakeVariant("")).Store(&output, &b.session); err != nil {
		b.close()
		return nil, err
	}
	var collections []dbus.ObjectPath
	if err := b.call(ctx, ssPath, "org.freedesktop.DBus.Properties.Get", ssService, "Collections").Store(&collections); err != nil {
		b.close()
		return nil, err
	}
	if slices.Contains(collections, ssLoginCollection) {
		b.collection = ssLoginCollection
	}
	if err := b.unlock(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// close ends the session and the connection; the daemon would end both
// when the connection drops anyway, so errors change nothing.
func (b *ssBatch) close() {
	if b.session != "" {
		_ = b.call(context.Background(), b.session, "org.freedesktop.Secret.Session.Close").Err
	}
	_ = b.conn.Close()
}

// errSSLocked says "locked" so keychainError maps it to ErrKeychainLocked.
var errSSLocked = errors.New("the collection is locked and was not unlocked")

func (b *ssBatch) unlock(ctx context.Context) error {
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := b.call(ctx, ssPath, ssService+".Unlock", []dbus.ObjectPath{b.collection}).Store(&unlocked, &prompt); err != nil {
		return err
	}
	if len(unlocked) > 0 {
		return nil
	}
	dismissed, result, err := b.prompt(ctx, prompt)
	if err != nil {
		return err
	}
	if paths, ok := result.Value().([]dbus.ObjectPath); dismissed || !ok || len(paths) == 0 {
		return errSSLocked
	}
	return nil
}

// prompt shows a Secret Service prompt (on a desktop: the unlock dialog)
// and waits, at most KeychainTimeout, for its Completed signal.
func (b *ssBatch) prompt(ctx context.Context, prompt dbus.ObjectPath) (dismissed bool, result dbus.Variant, err error) {
	if prompt == ssNoPrompt || prompt == "" {
		return false, dbus.MakeVariant(""), nil
	}
	ctx, cancel := context.WithTimeout(ctx, KeychainTimeout)
	defer cancel()
	match := []dbus.MatchOption{dbus.WithMatchObjectPath(prompt), dbus.WithMatchInterface(ssPrompt), dbus.WithMatchMember("Completed")}
	if err := b.conn.AddMatchSignalContext(ctx, match...); err != nil {
		return false, dbus.Variant{}, err
	}
	signals := make(chan *dbus.Signal, 1)
	b.conn.Signal(signals)
	defer b.conn.RemoveSignal(signals)
	if err := b.conn.Object(ssName, prompt).CallWithContext(ctx, ssPrompt+".Prompt", 0, "").Err; err != nil {
		return false, dbus.Variant{}, err
	}
	for {
		select {
		case sig, ok := <-signals:
			if !ok {
				return false, dbus.Variant{}, errors.New("the D-Bus connection closed while waiting for a prompt")
			}
			if sig.Path != prompt || sig.Name != ssPrompt+".Completed" || len(sig.Body) != 2 {
				continue
			}
			d, _ := sig.Body[0].(bool)
			r, _ := sig.Body[1].(dbus.Variant)
			return d, r, nil
		case <-ctx.Done():
			return false, dbus.Variant{}, ctx.Err()
		}
	}
}

// find returns the items go-keyring would find for key; go-keyring's Get
// reads the first.
func (b *ssBatch) find(ctx context.Context, service, key string) ([]dbus.ObjectPath, error) {
	var items []dbus.ObjectPath
	err := b.call(ctx, b.collection, ssCollection+".SearchItems", map[string]string{"service": service, "username": key}).Store(&items)
	return items, err
}

func (b *ssBatch) get(ctx context.Context, service, key string) (secret.Value, error) {
	items, err := b.find(ctx, service, key)
	if err != nil {
		return secret.Value{}, err
	}
	if len(items) == 0 {
		return secret.Value{}, ErrValueMissing
	}
	var s ssSecret
	if err := b.call(ctx, items[0], ssItem+".GetSecret", b.session).Store(&s); err != nil {
		return secret.Value{}, err
	}
	return secret.New(s.Value), nil
}

// put overwrites the value of every item that already has the key
// (SetSecret costs gnome-keyring one save; CreateItem with replace costs a
// search on top) and creates the item go-keyring creates otherwise.
// replace stays true on create so that a concurrent writer of the same key
// cannot leave two items.
func (b *ssBatch) put(ctx context.Context, service, key string, value []byte) error {
	s := ssSecret{Session: b.session, Parameters: []byte{}, Value: value, ContentType: ssContentType}
	items, err := b.find(ctx, service, key)
	if err != nil {
		return err
	}
	for _, item := range items {
		if err := b.call(ctx, item, ssItem+".SetSecret", s).Err; err != nil {
			return err
		}
	}
	if len(items) > 0 {
		return nil
	}
	props := map[string]dbus.Variant{
		ssItem + ".Label":      dbus.MakeVariant(fmt.Sprintf("Password for '%s' on '%s'", key, service)),
		ssItem + ".Attributes": dbus.MakeVariant(map[string]string{"service": service, "username": key}),
	}
	var item, prompt dbus.ObjectPath
	if err := b.call(ctx, b.collection, ssCollection+".CreateItem", props, s, true).Store(&item, &prompt); err != nil {
		return err
	}
	_, _, err = b.prompt(ctx, prompt)
	return err
}

// delete removes every item with the key; none is not an error.
func (b *ssBatch) delete(ctx context.Context, service, key string) error {
	items, err := b.find(ctx, service, key)
	if err != nil {
		return err
	}
	for _, item := range items {
		var prompt dbus.ObjectPath
		if err := b.call(ctx, item, ssItem+".Delete").Store(&prompt); err != nil {
			return err
		}
		if _, _, err := b.prompt(ctx, prompt); err != nil {
			return err
		}
	}
	return nil
}

// batch runs fn on one open session and maps its error.
func (k *Keychain) batch(ctx context.Context, op string, fn func(*ssBatch) error) error {
	b, err := k.openSS(ctx)
	if err != nil {
		if errors.Is(err, ErrKeychainUnavailable) {
			return err // Available's own, already mapped
		}
		return keychainError(op, err)
	}
	defer b.close()
	if err := fn(b); err != nil {
		if errors.Is(err, ErrValueMissing) {
			return err
		}
		return keychainError(op, err)
	}
	return nil
}

func (k *Keychain) Get(ctx context.Context, key string) (secret.Value, error) {
	var v secret.Value
	err := k.batch(ctx, "read", func(b *ssBatch) (err error) {
		v, err = b.get(ctx, k.service, key)
		return err
	})
	return v, err
}

func (k *Keychain) Put(ctx context.Context, items map[string]secret.Value) error {
	return k.batch(ctx, "write", func(b *ssBatch) error {
		for _, key := range SortedKeys(items) {
			if err := b.put(ctx, k.service, key, items[key].Reveal()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (k *Keychain) Delete(ctx context.Context, keys []string) error {
	return k.batch(ctx, "delete", func(b *ssBatch) error {
		for _, key := range keys {
			if err := b.delete(ctx, k.service, key); err != nil {
				return err
			}
		}
		return nil
	})
}

// openReader opens one session for reading many keys (bulkGetter): each
// read is then a search and a GetSecret, not a whole session.
func (k *Keychain) openReader(ctx context.Context) (keyReader, error) {
	b, err := k.openSS(ctx)
	if err != nil {
		if errors.Is(err, ErrKeychainUnavailable) {
			return nil, err
		}
		return nil, keychainError("read", err)
	}
	return &ssReader{b: b, service: k.service}, nil
}

type ssReader struct {
	b       *ssBatch
	service string
}

func (r *ssReader) Get(ctx context.Context, key string) (secret.Value, error) {
	v, err := r.b.get(ctx, r.service, key)
	if err != nil && !errors.Is(err, ErrValueMissing) {
		return secret.Value{}, keychainError("read", err)
	}
	return v, err
}

func (r *ssReader) Close() { r.b.close() }
