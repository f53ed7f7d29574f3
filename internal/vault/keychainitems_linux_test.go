package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/secret"
	dbus "github.com/godbus/dbus/v5"
)

// randomValue is a high-entropy canary value.
func randomValue(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// assertNoValueForms fails if path holds any of values in raw, base64, hex,
// URL- or JSON-escaped form.
func assertNoValueForms(t *testing.T, path string, values ...string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		quoted, _ := json.Marshal(v)
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)),
			hex.EncodeToString([]byte(v)), url.QueryEscape(v), strings.Trim(string(quoted), `"`)} {
			if strings.Contains(string(data), form) {
				t.Fatalf("%s holds a form of a value", path)
			}
		}
	}
}

// setItems replaces the remembered paths of k's file.
func setItems(t *testing.T, k *Keychain, items map[string]dbus.ObjectPath) {
	t.Helper()
	data, err := json.Marshal(knownItems{Service: k.service, Items: items})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.itemsFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeychainRemembersItems: writes and searches remember each key's item
// path, a read by remembered paths is one GetSecrets with no search, a key
// without a remembered path or a path with no item makes that read decline
// (nothing read, no error), and a delete forgets. The file holds no value.
func TestKeychainRemembersItems(t *testing.T) {
	k := testKeychain(t)
	k.itemsFile = filepath.Join(t.TempDir(), "keychain-items.json")
	ctx := context.Background()
	va, vb := randomValue(t, "sk_a_"), randomValue(t, "sk_b_")
	if err := k.Put(ctx, map[string]secret.Value{"ws/p/A": secret.New([]byte(va)), "ws/p/B": secret.New([]byte(vb))}); err != nil {
		t.Fatal(err)
	}
	items := k.loadItems()
	if items["ws/p/A"] == "" || items["ws/p/B"] == "" || items["ws/p/A"] == items["ws/p/B"] {
		t.Fatalf("after Put, remembered %v: want a path of its own for A and B", items)
	}
	assertNoValueForms(t, k.itemsFile, va, vb)

	var got map[string]secret.Value
	var ok bool
	kconn := func() *dbus.Conn { return k.bus.conn }
	calls := callsOf(t, func() {
		var err error
		if got, ok, err = k.getKnown(ctx, []string{"ws/p/A", "ws/p/B"}); err != nil {
			t.Fatal(err)
		}
	}, kconn)
	if !ok || string(got["ws/p/A"].Reveal()) != va || string(got["ws/p/B"].Reveal()) != vb {
		t.Fatalf("getKnown: ok %v, %d values, not the ones written", ok, len(got))
	}
	if calls["SearchItems"] != 0 || calls["GetSecrets"] != 1 {
		t.Fatalf("getKnown called %v: want one GetSecrets and no search", calls)
	}

	// Nothing remembered for a key: declined before any call.
	calls = callsOf(t, func() {
		if got, ok, _ = k.getKnown(ctx, []string{"ws/p/A", "ws/p/NEVER"}); ok || got != nil {
			t.Fatalf("getKnown with an unknown key: ok %v, %d values", ok, len(got))
		}
	}, kconn)
	if calls["GetSecrets"] != 0 || calls["OpenSession"] != 0 {
		t.Fatalf("getKnown with an unknown key called %v", calls)
	}

	// A path the daemon has no item at: declined, no error.
	setItems(t, k, map[string]dbus.ObjectPath{"ws/p/A": items["ws/p/A"], "ws/p/B": items["ws/p/A"][:strings.LastIndex(string(items["ws/p/A"]), "/")+1] + "999999"})
	if got, ok, err := k.getKnown(ctx, []string{"ws/p/A", "ws/p/B"}); ok || got != nil || err != nil {
		t.Fatalf("getKnown with a path to no item: ok %v, %d values, %v", ok, len(got), err)
	}
	// Two keys on one path: declined without asking.
	setItems(t, k, map[string]dbus.ObjectPath{"ws/p/A": items["ws/p/A"], "ws/p/B": items["ws/p/A"]})
	if _, ok, err := k.getKnown(ctx, []string{"ws/p/A", "ws/p/B"}); ok || err != nil {
		t.Fatalf("getKnown with two keys on one path: ok %v, %v", ok, err)
	}
	// A search puts the right path back.
	if _, err := k.getMany(ctx, []string{"ws/p/B"}); err != nil {
		t.Fatal(err)
	}
	if again := k.loadItems(); again["ws/p/B"] != items["ws/p/B"] {
		t.Fatalf("after a search, B is remembered at %q, want %q", again["ws/p/B"], items["ws/p/B"])
	}

	if err := k.Delete(ctx, []string{"ws/p/A"}); err != nil {
		t.Fatal(err)
	}
	if left := k.loadItems(); left["ws/p/A"] != "" || left["ws/p/B"] == "" {
		t.Fatalf("after deleting A, remembered %v: want B only", left)
	}
	// Another vault's file remembers nothing for this one.
	other := testKeychain(t)
	other.itemsFile = k.itemsFile
	if n := len(other.loadItems()); n != 0 {
		t.Fatalf("another vault read %d remembered paths from this one's file", n)
	}
	assertNoValueForms(t, k.itemsFile, va, vb)
}

// TestStoreValuesRememberedPaths: a Store reads by remembered paths only
// what matches the index's fingerprints. A remembered path that names
// another secret's item (a stale path: the item deleted, the path given to
// another) never hands out that other value: the read falls back to a
// search, returns the right value and remembers the right path; the same
// when the fingerprint key's own path is wrong. A vault made before paths
// were remembered learns them on its first read. A locked keychain is
// reported locked. No file of the vault holds a value.
func TestStoreValuesRememberedPaths(t *testing.T) {
	st, dirs := keychainStore(t)
	ctx := context.Background()
	sel := Selection{Workspace: "default", Project: "default"}
	va, vb := randomValue(t, "sk_a_"), randomValue(t, "sk_b_")
	if _, err := st.PutSecrets(ctx, sel, []Put{{Name: "A", Value: secret.New([]byte(va)), Source: "test"},
		{Name: "B", Value: secret.New([]byte(vb)), Source: "test"}}, Upsert); err != nil {
		t.Fatal(err)
	}
	// A fresh Store, as the next process opens it.
	open := func() *Store {
		t.Helper()
		st, err := Open(dirs, Options{Getenv: os.Getenv})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	kc := keychainOf(dirs, st.Config.VaultID, os.Getenv)
	ka, kb := itemKey(sel, "A"), itemKey(sel, "B")
	right := kc.loadItems()
	if right[ka] == "" || right[kb] == "" || right[fingerprintKeyItem] == "" {
		t.Fatalf("after init and PutSecrets, remembered %v: want A, B and the fingerprint key", right)
	}
	read := func(names ...string) (map[string]secret.Value, map[string]int) {
		t.Helper()
		var got map[string]secret.Value
		st := open()
		calls := callsOf(t, func() {
			var err error
			if got, err = st.Values(ctx, sel, names); err != nil {
				t.Fatal(err)
			}
		}, storeConn(st))
		return got, calls
	}

	got, calls := read("A")
	if string(got["A"].Reveal()) != va || calls["SearchItems"] != 0 || calls["GetSecrets"] != 1 {
		t.Fatalf("read of A by its remembered path: right value %v, calls %v: want one GetSecrets, no search", string(got["A"].Reveal()) == va, calls)
	}

	cases := []struct {
		name  string
		items map[string]dbus.ObjectPath
	}{
		{"A and B swapped", map[string]dbus.ObjectPath{ka: right[kb], kb: right[ka], fingerprintKeyItem: right[fingerprintKeyItem]}},
		{"A at B's item", map[string]dbus.ObjectPath{ka: right[kb], kb: right[kb], fingerprintKeyItem: right[fingerprintKeyItem]}},
		{"the fingerprint key at A's item", map[string]dbus.ObjectPath{ka: right[ka], kb: right[kb], fingerprintKeyItem: right[ka]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			setItems(t, kc, c.items)
			got, calls := read("A", "B")
			if string(got["A"].Reveal()) != va || string(got["B"].Reveal()) != vb {
				t.Fatalf("read A=%v B=%v (true: the right value)", string(got["A"].Reveal()) == va, string(got["B"].Reveal()) == vb)
			}
			if calls["SearchItems"] == 0 {
				t.Fatalf("calls %v: a wrong path must lead to a search", calls)
			}
			now := kc.loadItems()
			if now[ka] != right[ka] || now[kb] != right[kb] {
				t.Fatalf("after the read, remembered A at %q and B at %q, want %q and %q", now[ka], now[kb], right[ka], right[kb])
			}
			if now[fingerprintKeyItem] != "" && now[fingerprintKeyItem] != right[fingerprintKeyItem] {
				t.Fatalf("the fingerprint key is still remembered at the wrong path %q", now[fingerprintKeyItem])
			}
		})
	}

	// A vault from before paths were remembered: the first read searches,
	// for the fingerprint key too, and the next needs no search.
	if err := os.Remove(dirs.KeychainItemsFile()); err != nil {
		t.Fatal(err)
	}
	if _, calls := read("A"); calls["SearchItems"] != 2 {
		t.Fatalf("first read without remembered paths called %v: want a search for A and one for the fingerprint key", calls)
	}
	if got, calls := read("A"); string(got["A"].Reveal()) != va || calls["SearchItems"] != 0 || calls["GetSecrets"] != 1 {
		t.Fatalf("second read called %v: want one GetSecrets, no search", calls)
	}

	unlock := lockLogin(t)
	setItems(t, kc, right)
	if _, err := open().Values(ctx, sel, []string{"A"}); !errors.Is(err, ErrKeychainLocked) {
		unlock()
		t.Fatalf("a read on a locked keychain: %v, want ErrKeychainLocked", err)
	}
	unlock()

	for _, dir := range []string{dirs.Config, dirs.Data, dirs.State} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.Type().IsRegular() {
				assertNoValueForms(t, filepath.Join(dir, e.Name()), va, vb)
			}
		}
	}
}
