package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	dbus "github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

// These tests use the real Secret Service: run them under
// scripts/with-secret-service (a throwaway gnome-keyring).

// testKeychain returns a Keychain on a vault id of its own, or skips (fails
// under AGENTSECRETS_TEST_REQUIRE_KEYCHAIN) without a session bus.
func testKeychain(t testing.TB) *Keychain {
	t.Helper()
	if err := keychainReachable(os.Getenv); err != nil {
		if os.Getenv("AGENTSECRETS_TEST_REQUIRE_KEYCHAIN") != "" {
			t.Fatal("no Secret Service: run under scripts/with-secret-service")
		}
		t.Skip("no D-Bus session: run under scripts/with-secret-service")
	}
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return NewKeychain(fmt.Sprintf("test-%s-%d", name, time.Now().UnixNano()), os.Getenv)
}

// itemCount counts the items go-keyring would match for key.
func itemCount(t testing.TB, k *Keychain, key string) int {
	t.Helper()
	b, err := k.openSS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	found, err := b.findAll(context.Background(), k.service, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	return len(found[0])
}

func putOne(t testing.TB, k *Keychain, key, value string) {
	t.Helper()
	if err := k.Put(context.Background(), map[string]secret.Value{key: secret.New([]byte(value))}); err != nil {
		t.Fatal(err)
	}
}

func getOne(t testing.TB, k *Keychain, key string) string {
	t.Helper()
	v, err := k.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Wipe()
	return string(v.Reveal())
}

// TestSecretServiceMatchesGoKeyring: every way of writing (the batch path,
// go-keyring) is read back by every way of reading, a first write and an
// overwrite alike, and an overwrite never leaves a second item: vaults
// written before the batch path stay readable and are overwritten in place.
func TestSecretServiceMatchesGoKeyring(t *testing.T) {
	writers := map[string]func(t testing.TB, k *Keychain, key, value string){
		"batch": putOne,
		"go-keyring": func(t testing.TB, k *Keychain, key, value string) {
			if err := keyring.Set(k.service, key, value); err != nil {
				t.Fatal(err)
			}
		},
	}
	readers := map[string]func(t testing.TB, k *Keychain, key string) string{
		"batch": getOne,
		"go-keyring": func(t testing.TB, k *Keychain, key string) string {
			v, err := keyring.Get(k.service, key)
			if err != nil {
				t.Fatal(err)
			}
			return v
		},
	}
	for first := range writers {
		for second := range writers {
			for reader := range readers {
				t.Run(first+"-then-"+second+"-read-by-"+reader, func(t *testing.T) {
					k := testKeychain(t)
					const key = "ws/proj/API_KEY"
					writers[first](t, k, key, "first value")
					if got := readers[reader](t, k, key); got != "first value" {
						t.Fatalf("after the first write read %q", got)
					}
					writers[second](t, k, key, "second value")
					if got := readers[reader](t, k, key); got != "second value" {
						t.Fatalf("after the overwrite read %q", got)
					}
					if n := itemCount(t, k, key); n != 1 {
						t.Fatalf("%d items for one key", n)
					}
				})
			}
		}
	}
}

// TestSecretServiceBatch: one Put of new keys and keys go-keyring wrote
// stores every value, one item each; Delete removes what either wrote and
// ignores a missing key; the session reader bulkGetter uses reads them.
func TestSecretServiceBatch(t *testing.T) {
	k := testKeychain(t)
	ctx := context.Background()
	items := map[string]secret.Value{}
	for i := 0; i < 6; i++ {
		key := fmt.Sprintf("ws/proj/K%d", i)
		if i%2 == 0 {
			if err := keyring.Set(k.service, key, "old"); err != nil {
				t.Fatal(err)
			}
		}
		items[key] = secret.New([]byte("new " + key))
	}
	if err := k.Put(ctx, items); err != nil {
		t.Fatal(err)
	}
	get, keys, done := bulkGetter(k)
	if keys != nil {
		t.Fatal("a keychain cannot be listed: keys must be nil")
	}
	for key := range items {
		if v, err := keyring.Get(k.service, key); err != nil || v != "new "+key {
			t.Fatalf("go-keyring reads %s as %q, %v", key, v, err)
		}
		v, err := get(ctx, key)
		if err != nil || string(v.Reveal()) != "new "+key {
			t.Fatalf("the session reader reads %s as %q, %v", key, v.Reveal(), err)
		}
		v.Wipe()
		if n := itemCount(t, k, key); n != 1 {
			t.Fatalf("%d items for %s", n, key)
		}
	}
	if _, err := get(ctx, "ws/proj/NONE"); !errors.Is(err, ErrValueMissing) {
		t.Fatalf("a missing key read as %v, want ErrValueMissing", err)
	}
	done()
	if _, err := k.Get(ctx, "ws/proj/NONE"); !errors.Is(err, ErrValueMissing) {
		t.Fatalf("Get of a missing key: %v, want ErrValueMissing", err)
	}
	if err := k.Delete(ctx, append(SortedKeys(items), "ws/proj/NONE")); err != nil {
		t.Fatal(err)
	}
	for key := range items {
		if _, err := keyring.Get(k.service, key); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("%s after Delete: %v", key, err)
		}
		if n := itemCount(t, k, key); n != 0 {
			t.Fatalf("%d items for %s after Delete", n, key)
		}
	}
}

