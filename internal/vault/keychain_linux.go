package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

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
// serve a whole batch, its calls are pipelined, and an existing item is
// overwritten with SetSecret. gnome-keyring rewrites its whole keyring file
// on every change (two saves for a new item, one for SetSecret): that cost,
// which grows with the collection, is the floor.
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

// ssBatch is one plain session and unlocked collection on the Keychain's
// connection.
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

// keychainConn is the one session-bus connection a Keychain makes, kept
// for the Keychain's life the way go-keyring keeps its shared one.
//
// Why not a connection per batch: gnome-keyring (42 through 50 at least)
// registers a caller in an idle callback scheduled by its message filter,
// and a method call can be dispatched before that callback ran. An
// OpenSession handled for a caller it does not know yet aborts the whole
// daemon (GNOME gnome-keyring#144, Debian #1147303; the log shows
// "gkd_secret_service_get_pkcs11_session: assertion 'client' failed"). A
// long-running proxy that connected per request crashed it within
// minutes. So each connection is made once, and its first message to the
// daemon is a Ping, which GDBus answers itself without touching the
// daemon's handlers: by the time OpenSession arrives the caller is known.
type keychainConn struct {
	mu   sync.Mutex
	conn *dbus.Conn
	// spare is a session warm opened on conn for the first batch to take.
	spare dbus.ObjectPath
	// warmAsked: startWarm was called; later calls return at once.
	warmAsked atomic.Bool
	// warming is closed when warm is done; nil if it never started.
	// Batches wait for it, so the daemon never has two calls of this
	// connection in flight (see pipelineWindow).
	warming chan struct{}
	// warmErr is why warm could not connect, for the first batch to
	// report: connecting again would make a caller of a daemon that does
	// not answer wait out a second KeychainTimeout.
	warmErr error
}

// waitWarm waits until a warm that was started is done, and returns, once,
// why it could not connect.
func (c *keychainConn) waitWarm(ctx context.Context) error {
	c.mu.Lock()
	w := c.warming
	c.mu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.warmErr
	c.warmErr = nil
	return err
}

// get returns the open connection, connecting (and greeting the daemon)
// when there is none or the bus closed it. getenv finds the bus.
func (c *keychainConn) get(ctx context.Context, getenv func(string) string) (*dbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.Connected() {
		return c.conn, nil
	}
	// A private connection: a context given to ConnectSessionBus would
	// bound the connection's life, not the dial. The pipelined handshake
	// first; godbus's own for an address it does not take, or a daemon
	// that wants another mechanism.
	conn, err := dialSessionBus(getenv)
	if errors.Is(err, errBusUnpipelined) {
		conn, err = dbus.ConnectSessionBus()
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, KeychainTimeout)
	defer cancel()
	if err := conn.Object(ssName, ssPath).CallWithContext(ctx, "org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		_ = conn.Close()
		return nil, err
	}
	c.conn = conn
	return conn, nil
}

// startWarm connects, greets the daemon and opens a session in the
// background, ahead of the first batch, which then finds them ready. The
// first batch reports a failure to connect as its own; a session that
// could not be opened it opens itself, and says why if that fails too.
func (k *Keychain) startWarm(ctx context.Context) {
	if k.Available() != nil {
		return
	}
	// Once per Keychain, decided before taking the lock: a warm holds it
	// while it connects, and a command that asks again (call opens its
	// store twice) must not wait for that here.
	if !k.bus.warmAsked.CompareAndSwap(false, true) {
		return
	}
	done := make(chan struct{})
	k.bus.mu.Lock()
	defer k.bus.mu.Unlock()
	if k.bus.warming != nil || k.bus.conn != nil {
		return
	}
	k.bus.warming = done
	go func() {
		defer close(done)
		k.warm(ctx)
	}()
}

