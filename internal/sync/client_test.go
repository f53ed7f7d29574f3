package sync_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// fastRetry keeps the retry tests quick while still exercising backoff.
var fastRetry = agentsync.RetryPolicy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

func TestCheckServerURL(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8787", "http://127.0.0.1:8787", true},
		{"http://localhost:8787/", "http://localhost:8787", true},
		{"http://[::1]:8787", "http://[::1]:8787", true},
		{"https://Sync.Example.COM", "https://sync.example.com", true},
		{"https://sync.example.com/base/", "https://sync.example.com/base", true},
		{"http://sync.example.com", "", false},
		{"http://10.0.0.5:8787", "", false},
		{"http://127.0.0.1.example.com", "", false},
		{"ftp://127.0.0.1", "", false},
		{"https://user:hunter2pass@sync.example.com", "", false},
		{"https://sync.example.com/?a=b", "", false},
		{"https://sync.example.com/#x", "", false},
		{"https://sync.example.com:0", "", false},
		{"https://sync.example.com:70000", "", false},
		{"sync.example.com", "", false},
		{"", "", false},
	}
	for _, c := range cases {
		u, err := agentsync.CheckServerURL(c.in)
		if c.ok {
			if err != nil || u.String() != c.want {
				t.Errorf("%q: got %v, %v; want %s", c.in, u, err, c.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: accepted", c.in)
			continue
		}
		if rep := errcode.Classify(err); rep.Code != errcode.Usage || rep.Hint == "" || strings.Contains(rep.Message, "hunter2") {
			t.Errorf("%q: %+v", c.in, rep)
		}
	}
}

// server is a real HTTP server on 127.0.0.1 whose handler a case sets; it
// counts the requests it got.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status int, code, msg string, names ...string) {
	writeJSON(w, status, syncapi.Error{Error: syncapi.ErrorBody{Code: code, Message: msg, Names: names}})
}

