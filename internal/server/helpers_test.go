package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// backend is one database kind the store tests run against.
type backend struct {
	name string
	// spec makes a fresh, empty database and returns its --db value.
	spec func(t testing.TB) string
}

// backends lists SQLite (a real file) and PostgreSQL (a fresh database on
// the server scripts/with-postgres started). Without DATABASE_URL the
// PostgreSQL runs skip, or fail under AGENTSECRETS_TEST_REQUIRE_POSTGRES=1.
func backends() []backend {
	return []backend{
		{"sqlite", func(t testing.TB) string { return "sqlite:" + filepath.Join(t.TempDir(), "server.db") }},
		{"postgres", pgDatabase},
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, spec string)) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { f(t, b.spec(t)) })
	}
}

// pgDatabase creates a database of its own for one test and drops it after.
func pgDatabase(t testing.TB) string {
	t.Helper()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		if os.Getenv("AGENTSECRETS_TEST_REQUIRE_POSTGRES") == "1" {
			t.Fatal("DATABASE_URL is not set: run the tests under scripts/with-postgres")
		}
		t.Skip("no PostgreSQL: run under scripts/with-postgres (DATABASE_URL)")
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	raw := make([]byte, 6)
	rand.Read(raw)
	name := "t_" + hex.EncodeToString(raw)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE " + name + " WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// logBuffer collects the server's JSON log lines safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// lines decodes every log line; a line that is not JSON fails the test.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// clock is a settable time for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testServer is a real server on 127.0.0.1 over a real database.
type testServer struct {
	URL   string
	Store *SQLStore
	Log   *logBuffer
	stop  context.CancelFunc
	done  chan error
}

// startServer runs a server on spec until the test ends. opts.Store and
// opts.Logger are filled in. wrap, if given, sees each request first (a
// test's probe; the server's handler still answers).
func startServer(t testing.TB, spec string, opts Options, wrap ...func(http.Handler) http.Handler) *testServer {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	opts.Store = st
	opts.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	if opts.Signup == "" {
		opts.Signup = "open"
	}
	srv, err := New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	ts := &testServer{URL: "http://" + ln.Addr().String(), Store: st, Log: logs, stop: stop, done: make(chan error, 1)}
	var h http.Handler = srv
	for _, w := range wrap {
		h = w(h)
	}
	go func() { ts.done <- Serve(sctx, ln, h, nil) }()
	t.Cleanup(func() { ts.Shutdown(t) })
	return ts
}

// Shutdown stops the server gracefully and closes its store; once only.
func (ts *testServer) Shutdown(t testing.TB) {
	if ts.stop == nil {
		return
	}
	ts.stop()
	ts.stop = nil
	if err := <-ts.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	ts.Store.Close()
}

// do sends one request; body may be nil, a []byte (sent as is) or a value
// (sent as JSON).
func do(t testing.TB, method, u, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// call sends a request that must succeed with 200 and decodes the answer.
func call[T any](t testing.TB, method, u, token string, body any) T {
	t.Helper()
	status, raw := do(t, method, u, token, body)
	var out T
	if status != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", method, u, status, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, u, err, raw)
	}
	return out
}

// apiError sends a request that must fail with status and code.
func apiError(t *testing.T, method, u, token string, body any, status int, code string) syncapi.ErrorBody {
	t.Helper()
	got, raw := do(t, method, u, token, body)
	var e syncapi.Error
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatalf("%s %s: status %d, body not an error: %s", method, u, got, raw)
	}
	if got != status || e.Error.Code != code {
		t.Fatalf("%s %s: status %d code %q (%s), want %d %q", method, u, got, e.Error.Code, e.Error.Message, status, code)
	}
	return e.Error
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b, err := crypto.Random(n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// user is an account as a client holds it.
type user struct {
	Email   string
	AuthKey []byte
	Session syncapi.Session
	Account syncapi.Account
}

func testKDF(t testing.TB) crypto.KDFParams {
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		t.Fatal(err)
	}
	return kdf
}

func createAccountRequest(t testing.TB, email string, authKey []byte) syncapi.CreateAccountRequest {
	return syncapi.CreateAccountRequest{Email: email, KDF: testKDF(t), AuthKey: authKey,
		PublicKeys: syncapi.PublicKeys{Seal: randomBytes(t, 32), Sign: randomBytes(t, 32)}, WrappedPrivateKeys: randomBytes(t, 120), DeviceName: "laptop"}
}

func (ts *testServer) signup(t testing.TB, email string) *user {
	t.Helper()
	u := &user{Email: email, AuthKey: randomBytes(t, 32)}
	res := call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, email, u.AuthKey))
	u.Session, u.Account = res.Session, res.Account
	return u
}

func (ts *testServer) login(t *testing.T, u *user, device string) syncapi.SessionResponse {
	t.Helper()
	return call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: u.Email, AuthKey: u.AuthKey, DeviceName: device})
}

// path fills a syncapi path template.
func path(tmpl string, kv ...string) string {
	for i := 0; i+1 < len(kv); i += 2 {
		tmpl = strings.ReplaceAll(tmpl, "{"+kv[i]+"}", url.PathEscape(kv[i+1]))
	}
	return tmpl
}

// workspace creates a workspace with one project for u and returns its id.
func (ts *testServer) workspace(t testing.TB, u *user, project string) string {
	t.Helper()
	id := hex.EncodeToString(randomBytes(t, 16))
	call[syncapi.Workspace](t, "POST", ts.URL+syncapi.PathWorkspaces, u.Session.AccessToken,
		syncapi.CreateWorkspaceRequest{ID: id, Name: "team", Record: randomBytes(t, 200), SealedKey: randomBytes(t, 80)})
	call[syncapi.Project](t, "POST", ts.URL+path(syncapi.PathProjects, "ws", id), u.Session.AccessToken,
		syncapi.CreateProjectRequest{Name: project, WrappedKey: randomBytes(t, 60), KeyVersion: 1})
	return id
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
