package vault

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

const (
	canaryKey     = "CANARY-account-key-5f1e2d3c4b5a69788796"
	canaryIdent   = "CANARY-identity-0a1b2c3d4e5f60718293"
	canaryAccess  = "as_at_CANARYaccess0123456789abcdef"
	canaryRefresh = "as_rt_CANARYrefresh0123456789abcdef"
)

func testAccount() Account {
	return Account{Server: "http://127.0.0.1:8787", Email: "ada@example.com", ID: "acct1", DeviceID: "dev1", SignedInAt: time.Now().UTC()}
}

func testMaterial() (AccountMaterial, Session) {
	return AccountMaterial{Key: secret.New([]byte(canaryKey)), Identity: secret.New([]byte(canaryIdent))},
		Session{Access: secret.New([]byte(canaryAccess)), AccessExpiresAt: time.Now().Add(time.Minute),
			Refresh: secret.New([]byte(canaryRefresh)), RefreshExpiresAt: time.Now().Add(time.Hour)}
}

// assertNoCanary scans a file for every canary in raw, base64 and hex form.
func assertNoCanary(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{canaryKey, canaryIdent, canaryAccess, canaryRefresh} {
		for _, form := range []string{c, base64.StdEncoding.EncodeToString([]byte(c)), base64.RawURLEncoding.EncodeToString([]byte(c)), hex.EncodeToString([]byte(c))} {
			if strings.Contains(string(b), form) {
				t.Fatalf("%s holds a form of %q", path, c[:12])
			}
		}
	}
}