// lockLogin locks go-keyring's collection through the Secret Service and
// returns a function that unlocks it again without a prompt, through
// gnome-keyring's master-password call (the password is the one
// scripts/with-secret-service gives its throwaway keyring).
func lockLogin(t *testing.T) (unlock func()) {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	service := conn.Object(ssName, ssPath)
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := service.Call(ssService+".Lock", 0, []dbus.ObjectPath{ssLoginCollection}).Store(&locked, &prompt); err != nil {
		t.Fatalf("lock the keyring: %v", err)
	}
	// The scripts/test race step once saw every operation below succeed
	// right after this Lock. Wait until the collection reads locked, so
	// that what follows tests our code, and a daemon that did not lock
	// says so here.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		v, err := conn.Object(ssName, ssLoginCollection).GetProperty(ssCollection + ".Locked")
		if isLocked, _ := v.Value().(bool); err == nil && isLocked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collection does not read locked after Lock (locked %v, prompt %s): %v", locked, prompt, err)
		}
	}
	unlock = func() {
		var output dbus.Variant
		var session dbus.ObjectPath
		if err := service.Call(ssService+".OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&output, &session); err != nil {
			t.Fatalf("open a session: %v", err)
		}
		s := ssSecret{session, []byte{}, []byte("throwaway-password"), "text/plain"}
		if err := service.Call("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface.UnlockWithMasterPassword", 0, ssLoginCollection, s).Err; err != nil {
			t.Fatalf("unlock the keyring: %v", err)
		}
	}
	t.Cleanup(func() { unlock(); conn.Close() })
	return unlock
}

