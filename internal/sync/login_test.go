package sync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	syncserver "github.com/agentsecrets/agentsecrets/internal/server"
	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// tamperer sits in front of the real server (in process, on SQLite) and
// lets a case rewrite the account in the answer to a login: the malicious
// server of the login step. It records the requests it passed on.
type tamperer struct {
	real   http.Handler
	mu     gosync.Mutex
	edit   func(a *syncapi.Account)
	routes []string
}

func (tp *tamperer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tp.mu.Lock()
	tp.routes = append(tp.routes, r.Method+" "+r.URL.Path)
	edit := tp.edit
	tp.mu.Unlock()
	if edit == nil || r.URL.Path != syncapi.PathSessions {
		tp.real.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	tp.real.ServeHTTP(rec, r)
	var resp syncapi.SessionResponse
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		w.WriteHeader(rec.Code)
		_, _ = io.Copy(w, rec.Body)
		return
	}
	edit(&resp.Account)
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func (tp *tamperer) saw(route string) bool {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, r := range tp.routes {
		if r == route {
			return true
		}
	}
	return false
}

func realServer(t *testing.T) (*tamperer, string) {
	t.Helper()
	ctx := context.Background()
	store, err := syncserver.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv, err := syncserver.New(ctx, syncserver.Options{Store: store, Signup: "open", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		// Many logins in a row from one test: not the rate limit under test.
		AccountLimit: syncserver.Limit{Burst: 100, Every: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	tp := &tamperer{real: srv}
	hs := httptest.NewServer(tp)
	t.Cleanup(hs.Close)
	return tp, hs.URL
}

// TestLoginRefusesSwappedKeys: a server that answers a login with other
// public keys, or other wrapped private keys, than the account's is
// refused with a conflict naming the check, and the session it opened is
// ended. Untampered, the login yields the identity account creation made.
func TestLoginRefusesSwappedKeys(t *testing.T) {
	ctx := context.Background()
	tp, url := realServer(t)
	c := newClient(t, url, nil)
	password := []byte("a long enough password")
	key, err := agentsync.NewAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	created, err := agentsync.CreateAccount(ctx, c, "ada@example.com", "first", password, key)
	if err != nil {
		t.Fatal(err)
	}
	want := created.Identity.Public()

	other, err := agentsync.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	otherWrapKey, err := crypto.Random(32)
	if err != nil {
		t.Fatal(err)
	}
	otherWrapped, err := agentsync.WrapIdentity(other, otherWrapKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(a *syncapi.Account)
	}{
		{"public keys swapped", func(a *syncapi.Account) { a.PublicKeys = other.Public() }},
		{"sealing key swapped", func(a *syncapi.Account) { a.PublicKeys.Seal = other.Public().Seal }},
		{"wrapped keys replaced", func(a *syncapi.Account) { a.WrappedPrivateKeys = otherWrapped }},
		{"wrapped keys and public keys of another identity", func(a *syncapi.Account) {
			a.PublicKeys, a.WrappedPrivateKeys = other.Public(), otherWrapped
		}},
		{"wrapped keys truncated", func(a *syncapi.Account) { a.WrappedPrivateKeys = a.WrappedPrivateKeys[:20] }},
		{"another email", func(a *syncapi.Account) { a.Email = "eve@example.com" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp.mu.Lock()
			tp.edit, tp.routes = tc.edit, nil
			tp.mu.Unlock()
			_, err := agentsync.Login(ctx, c, "ada@example.com", "second", password, secret.New(bytes.Clone(key)))
			if rep := errcode.Classify(err); rep.Code != errcode.Conflict || agentsync.CheckOf(err) == "" {
				t.Fatalf("got %+v", rep)
			}
			if !tp.saw("DELETE " + syncapi.PathSessionCurrent) {
				t.Error("the session of a refused login was not ended")
			}
		})
	}
	tp.mu.Lock()
	tp.edit = nil
	tp.mu.Unlock()
	got, err := agentsync.Login(ctx, c, "ada@example.com", "second", password, secret.New(bytes.Clone(key)))
	if err != nil {
		t.Fatal(err)
	}
	if pub := got.Identity.Public(); !bytes.Equal(pub.Seal, want.Seal) || !bytes.Equal(pub.Sign, want.Sign) {
		t.Fatal("login yielded another identity")
	}
	// A wrong account key or password is the server's refusal.
	wrong := bytes.Clone(key)
	wrong[0] ^= 1
	for name, try := range map[string]func() error{
		"account key": func() error {
			_, err := agentsync.Login(ctx, c, "ada@example.com", "x", password, secret.New(wrong))
			return err
		},
		"password": func() error {
			_, err := agentsync.Login(ctx, c, "ada@example.com", "x", []byte("another long password"), secret.New(bytes.Clone(key)))
			return err
		},
	} {
		if rep := errcode.Classify(try()); rep.Code != errcode.Unauthorized || rep.Hint == "" {
			t.Errorf("wrong %s: %+v", name, rep)
		}
	}
}