func backendHas(t *testing.T, st *Store, key string) bool {
	t.Helper()
	b, err := st.openBackend(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := b.Get(context.Background(), key)
	if errors.Is(err, ErrValueMissing) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	v.Wipe()
	return true
}

func TestAccountItemsLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	if _, err := st.Session(ctx); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("fresh vault: %v", err)
	}
	m, sess := testMaterial()
	if err := st.SignIn(ctx, testAccount(), m, sess); err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, st.Dirs.IndexFile())
	got, err := st.Session(ctx)
	if err != nil || !got.Access.Equal(sess.Access) || !got.Refresh.Equal(sess.Refresh) || !got.AccessExpiresAt.Equal(sess.AccessExpiresAt) {
		t.Fatalf("session round trip: %v", err)
	}
	gm, err := st.AccountMaterial(ctx)
	if err != nil || !gm.Key.Equal(m.Key) || !gm.Identity.Equal(m.Identity) {
		t.Fatalf("material round trip: %v", err)
	}
	ix, _ := st.Index()
	if !ix.Account.SignedIn() || ix.Account.ID != "acct1" || len(ix.Pending) != 0 {
		t.Fatalf("index after sign-in: %+v pending %v", ix.Account, ix.Pending)
	}

	// Another account is refused before anything is written.
	other := testAccount()
	other.Email = "eve@example.com"
	if err := st.SignIn(ctx, other, m, sess); !errors.Is(err, ErrOtherAccount) {
		t.Fatalf("second account: %v", err)
	}

	if err := st.SignOut(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Session(ctx); !errors.Is(err, ErrSignedOut) {
		t.Fatalf("after logout: %v", err)
	}
	if backendHas(t, st, accountSessionItem) || !backendHas(t, st, accountKeyItem) || !backendHas(t, st, accountIdentityItem) {
		t.Fatal("logout must delete the session and keep the key and identity")
	}
	if _, err := st.AccountMaterial(ctx); err != nil {
		t.Fatalf("material after logout: %v", err)
	}
	if err := st.SignOut(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, k := range accountItems {
		if backendHas(t, st, k) {
			t.Fatalf("%s survived logout --forget-device", k)
		}
	}
	if _, err := st.AccountMaterial(ctx); !errors.Is(err, ErrNoAccountKey) {
		t.Fatalf("material after forget: %v", err)
	}
	ix, _ = st.Index()
	if ix.Account != nil || len(ix.Pending) != 0 {
		t.Fatalf("index after forget: %+v %v", ix.Account, ix.Pending)
	}
	assertNoCanary(t, st.Dirs.IndexFile())
}

// TestInterruptedAccountWrites leaves the state each crash point of a
// sign-in or sign-out leaves, then checks that doctor's consistency check
// is clean, that no session is served that the index does not name, and
// that the next write settles the leftovers like a secret's.
func TestInterruptedAccountWrites(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		// prepare brings the store to the state before the crash.
		prepare func(t *testing.T, st *Store)
		// crash performs the writes done before the crash.
		crash func(t *testing.T, st *Store, b Backend)
		// survive lists the items that must remain after settling.
		survive []string
	}{
		{"first sign-in after the items", func(*testing.T, *Store) {}, func(t *testing.T, st *Store, b Backend) {
			m, sess := testMaterial()
			must(t, st.withLock(ctx, func() error {
				must(t, st.journal(accountItems, nil))
				return b.Put(ctx, map[string]secret.Value{accountKeyItem: encodeBytes(m.Key), accountIdentityItem: encodeBytes(m.Identity), accountSessionItem: encodeSession(sess)})
			}))
		}, nil},
		{"sign-in after logout, after the items", signedOut, func(t *testing.T, st *Store, b Backend) {
			_, sess := testMaterial()
			must(t, st.withLock(ctx, func() error {
				must(t, st.journal(accountItems, nil))
				return b.Put(ctx, map[string]secret.Value{accountSessionItem: encodeSession(sess)})
			}))
		}, []string{accountKeyItem, accountIdentityItem}},
		{"logout after the index", signedIn, func(t *testing.T, st *Store, b Backend) {
			must(t, st.Update(ctx, func(ix *Index) error {
				now := time.Now()
				ix.Account.SignedOutAt = &now
				ix.Pending = append(ix.Pending, accountSessionItem)
				return nil
			}))
		}, []string{accountKeyItem, accountIdentityItem}},
		{"forget after the index", signedIn, func(t *testing.T, st *Store, b Backend) {
			must(t, st.Update(ctx, func(ix *Index) error {
				ix.Account = nil
				ix.Pending = append(ix.Pending, accountItems...)
				return nil
			}))
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := newTestStore(t)
			c.prepare(t, st)
			b, err := st.openBackend(ctx)
			must(t, err)
			c.crash(t, st, b)
			problems, err := st.Consistency(ctx)
			if err != nil || len(problems) != 0 {
				t.Fatalf("doctor after the crash: %v %v", problems, err)
			}
			if _, err := st.Session(ctx); !errors.Is(err, ErrSignedOut) {
				t.Fatalf("a session the index does not name was served: %v", err)
			}
			// Any later write settles the journal.
			_, err = st.PutSecrets(ctx, Selection{Workspace: DefaultName, Project: DefaultName}, []Put{{Name: "A", Value: secret.New([]byte("value-a")), Source: "set"}}, Upsert)
			must(t, err)
			for _, k := range accountItems {
				want := false
				for _, s := range c.survive {
					want = want || s == k
				}
				if got := backendHas(t, st, k); got != want {
					t.Errorf("%s present=%v after settling, want %v", k, got, want)
				}
			}
			ix, _ := st.Index()
			for _, k := range ix.Pending {
				if _, isAccount := ix.namedAccountItem(k); isAccount && !backendHas(t, st, k) {
					t.Errorf("journal still lists deleted %s", k)
				}
			}
		})
	}
}

func signedIn(t *testing.T, st *Store) {
	m, sess := testMaterial()
	must(t, st.SignIn(context.Background(), testAccount(), m, sess))
}

func signedOut(t *testing.T, st *Store) {
	signedIn(t, st)
	must(t, st.SignOut(context.Background(), false))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