// TestSecretServiceLocked: with the collection locked every operation
// fails fast with ErrKeychainLocked and the unlock hint, and no error
// carries the value being written (canary).
func TestSecretServiceLocked(t *testing.T) {
	k := testKeychain(t)
	ctx := context.Background()
	putOne(t, k, "ws/proj/BEFORE", "before")
	const canary = "canary-7f3a9c1e-value-in-error"
	unlock := lockLogin(t)
	ops := map[string]func() error{
		"put": func() error {
			return k.Put(ctx, map[string]secret.Value{"ws/proj/NEW": secret.New([]byte(canary)), "ws/proj/BEFORE": secret.New([]byte(canary))})
		},
		"get":    func() error { _, err := k.Get(ctx, "ws/proj/BEFORE"); return err },
		"delete": func() error { return k.Delete(ctx, []string{"ws/proj/BEFORE"}) },
		"bulk-get": func() error {
			get, _, done := bulkGetter(k)
			defer done()
			_, err := get(ctx, "ws/proj/BEFORE")
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := op()
			if !errors.Is(err, ErrKeychainLocked) {
				t.Fatalf("err = %v, want ErrKeychainLocked", err)
			}
			if d := time.Since(start); d > KeychainTimeout/2 {
				t.Fatalf("took %s to report", d)
			}
			if msg := fmt.Sprintf("%v %+v", err, err); strings.Contains(msg, canary) || !strings.Contains(msg, "locked") {
				t.Fatalf("error %q: must say locked and never carry the value", msg)
			}
		})
	}
	unlock()
	if got := getOne(t, k, "ws/proj/BEFORE"); got != "before" {
		t.Fatalf("after unlock read %q", got)
	}
}