func newClient(t *testing.T, url string, mod func(*agentsync.Options)) *agentsync.Client {
	t.Helper()
	opts := agentsync.Options{Server: url, Email: "ada@example.com", Retry: fastRetry, Timeout: 2 * time.Second}
	if mod != nil {
		mod(&opts)
	}
	c, err := agentsync.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestErrorMapping drives every class of misbehaving server against a
// read (prelogin: POST, retried as a read) and a write (account creation:
// never retried), and checks the code, the hint and how often the request
// was sent.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name        string
		handler     http.HandlerFunc
		maxResponse int64
		code        errcode.Code
		hint        string // substring of the hint
		msg         string // substring of the message
		readHits    int32  // requests a read makes
	}{
		{name: "5xx with an API error is retried for reads", handler: func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 503, "unavailable", "database is down")
		}, code: errcode.Unavailable, msg: "database is down", hint: "logs", readHits: 3},
		{name: "5xx page from a proxy", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			fmt.Fprint(w, "<html>bad gateway</html>")
		}, code: errcode.Unavailable, msg: "502", readHits: 3},
		{name: "slow server times out", handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}, code: errcode.Unavailable, msg: "did not answer in time", hint: "agentsecrets server", readHits: 3},
		{name: "truncated answer", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "500")
			w.WriteHeader(200)
			fmt.Fprint(w, `{"kdf":`)
		}, code: errcode.Unavailable, msg: "cut off", readHits: 3},
		{name: "oversized answer", maxResponse: 1024, handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"kdf":{"salt":"%s"}}`, strings.Repeat("A", 4096))
		}, code: errcode.TooLarge, msg: "larger than", readHits: 1},
		{name: "wrong content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>captive portal</html>")
		}, code: errcode.Unavailable, msg: "not JSON", hint: "--server", readHits: 1},
		{name: "unknown field", handler: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, map[string]any{"kdf": map[string]any{}, "surprise": 1})
		}, code: errcode.Unavailable, msg: "unknown field", readHits: 1},
		{name: "trailing data", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{} {}`)
		}, code: errcode.Unavailable, msg: "after the JSON", readHits: 1},
		{name: "malformed JSON", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"kdf": nope}`)
		}, code: errcode.Unavailable, msg: "syntax error", readHits: 1},
		{name: "unauthorized gets the login hint", handler: func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 401, "unauthorized", "wrong email or password")
		}, code: errcode.Unauthorized, hint: "agentsecrets login --server http://127.0.0.1", readHits: 1},
		{name: "rate limited", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(429)
		}, code: errcode.RateLimited, hint: "wait", readHits: 1},
		{name: "redirect is not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}, code: errcode.Unavailable, msg: "302", readHits: 1},
		{name: "a hostile message cannot drive the terminal", handler: func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 400, "usage", "bad\x1b[31m\u202e input")
		}, code: errcode.Usage, msg: "bad?[31m? input", readHits: 1},
		{name: "an unknown code is classified by status", handler: func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 404, "no_such_code", "gone")
		}, code: errcode.NotFound, readHits: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newServer(t, c.handler)
			cl := newClient(t, srv.URL, func(o *agentsync.Options) {
				o.MaxResponse = c.maxResponse
				if c.msg == "did not answer in time" {
					o.Timeout = 200 * time.Millisecond
				}
			})
			_, err := cl.Prelogin(context.Background(), "ada@example.com")
			check := func(err error) {
				t.Helper()
				rep := errcode.Classify(err)
				if err == nil || rep.Code != c.code || !strings.Contains(rep.Hint, c.hint) || !strings.Contains(rep.Message, c.msg) {
					t.Fatalf("got %+v (%v), want code %s, message ~%q, hint ~%q", rep, err, c.code, c.msg, c.hint)
				}
			}
			check(err)
			if agentsync.NotSent(err) {
				t.Errorf("an answered request is marked as never sent: %v", err)
			}
			if got := srv.hits.Load(); got != c.readHits {
				t.Errorf("a read was sent %d times, want %d", got, c.readHits)
			}
			srv.hits.Store(0)
			_, err = cl.CreateAccount(context.Background(), syncapi.CreateAccountRequest{Email: "ada@example.com"})
			check(err)
			if got := srv.hits.Load(); got != 1 {
				t.Errorf("a write was sent %d times, want exactly 1", got)
			}
		})
	}
}

// TestReadRetryRecovers: a read that fails twice with a 5xx and then
// succeeds returns the answer.
func TestReadRetryRecovers(t *testing.T) {
	var n atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			apiError(w, 500, "internal", "hiccup")
			return
		}
		writeJSON(w, 200, syncapi.PreloginResponse{})
	})
	if _, err := newClient(t, srv.URL, nil).Prelogin(context.Background(), "a@b.c"); err != nil {
		t.Fatal(err)
	}
	if srv.hits.Load() != 3 {
		t.Fatalf("hits %d", srv.hits.Load())
	}
}

// TestConflictNames: a push conflict keeps the names the server gave.
func TestConflictNames(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 409, "conflict", "heads moved", "A", "B")
	})
	st := signedInStore(t, srv.URL, time.Now().Add(time.Hour))
	cl := newClient(t, srv.URL, func(o *agentsync.Options) { o.Sessions = st })
	_, err := cl.Push(context.Background(), "ws", "proj", syncapi.PushRequest{})
	var ne *agentsync.NamesError
	if !errors.As(err, &ne) || strings.Join(ne.Names, ",") != "A,B" || errcode.Classify(err).Code != errcode.Conflict {
		t.Fatalf("got %v", err)
	}
	if srv.hits.Load() != 1 {
		t.Fatalf("a push was sent %d times", srv.hits.Load())
	}
}

// TestTransportErrors: nothing listening, an unresolvable host, TLS that
// does not verify, and TLS spoken to a plain HTTP server.
func TestTransportErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, syncapi.PreloginResponse{})
	}))
	defer tlsSrv.Close()
	plain := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	cases := []struct {
		name, url, msg, hint string
	}{
		{"refused", closed, "cannot connect", "agentsecrets server"},
		{"dns", "https://no-such-host.invalid", "cannot resolve", "agentsecrets server"},
		{"unknown CA", tlsSrv.URL, "unknown authority", agentsync.CAFileEnv},
		{"not TLS", strings.Replace(plain.URL, "http://", "https://", 1), "does not speak TLS", "http://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := newClient(t, c.url, nil).Prelogin(context.Background(), "a@b.c")
			rep := errcode.Classify(err)
			if rep.Code != errcode.Unavailable || !strings.Contains(rep.Message, c.msg) || !strings.Contains(rep.Hint, c.hint) {
				t.Fatalf("got %+v", rep)
			}
			// None of these reached the server: a write certainly did
			// not happen (account create relies on it).
			if !agentsync.NotSent(err) {
				t.Errorf("not marked as unsent: %v", err)
			}
		})
	}
	// The CA file makes the private CA trusted.
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	cl := newClient(t, tlsSrv.URL, func(o *agentsync.Options) {
		o.Getenv = func(k string) string {
			if k == agentsync.CAFileEnv {
				return caFile
			}
			return ""
		}
	})
	if _, err := cl.Prelogin(context.Background(), "a@b.c"); err != nil {
		t.Fatalf("with %s: %v", agentsync.CAFileEnv, err)
	}
	// A trusted certificate for another name: the test certificate names
	// 127.0.0.1 and example.com, not localhost.
	cl = newClient(t, strings.Replace(tlsSrv.URL, "127.0.0.1", "localhost", 1), func(o *agentsync.Options) {
		o.Getenv = func(string) string { return caFile }
	})
	_, err = cl.Prelogin(context.Background(), "a@b.c")
	if rep := errcode.Classify(err); rep.Code != errcode.Unavailable || !strings.Contains(rep.Message, "not valid for localhost") || !agentsync.NotSent(err) {
		t.Fatalf("hostname mismatch: %+v", rep)
	}
	// A CA file that is not PEM is a usage error at construction.
	bad := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = agentsync.NewClient(agentsync.Options{Server: tlsSrv.URL, Getenv: func(string) string { return bad }})
	if rep := errcode.Classify(err); rep.Code != errcode.Usage || !strings.Contains(rep.Hint, agentsync.CAFileEnv) {
		t.Fatalf("bad CA file: %+v", rep)
	}
}

// signedInStore is a real file vault signed in with tokens "as_at_0" and
// "as_rt_0", the access token expiring at exp.
func signedInStore(t *testing.T, srvURL string, exp time.Time) *vault.Store {
	t.Helper()
	root := t.TempDir()
	dirs := home.Dirs{Config: root, Data: filepath.Join(root, "data"), State: filepath.Join(root, "state"), Explicit: true}
	st := openStore(t, dirs, true)
	err := st.SignIn(context.Background(), vault.Account{Server: srvURL, Email: "ada@example.com", ID: "acct1", DeviceID: "dev1"},
		vault.AccountMaterial{Key: secret.New([]byte("k")), Identity: secret.New([]byte("i"))},
		vault.Session{Access: secret.New([]byte("as_at_0")), AccessExpiresAt: exp, Refresh: secret.New([]byte("as_rt_0")), RefreshExpiresAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func openStore(t *testing.T, dirs home.Dirs, create bool) *vault.Store {
	t.Helper()
	opts := vault.Options{Getenv: func(string) string { return "" }, VaultPassphrase: func(bool) ([]byte, error) { return []byte("vault passphrase"), nil }}
	if !create {
		st, err := vault.Open(dirs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, _, err := vault.Init(context.Background(), dirs, vault.InitOptions{Options: opts, Backend: "file",
		AdminPassphrase: func() ([]byte, error) { return []byte("admin passphrase"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// tokenServer issues as_at_N / as_rt_N on refresh, accepts only the newest
// access token, and revokes everything when a rotated refresh token comes
// back (as the real server does).
type tokenServer struct {
	mu        gosync.Mutex
	gen       int
	revoked   bool
	refreshes int
	reject    bool // refuse every access token
}

func (ts *tokenServer) handler(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	switch r.URL.Path {
	case syncapi.PathRefresh:
		var req syncapi.RefreshRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		ts.refreshes++
		if ts.revoked || req.RefreshToken != fmt.Sprintf("as_rt_%d", ts.gen) {
			ts.revoked = true
			apiError(w, 401, "unauthorized", "refresh token reused: device revoked")
			return
		}
		ts.gen++
		// Slow enough that a second process would overlap without the lock.
		time.Sleep(20 * time.Millisecond)
		writeJSON(w, 200, syncapi.SessionResponse{Session: syncapi.Session{
			AccessToken: fmt.Sprintf("as_at_%d", ts.gen), AccessExpiresAt: time.Now().Add(15 * time.Minute),
			RefreshToken: fmt.Sprintf("as_rt_%d", ts.gen), RefreshExpiresAt: time.Now().Add(time.Hour), DeviceID: "dev1"}})
	case syncapi.PathDevices:
		if ts.reject || ts.revoked || r.Header.Get("Authorization") != fmt.Sprintf("Bearer as_at_%d", ts.gen) {
			apiError(w, 401, "unauthorized", "token expired")
			return
		}
		writeJSON(w, 200, syncapi.DeviceList{Devices: []syncapi.Device{{ID: "dev1", Name: "laptop", Current: true}}})
	default:
		http.NotFound(w, r)
	}
}

// TestRefreshOnExpiry: an expired access token is refreshed before use,
// and the new tokens are stored in the vault.
func TestRefreshOnExpiry(t *testing.T) {
	ts := &tokenServer{}
	srv := newServer(t, ts.handler)
	st := signedInStore(t, srv.URL, time.Now().Add(-time.Minute))
	cl := newClient(t, srv.URL, func(o *agentsync.Options) { o.Sessions = st })
	if _, err := cl.Devices(context.Background()); err != nil {
		t.Fatal(err)
	}
	sess, err := st.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !sess.Access.Equal(secret.New([]byte("as_at_1"))) || !sess.Refresh.Equal(secret.New([]byte("as_rt_1"))) || ts.refreshes != 1 {
		t.Fatalf("stored session not the refreshed one (refreshes %d)", ts.refreshes)
	}
}

// TestRefreshOn401: a token the server refuses (though not expired by the
// clock) is refreshed once and the request repeated once.
func TestRefreshOn401(t *testing.T) {
	ts := &tokenServer{}
	srv := newServer(t, ts.handler)
	st := signedInStore(t, srv.URL, time.Now().Add(time.Hour))
	cl := newClient(t, srv.URL, func(o *agentsync.Options) { o.Sessions = st })
	if _, err := cl.Devices(context.Background()); err != nil {
		t.Fatal(err) // as_at_0 is valid at gen 0
	}
	ts.mu.Lock()
	ts.reject = true
	ts.mu.Unlock()
	srv.hits.Store(0)
	_, err := cl.Devices(context.Background())
	rep := errcode.Classify(err)
	if rep.Code != errcode.Unauthorized || !strings.Contains(rep.Hint, "agentsecrets login --server "+srv.URL+" --email ada@example.com") {
		t.Fatalf("got %+v", rep)
	}
	// devices, refresh, devices again: one refresh, one repeat, no loop.
	if srv.hits.Load() != 3 || ts.refreshes != 1 {
		t.Fatalf("hits %d refreshes %d", srv.hits.Load(), ts.refreshes)
	}
}

// TestConcurrentRefreshSpendsTokenOnce: two processes (two Stores on one
// home, two clients) find the access token expired at once. The store
// lock makes the second see the first's new tokens, so the refresh token
// is spent once and the device is not revoked for reuse.
func TestConcurrentRefreshSpendsTokenOnce(t *testing.T) {
	ts := &tokenServer{}
	srv := newServer(t, ts.handler)
	st := signedInStore(t, srv.URL, time.Now().Add(-time.Minute))
	st2 := openStore(t, st.Dirs, false)
	var wg gosync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		s := st
		if i%2 == 1 {
			s = st2
		}
		cl := newClient(t, srv.URL, func(o *agentsync.Options) { o.Sessions = s })
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = cl.Devices(context.Background())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", i, err)
		}
	}
	if ts.refreshes != 1 || ts.revoked {
		t.Fatalf("refreshes %d, revoked %v", ts.refreshes, ts.revoked)
	}
}

// TestSignedOutIsUnauthorized: no session means unauthorized with the
// login hint, before any request.
func TestSignedOutIsUnauthorized(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	st := signedInStore(t, srv.URL, time.Now().Add(time.Hour))
	if err := st.SignOut(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	_, err := newClient(t, srv.URL, func(o *agentsync.Options) { o.Sessions = st }).Devices(context.Background())
	if rep := errcode.Classify(err); rep.Code != errcode.Unauthorized || !strings.Contains(rep.Hint, "agentsecrets login") || srv.hits.Load() != 0 {
		t.Fatalf("got %+v, hits %d", rep, srv.hits.Load())
	}
}