func (k *Keychain) warm(ctx context.Context) {
	conn, err := k.bus.get(ctx, k.getenv)
	if err != nil {
		k.bus.mu.Lock()
		k.bus.warmErr = err
		k.bus.mu.Unlock()
		return
	}
	b := &ssBatch{conn: conn}
	if b.openSession(ctx) == nil {
		k.bus.mu.Lock()
		defer k.bus.mu.Unlock()
		if k.bus.conn == conn && k.bus.spare == "" {
			k.bus.spare = b.session
			return
		}
		b.close()
	}
}

// takeSpare returns the session warm opened on conn, once.
func (c *keychainConn) takeSpare(conn *dbus.Conn) dbus.ObjectPath {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.spare
	c.spare = ""
	if c.conn != conn {
		return ""
	}
	return s
}

// openSS opens a plain session on the Keychain's connection (Available
// has ruled out autolaunch; the bus is private to the user's session, and
// plain is what go-keyring does) and unlocks go-keyring's collection:
// "login" when it exists, else the default alias.
func (k *Keychain) openSS(ctx context.Context) (*ssBatch, error) {
	b, err := k.openSession(ctx)
	if err != nil {
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

// openSession opens a plain session on the Keychain's connection, without
// choosing or unlocking a collection: what a read needs (readMany).
func (k *Keychain) openSession(ctx context.Context) (*ssBatch, error) {
	if err := k.Available(); err != nil {
		return nil, err
	}
	if err := k.bus.waitWarm(ctx); err != nil {
		return nil, err
	}
	conn, err := k.bus.get(ctx, k.getenv)
	if err != nil {
		return nil, err
	}
	b := &ssBatch{conn: conn, collection: ssDefaultAlias, session: k.bus.takeSpare(conn)}
	if b.session == "" {
		if err := b.openSession(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// openSession opens the batch's plain session.
func (b *ssBatch) openSession(ctx context.Context) error {
	var output dbus.Variant
	return b.call(ctx, ssPath, ssService+".OpenSession", "plain", dbus.MakeVariant("")).Store(&output, &b.session)
}

// close ends the session; the connection stays for the next batch. The
// daemon ends a session when its connection drops anyway, so an error
// changes nothing, and close does not wait for the answer: messages on one
// connection are handled in order, and a one-shot command saves a round
// trip.
func (b *ssBatch) close() {
	if b.session != "" {
		_ = b.conn.Object(ssName, b.session).Go("org.freedesktop.Secret.Session.Close", dbus.FlagNoReplyExpected, nil).Err
	}
}

// errSSLocked says "locked" so keychainError maps it to ErrKeychainLocked.
var errSSLocked = errors.New("the collection is locked and was not unlocked")

func (b *ssBatch) unlock(ctx context.Context) error {
	return b.unlockObjects(ctx, []dbus.ObjectPath{b.collection})
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
	defer func() { _ = b.conn.RemoveMatchSignalContext(context.Background(), match...) }()
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

// pipelineWindow is how many calls of a batch are in flight at once. Eight
// saved a fifth of a 200-item write, but gnome-keyring twice dropped off the
// bus in runs with them, so batches go one call at a time until concurrent
// calls are shown safe; the one session and SetSecret keep most of the gain.
const pipelineWindow = 1

// pipeline makes n calls, sent by send with the channel godbus answers on,
// at most pipelineWindow in flight, and hands each answer to done in order.
// It stops at the first error; calls already sent still complete.
func (b *ssBatch) pipeline(ctx context.Context, n int, send func(ctx context.Context, i int, ch chan *dbus.Call) *dbus.Call, done func(i int, c *dbus.Call) error) error {
	calls := make([]*dbus.Call, n)
	cancels := make([]context.CancelFunc, n)
	defer func() {
		for _, cancel := range cancels {
			if cancel != nil {
				cancel()
			}
		}
	}()
	sent := 0
	for i := 0; i < n; i++ {
		for ; sent < n && sent < i+pipelineWindow; sent++ {
			var cctx context.Context
			cctx, cancels[sent] = context.WithTimeout(ctx, KeychainTimeout)
			calls[sent] = send(cctx, sent, make(chan *dbus.Call, 1))
		}
		c := <-calls[i].Done
		if err := done(i, c); err != nil {
			return err
		}
	}
	return nil
}

// findAll returns, for every key, the items go-keyring would find for it
// (one, unless something else wrote a duplicate).
func (b *ssBatch) findAll(ctx context.Context, service string, keys []string) ([][]dbus.ObjectPath, error) {
	found := make([][]dbus.ObjectPath, len(keys))
	collection := b.conn.Object(ssName, b.collection)
	err := b.pipeline(ctx, len(keys), func(ctx context.Context, i int, ch chan *dbus.Call) *dbus.Call {
		return collection.GoWithContext(ctx, ssCollection+".SearchItems", 0, ch, map[string]string{"service": service, "username": keys[i]})
	}, func(i int, c *dbus.Call) error {
		return c.Store(&found[i])
	})
	return found, err
}

// ssWrite is one write of a batch: SetSecret on an existing item, or
// CreateItem when item is empty.
type ssWrite struct {
	key  string
	item dbus.ObjectPath
}

// putAll overwrites the value of every item that already has a key
// (SetSecret costs gnome-keyring one save of the keyring file; CreateItem
// with replace costs two and a search) and creates the item go-keyring
// creates for the others. replace stays true on create so that a
// concurrent writer of the same key cannot leave two items. paths holds
// the item each key was written to, for the writes that were done.
func (b *ssBatch) putAll(ctx context.Context, service string, items map[string]secret.Value) (paths map[string]dbus.ObjectPath, err error) {
	keys := SortedKeys(items)
	found, err := b.findAll(ctx, service, keys)
	if err != nil {
		return nil, err
	}
	var writes []ssWrite
	for i, key := range keys {
		if len(found[i]) == 0 {
			writes = append(writes, ssWrite{key: key})
		}
		for _, item := range found[i] {
			writes = append(writes, ssWrite{key, item})
		}
	}
	collection := b.conn.Object(ssName, b.collection)
	paths = make(map[string]dbus.ObjectPath, len(keys))
	err = b.pipeline(ctx, len(writes), func(ctx context.Context, i int, ch chan *dbus.Call) *dbus.Call {
		w := writes[i]
		s := ssSecret{Session: b.session, Parameters: []byte{}, Value: items[w.key].Reveal(), ContentType: ssContentType}
		if w.item != "" {
			return b.conn.Object(ssName, w.item).GoWithContext(ctx, ssItem+".SetSecret", 0, ch, s)
		}
		props := map[string]dbus.Variant{
			ssItem + ".Label":      dbus.MakeVariant(fmt.Sprintf("Password for '%s' on '%s'", w.key, service)),
			ssItem + ".Attributes": dbus.MakeVariant(map[string]string{"service": service, "username": w.key}),
		}
		return collection.GoWithContext(ctx, ssCollection+".CreateItem", 0, ch, props, s, true)
	}, func(i int, c *dbus.Call) error {
		w := writes[i]
		if w.item != "" {
			if c.Err == nil {
				paths[w.key] = w.item
			}
			return c.Err
		}
		var item, prompt dbus.ObjectPath
		if err := c.Store(&item, &prompt); err != nil {
			return err
		}
		if _, _, err := b.prompt(ctx, prompt); err != nil {
			return err
		}
		// "/" when a prompt created the item: its path is not known.
		if item != ssNoPrompt {
			paths[w.key] = item
		}
		return nil
	})
	return paths, err
}

// deleteAll removes every item with one of keys; none is not an error.
func (b *ssBatch) deleteAll(ctx context.Context, service string, keys []string) error {
	found, err := b.findAll(ctx, service, keys)
	if err != nil {
		return err
	}
	var items []dbus.ObjectPath
	for _, f := range found {
		items = append(items, f...)
	}
	return b.pipeline(ctx, len(items), func(ctx context.Context, i int, ch chan *dbus.Call) *dbus.Call {
		return b.conn.Object(ssName, items[i]).GoWithContext(ctx, ssItem+".Delete", 0, ch)
	}, func(i int, c *dbus.Call) error {
		var prompt dbus.ObjectPath
		if err := c.Store(&prompt); err != nil {
			return err
		}
		_, _, err := b.prompt(ctx, prompt)
		return err
	})
}

// open is openSS with its error mapped for op.
func (k *Keychain) open(ctx context.Context, op string) (*ssBatch, error) {
	b, err := k.openSS(ctx)
	if errors.Is(err, ErrKeychainUnavailable) {
		return nil, err // Available's own, already mapped
	}
	if err != nil {
		return nil, keychainError(op, err)
	}
	return b, nil
}

// batch runs fn on one open session and maps its error.
func (k *Keychain) batch(ctx context.Context, op string, fn func(*ssBatch) error) error {
	b, err := k.open(ctx, op)
	if err != nil {
		return err
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
	got, err := k.getMany(ctx, []string{key})
	if err != nil {
		return secret.Value{}, err
	}
	v, ok := got[key]
	if !ok {
		return secret.Value{}, ErrValueMissing
	}
	return v, nil
}

func (k *Keychain) Put(ctx context.Context, items map[string]secret.Value) error {
	return k.batch(ctx, "write", func(b *ssBatch) error {
		paths, err := b.putAll(ctx, k.service, items)
		k.rememberItems(paths)
		return err
	})
}

func (k *Keychain) Delete(ctx context.Context, keys []string) error {
	return k.batch(ctx, "delete", func(b *ssBatch) error {
		err := b.deleteAll(ctx, k.service, keys)
		// Forgotten even after a failure: some items may be gone.
		k.forgetKnown(keys)
		return err
	})
}

// readMany reads the values of keys through one session: a search per key
// on the Service (which answers, for every collection, which matching items
// are unlocked and which locked, so the usual case needs neither the
// Collections property nor an Unlock), an Unlock only of items found
// locked, and one GetSecrets for every item. A key with no item is absent
// from the result. It is reported missing only after the collection
// go-keyring uses was unlocked, as Get did before: "missing" from a locked
// keychain would send doctor and `secrets set` after a value that is there.
//
// items holds, for each key, the path of the item read ("" for none).
func (b *ssBatch) readMany(ctx context.Context, service string, keys []string) (values map[string]secret.Value, items []dbus.ObjectPath, err error) {
	type found struct{ unlocked, locked []dbus.ObjectPath }
	hits := make([]found, len(keys))
	svc := b.conn.Object(ssName, ssPath)
	err = b.pipeline(ctx, len(keys), func(ctx context.Context, i int, ch chan *dbus.Call) *dbus.Call {
		return svc.GoWithContext(ctx, ssService+".SearchItems", 0, ch, map[string]string{"service": service, "username": keys[i]})
	}, func(i int, c *dbus.Call) error {
		return c.Store(&hits[i].unlocked, &hits[i].locked)
	})
	if err != nil {
		return nil, nil, err
	}
	var locked []dbus.ObjectPath
	missing := false
	for _, h := range hits {
		// go-keyring's Get reads the first item; an unlocked one is
		// preferred because it costs no unlock.
		switch {
		case len(h.unlocked) > 0:
			items = append(items, h.unlocked[0])
		case len(h.locked) > 0:
			items, locked = append(items, h.locked[0]), append(locked, h.locked[0])
		default:
			items = append(items, "")
			missing = true
		}
	}
	if len(locked) > 0 {
		if err := b.unlockObjects(ctx, locked); err != nil {
			return nil, nil, err
		}
	}
	if missing {
		if err := b.useCollection(ctx); err != nil {
			return nil, nil, err
		}
	}
	wanted := slices.DeleteFunc(slices.Clone(items), func(p dbus.ObjectPath) bool { return p == "" })
	out := make(map[string]secret.Value, len(keys))
	if len(wanted) == 0 {
		return out, items, nil
	}
	var secrets map[dbus.ObjectPath]ssSecret
	if err := b.call(ctx, ssPath, ssService+".GetSecrets", wanted, b.session).Store(&secrets); err != nil {
		return nil, nil, err
	}
	for i, item := range items {
		if s, ok := secrets[item]; ok && item != "" {
			out[keys[i]] = secret.New(s.Value)
		}
	}
	// Every item asked for was unlocked: one that still has no secret
	// was deleted between the search and the read.
	return out, items, nil
}

// unlockObjects unlocks objects (collections, or items and so their
// collections), with the prompt a locked keychain shows.
func (b *ssBatch) unlockObjects(ctx context.Context, items []dbus.ObjectPath) error {
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := b.call(ctx, ssPath, ssService+".Unlock", items).Store(&unlocked, &prompt); err != nil {
		return err
	}
	if len(unlocked) == len(items) {
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

// useCollection picks go-keyring's collection ("login" when it exists,
// else the default alias) and unlocks it.
func (b *ssBatch) useCollection(ctx context.Context) error {
	var collections []dbus.ObjectPath
	if err := b.call(ctx, ssPath, "org.freedesktop.DBus.Properties.Get", ssService, "Collections").Store(&collections); err != nil {
		return err
	}
	if slices.Contains(collections, ssLoginCollection) {
		b.collection = ssLoginCollection
	}
	return b.unlock(ctx)
}

// getMany reads many keys in one session (see readMany); a key without a
// value is absent from the result.
func (k *Keychain) getMany(ctx context.Context, keys []string) (map[string]secret.Value, error) {
	b, err := k.openSession(ctx)
	if errors.Is(err, ErrKeychainUnavailable) {
		return nil, err // Available's own, already mapped
	}
	if err != nil {
		return nil, keychainError("read", err)
	}
	defer b.close()
	// A read by remembered paths is checked against fingerprints, so it
	// needs the fingerprint key's path too; a vault whose paths were never
	// remembered (made before they were) learns it here, once.
	read := keys
	learnKey := k.itemsFile != "" && !slices.Contains(keys, fingerprintKeyItem) && k.loadItems()[fingerprintKeyItem] == ""
	if learnKey {
		read = append(slices.Clip(keys), fingerprintKeyItem)
	}
	out, items, err := b.readMany(ctx, k.service, read)
	if err != nil {
		return nil, keychainError("read", err)
	}
	k.rememberRead(read, items, out)
	if learnKey {
		if v, ok := out[fingerprintKeyItem]; ok {
			v.Wipe()
			delete(out, fingerprintKeyItem)
		}
	}
	return out, nil
}

// rememberRead remembers the path of every key a read found a value for,
// and forgets the keys it found none for.
func (k *Keychain) rememberRead(keys []string, items []dbus.ObjectPath, got map[string]secret.Value) {
	paths := make(map[string]dbus.ObjectPath, len(keys))
	for i, key := range keys {
		if _, ok := got[key]; ok {
			paths[key] = items[i]
		} else {
			paths[key] = ""
		}
	}
	k.rememberItems(paths)
}

// openReader opens one session for reading many keys (bulkGetter): each
// read is then a search and a GetSecrets, not a whole session.
func (k *Keychain) openReader(ctx context.Context) (keyReader, error) {
	b, err := k.openSession(ctx)
	if errors.Is(err, ErrKeychainUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, keychainError("read", err)
	}
	return &ssReader{b: b, k: k}, nil
}

type ssReader struct {
	b *ssBatch
	k *Keychain
}

func (r *ssReader) Get(ctx context.Context, key string) (secret.Value, error) {
	keys := []string{key}
	got, items, err := r.b.readMany(ctx, r.k.service, keys)
	if err != nil {
		return secret.Value{}, keychainError("read", err)
	}
	r.k.rememberRead(keys, items, got)
	v, ok := got[key]
	if !ok {
		return secret.Value{}, ErrValueMissing
	}
	return v, nil
}

func (r *ssReader) Close() { r.b.close() }