// BenchmarkKeychainPut200 writes 200 items in one Put, into an empty
// service ("new") and over the same keys again ("overwrite"), through the
// batch path and through go-keyring's per-item Set (the path before it).
// Run: scripts/with-secret-service go test ./internal/vault -run '^$' -bench KeychainPut200 -benchtime 3x
func BenchmarkKeychainPut200(b *testing.B) {
	ctx := context.Background()
	items := map[string]secret.Value{}
	for i := 0; i < 200; i++ {
		items[fmt.Sprintf("ws/proj/KEY_%03d", i)] = secret.New([]byte(fmt.Sprintf("value-%03d-%d", i, time.Now().UnixNano())))
	}
	paths := map[string]func(k *Keychain) error{
		"batch": func(k *Keychain) error { return k.Put(ctx, items) },
		"go-keyring": func(k *Keychain) error {
			for _, key := range SortedKeys(items) {
				if err := keyring.Set(k.service, key, string(items[key].Reveal())); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, path := range []string{"go-keyring", "batch"} {
		for _, mode := range []string{"new", "overwrite"} {
			b.Run(path+"/"+mode, func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					k := testKeychain(b)
					if mode == "overwrite" {
						if err := paths[path](k); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					if err := paths[path](k); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					// Keep the collection the same size for every run:
					// gnome-keyring's cost per write grows with it.
					if err := k.Delete(ctx, SortedKeys(items)); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
			})
		}
	}
}

// TestSecretServiceOneConnection: many batches from many goroutines, the
// way a running proxy reads values, all succeed over one D-Bus connection.
// A connection per batch, each opening with OpenSession, is what aborted
// gnome-keyring (see keychainConn); this load crashed it within seconds.
func TestSecretServiceOneConnection(t *testing.T) {
	k := testKeychain(t)
	ctx := context.Background()
	putOne(t, k, "ws/proj/READ", "value")
	if err := k.Delete(ctx, []string{"ws/proj/ABSENT"}); err != nil {
		t.Fatal(err)
	}
	first := k.bus.conn
	if first == nil {
		t.Fatal("no connection kept after a batch")
	}
	const workers, rounds = 8, 40
	errs := make(chan error, workers*rounds)
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < rounds; i++ {
				v, err := k.Get(ctx, "ws/proj/READ")
				if err == nil && string(v.Reveal()) != "value" {
					err = fmt.Errorf("read %q", v.Reveal())
				}
				v.Wipe()
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for w := 0; w < workers; w++ {
		<-done
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if k.bus.conn != first {
		t.Fatal("the Keychain connected again: batches must share one connection")
	}
	if got := getOne(t, k, "ws/proj/READ"); got != "value" {
		t.Fatalf("after the load read %q", got)
	}
}

// callsOf is the count, by member, of the Secret Service methods called on
// conn while fn ran. Other processes on the bus (another package's tests,
// run at the same time under one Secret Service) are not counted.
func callsOf(t *testing.T, fn func(), conn func() *dbus.Conn) map[string]int {
	t.Helper()
	by := callsBySender(t, fn)
	c := conn()
	if c == nil {
		t.Fatal("no D-Bus connection to count the calls of")
	}
	return by[c.Names()[0]]
}

// callsBySender watches the session bus as a monitor and counts, by sender
// and member, the Secret Service methods called while fn runs.
func callsBySender(t *testing.T, fn func()) map[string]map[string]int {
	t.Helper()
	mon, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	msgs := make(chan *dbus.Message, 4096)
	mon.Eavesdrop(msgs)
	rule := "type='method_call',destination='" + ssName + "'"
	// Every incoming message now goes to msgs, the reply included, so the
	// call does not wait for one; a monitor first loses its unique name,
	// and the bus says so: from then on it sees every call.
	if err := mon.BusObject().Go("org.freedesktop.DBus.Monitoring.BecomeMonitor", dbus.FlagNoReplyExpected, nil, []string{rule}, uint32(0)).Err; err != nil {
		t.Fatal(err)
	}
	timeout := time.After(KeychainTimeout)
	for started := false; !started; {
		select {
		case m := <-msgs:
			member, _ := m.Headers[dbus.FieldMember].Value().(string)
			started = member == "NameLost"
		case <-timeout:
			t.Fatal("the bus did not make the connection a monitor")
		}
	}
	fn()
	// A Ping on a connection of its own marks the end: the monitor sees
	// messages in the order the bus routed them.
	end, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	if err := end.Object(ssName, ssPath).Call("org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		t.Fatal(err)
	}
	calls := map[string]map[string]int{}
	for {
		select {
		case m := <-msgs:
			member, _ := m.Headers[dbus.FieldMember].Value().(string)
			sender, _ := m.Headers[dbus.FieldSender].Value().(string)
			if member == "Ping" && sender == end.Names()[0] {
				return calls
			}
			if calls[sender] == nil {
				calls[sender] = map[string]int{}
			}
			calls[sender][member]++
		case <-timeout:
			t.Fatalf("the monitor never saw the end mark; saw %v", calls)
		}
	}
}

// TestSecretServiceReadMany: many values, some keys without one, read in
// one session with one search per key and a single GetSecrets; a missing
// key is only absent, never an error.
func TestSecretServiceReadMany(t *testing.T) {
	k := testKeychain(t)
	ctx := context.Background()
	items := map[string]secret.Value{}
	var keys []string
	for i := range 40 {
		key := fmt.Sprintf("ws/proj/KEY_%02d", i)
		items[key] = secret.New([]byte(fmt.Sprintf("value-%02d", i)))
		keys = append(keys, key)
	}
	if err := k.Put(ctx, items); err != nil {
		t.Fatal(err)
	}
	keys = append(keys, "ws/proj/ABSENT_1", "ws/proj/ABSENT_2")
	var got map[string]secret.Value
	kconn := func() *dbus.Conn { return k.bus.conn }
	calls := callsOf(t, func() {
		var err error
		if got, err = k.getMany(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}, kconn)
	if len(got) != 40 {
		t.Fatalf("read %d values, want 40", len(got))
	}
	for key, v := range items {
		if string(got[key].Reveal()) != string(v.Reveal()) {
			t.Fatalf("%s: read %q", key, got[key].Reveal())
		}
	}
	if calls["GetSecrets"] != 1 || calls["GetSecret"] != 0 || calls["OpenSession"] != 1 || calls["SearchItems"] != len(keys) {
		t.Fatalf("Secret Service calls %v: want one session, one search per key and one GetSecrets", calls)
	}
	// Without a missing key nothing but the session, the searches and the
	// read: no Collections property, no Unlock.
	calls = callsOf(t, func() {
		if _, err := k.getMany(ctx, keys[:2]); err != nil {
			t.Fatal(err)
		}
	}, kconn)
	if calls["Get"] != 0 || calls["Unlock"] != 0 || calls["GetSecrets"] != 1 {
		t.Fatalf("Secret Service calls %v: an unlocked read needs no Unlock nor Collections", calls)
	}
	if _, err := k.Get(ctx, "ws/proj/ABSENT_1"); !errors.Is(err, ErrValueMissing) {
		t.Fatalf("Get of a missing key: %v, want ErrValueMissing", err)
	}
}

// TestSecretServiceReadManyLocked: a locked collection is reported locked,
// for a key with a value and for one without (never "missing"), and the
// values read again once it is unlocked.
func TestSecretServiceReadManyLocked(t *testing.T) {
	k := testKeychain(t)
	ctx := context.Background()
	putOne(t, k, "ws/proj/A", "value-a")
	unlock := lockLogin(t)
	for _, keys := range [][]string{{"ws/proj/A"}, {"ws/proj/ABSENT"}, {"ws/proj/A", "ws/proj/ABSENT"}} {
		if _, err := k.getMany(ctx, keys); !errors.Is(err, ErrKeychainLocked) {
			t.Fatalf("getMany(%v) on a locked keychain: %v, want ErrKeychainLocked", keys, err)
		}
	}
	unlock()
	got, err := k.getMany(ctx, []string{"ws/proj/A", "ws/proj/ABSENT"})
	if err != nil || len(got) != 1 || string(got["ws/proj/A"].Reveal()) != "value-a" {
		t.Fatalf("after unlock: %d values, %v", len(got), err)
	}
}

// keychainStore initialises a vault on the Secret Service (skipping
// without one) and returns it and its directories.
func keychainStore(t *testing.T) (*Store, home.Dirs) {
	t.Helper()
	testKeychain(t)
	root := t.TempDir()
	dirs := home.Dirs{Config: root, Data: filepath.Join(root, "data"), State: filepath.Join(root, "state"), Explicit: true}
	st, _, err := Init(context.Background(), dirs, InitOptions{Options: Options{Getenv: os.Getenv}, Backend: KindKeychain,
		AdminPassphrase: func() ([]byte, error) { return []byte("admin passphrase"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return st, dirs
}

// TestStoreValuesOneRead: a keychain Store reads several secrets of a
// project in one session and one GetSecrets, and a name whose value is gone
// fails with not_found naming it.
func TestStoreValuesOneRead(t *testing.T) {
	st, _ := keychainStore(t)
	ctx := context.Background()
	sel := Selection{Workspace: "default", Project: "default"}
	var err error
	names := []string{"A", "B", "C"}
	var puts []Put
	for _, n := range names {
		puts = append(puts, Put{Name: n, Value: secret.New([]byte("value-of-" + n)), Source: "test"})
	}
	if _, err := st.PutSecrets(ctx, sel, puts, Upsert); err != nil {
		t.Fatal(err)
	}
	var got map[string]secret.Value
	calls := callsOf(t, func() {
		if got, err = st.Values(ctx, sel, names); err != nil {
			t.Fatal(err)
		}
	}, storeConn(st))
	for _, n := range names {
		if string(got[n].Reveal()) != "value-of-"+n {
			t.Fatalf("%s: read %q", n, got[n].Reveal())
		}
	}
	if calls["OpenSession"] != 1 || calls["GetSecrets"] != 1 {
		t.Fatalf("Secret Service calls %v: want one session and one GetSecrets for three values", calls)
	}
	kc := NewKeychain(st.Config.VaultID, os.Getenv)
	if err := kc.Delete(ctx, []string{itemKey(sel, "B")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Values(ctx, sel, names); !errors.Is(err, ErrValueMissing) || !strings.Contains(err.Error(), "secret B") {
		t.Fatalf("a value gone from the keychain: %v, want ErrValueMissing naming B", err)
	}
}

// TestStoreWarm: Warm connects, greets the daemon and opens a session in
// the background, and the read that follows uses them.
func TestStoreWarm(t *testing.T) {
	st, dirs := keychainStore(t)
	ctx := context.Background()
	sel := Selection{Workspace: "default", Project: "default"}
	var err error
	if _, err := st.PutSecrets(ctx, sel, []Put{{Name: "A", Value: secret.New([]byte("value-of-A")), Source: "test"}}, Upsert); err != nil {
		t.Fatal(err)
	}
	// A fresh Store, as a new process opens it.
	st, err = Open(dirs, Options{Getenv: os.Getenv})
	if err != nil {
		t.Fatal(err)
	}
	warmed := func() bool {
		kc := storeKeychain(st)
		if kc == nil {
			return false
		}
		kc.bus.mu.Lock()
		defer kc.bus.mu.Unlock()
		return kc.bus.spare != ""
	}
	warm := callsOf(t, func() {
		st.Warm(ctx)
		for deadline := time.Now().Add(KeychainTimeout); !warmed(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("Warm opened no session")
			}
		}
	}, storeConn(st))
	if warm["Ping"] != 1 || warm["OpenSession"] != 1 || warm["SearchItems"] != 0 {
		t.Fatalf("Warm called %v: want one Ping, one OpenSession and nothing else", warm)
	}
	var got map[string]secret.Value
	read := callsOf(t, func() {
		if got, err = st.Values(ctx, sel, []string{"A"}); err != nil {
			t.Fatal(err)
		}
	}, storeConn(st))
	if string(got["A"].Reveal()) != "value-of-A" {
		t.Fatalf("read %q", got["A"].Reveal())
	}
	// The item's path is remembered from the write: no search.
	if read["Ping"] != 0 || read["OpenSession"] != 0 || read["SearchItems"] != 0 || read["GetSecrets"] != 1 {
		t.Fatalf("the read after Warm called %v: want the warm connection and session (no Ping, no OpenSession) and one GetSecrets", read)
	}
	// The spare session is used once: the next read opens its own.
	again := callsOf(t, func() {
		if _, err = st.Values(ctx, sel, []string{"A"}); err != nil {
			t.Fatal(err)
		}
	}, storeConn(st))
	if again["OpenSession"] != 1 {
		t.Fatalf("a second read called %v: want a session of its own", again)
	}
}

// storeKeychain returns st's keychain backend, once it has opened one.
func storeKeychain(st *Store) *Keychain {
	st.backendMu.Lock()
	defer st.backendMu.Unlock()
	kc, _ := st.backend.(*Keychain)
	return kc
}

// storeConn returns st's keychain connection, once it has one.
func storeConn(st *Store) func() *dbus.Conn {
	return func() *dbus.Conn {
		kc := storeKeychain(st)
		if kc == nil {
			return nil
		}
		kc.bus.mu.Lock()
		defer kc.bus.mu.Unlock()
		return kc.bus.conn
	}
}

// TestWarmFailureReportedOnce: when the warm cannot connect, the first read
// reports that failure instead of connecting a second time, so a caller
// of a bus that does not answer never waits for it twice.
func TestWarmFailureReportedOnce(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close() // a bus that hangs up during authentication
		}
	}()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock)
	k := NewKeychain("warm-failure", os.Getenv)
	k.startWarm(context.Background())
	if _, err := k.getMany(context.Background(), []string{"ws/proj/A"}); !errors.Is(err, ErrKeychainUnavailable) {
		t.Fatalf("read after a failed warm: %v, want ErrKeychainUnavailable", err)
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("the bus saw %d connections, want 1: the read connected again after the warm failed", n)
	}
	// The failure is reported once: the next read tries again.
	if _, err := k.getMany(context.Background(), []string{"ws/proj/A"}); err == nil {
		t.Fatal("a read from a bus that hangs up succeeded")
	}
	if n := accepted.Load(); n != 2 {
		t.Fatalf("the bus saw %d connections after a second read, want 2", n)
	}
}
