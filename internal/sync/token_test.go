package sync

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/server"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// The vector of docs/protocol.md, "Service tokens": secret 00 01 … 1f,
// server https://sync.example.com. The derivations were checked against
// an independent HKDF (Python's hmac/hashlib).
const (
	vecTokenServer = "https://sync.example.com"
	vecToken       = "ast1.aHR0cHM6Ly9zeW5jLmV4YW1wbGUuY29t.aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
	vecTokenID     = "048ca5f05b9d80ada34394527834c597"
	vecTokenAuth   = "cd29f75a066526d90ae1f9f64e632da0f03f9d2da2df509085c7aa072c399985"
	vecTokenWrap   = "7d85fc5b3b3893eaf3a6e92dfdc5017fb12803a5ef659e2da75f3e3147033d4b"
)

func vecTokenSecret() []byte {
	s := make([]byte, TokenSecretSize)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func TestTokenVector(t *testing.T) {
	sec := vecTokenSecret()
	if got := FormatToken(vecTokenServer, sec); got != vecToken {
		t.Fatalf("FormatToken = %s", got)
	}
	server, got, err := ParseToken(" " + vecToken + "\n")
	if err != nil || server != vecTokenServer || !bytes.Equal(got, sec) {
		t.Fatalf("ParseToken = %q %x %v", server, got, err)
	}
	k, err := DeriveTokenKeys(sec)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != vecTokenID || hex.EncodeToString(k.AuthKey) != vecTokenAuth || hex.EncodeToString(k.WrapKey) != vecTokenWrap || k.AccountID() != "tok-"+vecTokenID {
		t.Fatalf("keys = %s %x %x", k.ID, k.AuthKey, k.WrapKey)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	for _, server := range []string{"https://sync.example.com", "https://sync.example.com:8443/base", "http://127.0.0.1:9000", "http://[::1]:80"} {
		sec, err := NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		tok := FormatToken(server, sec)
		s, got, err := ParseToken(tok)
		if err != nil || s != server || !bytes.Equal(got, sec) {
			t.Errorf("%s: %q %v", server, s, err)
		}
	}
}

// TestParseTokenRefusals: every malformed token is a usage error that
// never echoes the input, whichever part is wrong.
func TestParseTokenRefusals(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	sec := vecToken[strings.LastIndexByte(vecToken, '.')+1:]
	srv := b64(vecTokenServer)
	cases := map[string]string{
		"empty":                 "",
		"no prefix":             srv + "." + sec,
		"other version":         "ast2." + srv + "." + sec,
		"upper prefix":          "AST1." + srv + "." + sec,
		"one part":              "ast1." + srv,
		"three parts":           "ast1." + srv + "." + sec + ".x",
		"padded server":         "ast1." + base64.URLEncoding.EncodeToString([]byte(vecTokenServer+"x")) + "." + sec,
		"std base64 server":     "ast1." + base64.RawStdEncoding.EncodeToString([]byte("https://s.example.com/?>")) + "." + sec,
		"not a URL":             "ast1." + b64("sync.example.com") + "." + sec,
		"plain http remote":     "ast1." + b64("http://sync.example.com") + "." + sec,
		"URL not normal":        "ast1." + b64("https://SYNC.example.com/") + "." + sec,
		"user info":             "ast1." + b64("https://u:p@sync.example.com") + "." + sec,
		"short secret":          "ast1." + srv + "." + sec[:51],
		"long secret":           "ast1." + srv + "." + sec + "a",
		"upper secret":          "ast1." + srv + "." + strings.ToUpper(sec),
		"secret outside a-z2-7": "ast1." + srv + "." + sec[:51] + "1",
		"secret padded":         "ast1." + srv + "." + sec + "====",
		"non-canonical bits":    "ast1." + srv + "." + sec[:51] + "r",
		"space inside":          "ast1." + srv + ". " + sec,
	}
	for name, tok := range cases {
		_, got, err := ParseToken(tok)
		if err == nil || errcode.Classify(err).Code != errcode.Usage {
			t.Errorf("%s: %v (secret %x)", name, err, got)
			continue
		}
		rep := errcode.Classify(err)
		if tok != "" && (strings.Contains(rep.Message+rep.Hint, tok) || strings.Contains(rep.Message+rep.Hint, sec[:20])) {
			t.Errorf("%s: the error echoes the token: %s", name, rep.Message)
		}
	}
}

// TestTokenIdentityWrap: the identity wrapped under the token's wrap key
// opens with that key only, and only against its own public keys.
func TestTokenIdentityWrap(t *testing.T) {
	k, err := DeriveTokenKeys(vecTokenSecret())
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := WrapIdentity(id, k.WrapKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapIdentity(k.WrapKey, blob, id.Public())
	if err != nil || !sameKeys(got.Public(), id.Public()) {
		t.Fatalf("unwrap: %v", err)
	}
	other, _ := NewIdentity()
	for name, try := range map[string]func() error{
		"auth key": func() error { _, err := UnwrapIdentity(k.AuthKey, blob, id.Public()); return err },
		"other secret": func() error {
			o, _ := DeriveTokenKeys(bytes.Repeat([]byte{7}, TokenSecretSize))
			_, err := UnwrapIdentity(o.WrapKey, blob, id.Public())
			return err
		},
		"other public keys": func() error { _, err := UnwrapIdentity(k.WrapKey, blob, other.Public()); return err },
	} {
		if err := try(); CheckOf(err) != CheckDecrypt {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := DeriveTokenKeys(make([]byte, 31)); err == nil {
		t.Error("a short secret derived keys")
	}
}

func TestParseTokenLife(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "12h": 12 * time.Hour, "30d": 30 * 24 * time.Hour, "365d": MaxTokenLife, "8760h": MaxTokenLife} {
		if got, err := ParseTokenLife(in); err != nil || got != want {
			t.Errorf("%s = %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "0d", "-1d", "+1d", "366d", "8761h", "1w", "1.5d", "30", "1d ", "99999999999999999999d"} {
		if _, err := ParseTokenLife(in); errcode.Classify(err).Code != errcode.Usage {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// tokenServer is the real server (in process, SQLite) behind a handler
// that counts token sign-ins and lets a case rewrite their answer: the
// malicious server of the sign-in step.
type tokenServer struct {
	real   http.Handler
	mu     gosync.Mutex
	edit   func(a *syncapi.Account)
	logins int
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != syncapi.PathTokenLogin {
		ts.real.ServeHTTP(w, r)
		return
	}
	ts.mu.Lock()
	ts.logins++
	edit := ts.edit
	ts.mu.Unlock()
	rec := httptest.NewRecorder()
	ts.real.ServeHTTP(rec, r)
	var resp syncapi.SessionResponse
	if edit == nil || rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &resp) != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return
	}
	edit(&resp.Account)
	b, _ := json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// apiCall sends one JSON request to the test server and decodes a 2xx
// answer into out.
func apiCall(t *testing.T, method, url, token string, in, out any) {
	t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTokenSignIn: a token connection signs in with the auth key its
// secret derives, recovers its identity from the wrapped keys, renews an
// expired access token by signing in again (it has no refresh token), and
// refuses an answer with other public keys, other wrapped keys or another
// account. A revoked token's error tells the job to ask for a new one.
func TestTokenSignIn(t *testing.T) {
	ctx := context.Background()
	store, err := server.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	real, err := server.New(ctx, server.Options{Store: store, Signup: "open", Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		AccountLimit: server.Limit{Burst: 100, Every: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{real: real}
	hs := httptest.NewServer(ts)
	t.Cleanup(hs.Close)

	kdf, _ := crypto.DefaultKDF()
	rnd := func(n int) []byte { b, _ := crypto.Random(n); return b }
	var admin syncapi.SessionResponse
	apiCall(t, "POST", hs.URL+syncapi.PathAccounts, "", syncapi.CreateAccountRequest{Email: "ada@example.com", KDF: kdf, AuthKey: rnd(32),
		PublicKeys: syncapi.PublicKeys{Seal: rnd(32), Sign: rnd(32)}, WrappedPrivateKeys: rnd(100), DeviceName: "laptop"}, &admin)
	wsID := hex.EncodeToString(rnd(16))
	apiCall(t, "POST", hs.URL+syncapi.PathWorkspaces, admin.Session.AccessToken, syncapi.CreateWorkspaceRequest{ID: wsID, Name: "acme", Record: rnd(100), SealedKey: rnd(80)}, nil)

	sec, _ := NewTokenSecret()
	keys, _ := DeriveTokenKeys(sec)
	id, _ := NewIdentity()
	wrapped, _ := WrapIdentity(id, keys.WrapKey)
	apiCall(t, "POST", hs.URL+pathOf(syncapi.PathTokens, "ws", wsID), admin.Session.AccessToken, syncapi.CreateTokenRequest{ID: keys.ID, Name: "ci", Role: RoleReader,
		ExpiresAt: time.Now().Add(time.Hour), AuthKey: keys.AuthKey, PublicKeys: id.Public(), WrappedPrivateKeys: wrapped, Record: rnd(100), SealedKey: rnd(80)}, nil)
	text := []byte(FormatToken(hs.URL, sec) + "\n")

	now := time.Now()
	clock := func() time.Time { return now }
	conn, err := ConnectToken(nil, text, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	got, err := conn.identity(ctx)
	if err != nil || !sameKeys(got.Public(), id.Public()) || conn.Account.ID != "tok-"+keys.ID || conn.Account.Email != "token:ci" {
		t.Fatalf("identity: %v %s %s", err, conn.Account.ID, conn.Account.Email)
	}
	if _, err := conn.RemoteWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(20 * time.Minute)
	if list, err := conn.RemoteWorkspaces(ctx); err != nil || len(list) != 1 || list[0].ID != wsID {
		t.Fatalf("after the access token expired: %v %v", list, err)
	}
	if ts.logins != 2 {
		t.Fatalf("%d sign-ins, want 2 (one renewal)", ts.logins)
	}

	other, _ := NewIdentity()
	// The server does not know the wrap key: what it substitutes is
	// wrapped under a key of its own.
	otherWrapped, _ := WrapIdentity(other, rnd(32))
	for name, edit := range map[string]func(a *syncapi.Account){
		"public keys swapped":   func(a *syncapi.Account) { a.PublicKeys = other.Public() },
		"wrapped keys replaced": func(a *syncapi.Account) { a.WrappedPrivateKeys = otherWrapped },
		"another identity":      func(a *syncapi.Account) { a.PublicKeys, a.WrappedPrivateKeys = other.Public(), otherWrapped },
		"another account":       func(a *syncapi.Account) { a.ID = "tok-" + hex.EncodeToString(rnd(16)) },
	} {
		ts.mu.Lock()
		ts.edit = edit
		ts.mu.Unlock()
		c, _ := ConnectToken(nil, text, nil, nil)
		if _, err := c.identity(ctx); errcode.Classify(err).Code != errcode.Conflict || CheckOf(err) == "" {
			t.Errorf("%s: %v", name, err)
		}
	}
	ts.mu.Lock()
	ts.edit = nil
	ts.mu.Unlock()

	apiCall(t, "DELETE", hs.URL+pathOf(syncapi.PathToken, "ws", wsID, "token", keys.ID), admin.Session.AccessToken, nil, nil)
	_, err = conn.RemoteWorkspaces(ctx)
	if rep := errcode.Classify(err); rep.Code != errcode.Unauthorized || !strings.Contains(rep.Hint, "workspace token create") {
		t.Fatalf("revoked: %+v", rep)
	}
}
