package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestHandler drives the /proxy handler through a real vault, broker and
// upstream (setupProxy) with one request per outcome a client can meet,
// and checks status, error code and the audit/redaction headers. No answer
// may carry the value.
func TestHandler(t *testing.T) {
	const value = "sk_handler_0123456789abcdefghij"
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
		case "/hangup":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"auth_len":`+itoa(len(r.Header.Get("Authorization")))+`}`)
		}
	})
	p := setupProxy(t, up, value)
	type tc struct {
		name     string
		host     string            // Host header; "" is the proxy's own
		header   map[string]string // on top of token, target and bearer
		drop     []string          // of those defaults
		path     string            // upstream path
		status   int
		code     string // error code, "" for a proxied answer
		redacted string // X-AS-Redacted trailer of a proxied answer
		body     string // substring of the body
	}
	for _, c := range []tc{
		{name: "success", path: "/ok", status: 200, redacted: "false", body: `{"auth_len":38}`},
		{name: "redacted trailer", path: "/echo", status: 200, redacted: "true", body: broker.Marker},
		{name: "token missing", drop: []string{HeaderToken}, status: 401, code: "unauthorized"},
		{name: "token wrong", header: map[string]string{HeaderToken: "not-the-token"}, status: 401, code: "unauthorized"},
		{name: "host not loopback", host: "rebound.example:80", status: 403, code: "denied"},
		{name: "no target", drop: []string{HeaderTargetURL}, status: 400, code: "usage"},
		{name: "unknown inject header", header: map[string]string{"X-AS-Inject-Cookie": "KEY"}, status: 400, code: "usage"},
		{name: "bearer with a field", header: map[string]string{"X-AS-Inject-Bearer-Extra": "KEY"}, status: 400, code: "usage"},
		{name: "query without a field", header: map[string]string{"X-AS-Inject-Query": "KEY"}, status: 400, code: "usage"},
		{name: "unknown secret", header: map[string]string{"X-AS-Inject-Bearer": "NO_SUCH_KEY"}, status: 404, code: "not_found"},
		{name: "denied host", header: map[string]string{HeaderTargetURL: "https://not-allowlisted.example/"}, status: 403, code: "denied"},
		{name: "upstream error", path: "/hangup", status: 502, code: "upstream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", p.proxy, nil)
			req.Header.Set(HeaderToken, p.token)
			req.Header.Set(HeaderTargetURL, p.upstream+c.path)
			req.Header.Set("X-AS-Inject-Bearer", "KEY")
			for _, k := range c.drop {
				req.Header.Del(k)
			}
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if c.host != "" {
				req.Host = c.host
			}
			resp, err := newClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), value) || strings.Contains(resp.Header.Get("X-AS-Redacted"), value) {
				t.Fatal("the value reached the client")
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.code != "" {
				var env struct {
					Error struct{ Code, Message, Hint string }
				}
				if err := json.Unmarshal(body, &env); err != nil || env.Error.Code != c.code || env.Error.Hint == "" {
					t.Fatalf("want error %s with a hint: %s", c.code, body)
				}
				return
			}
			if resp.Header.Get(HeaderAuditID) == "" || resp.Trailer.Get(HeaderRedacted) != c.redacted || !strings.Contains(string(body), c.body) {
				t.Errorf("audit id %q, redacted trailer %q (want %q), body %s", resp.Header.Get(HeaderAuditID), resp.Trailer.Get(HeaderRedacted), c.redacted, body)
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestHealthReportsVault: /health is 200 only when the vault's values can
// be read; a proxy that cannot open its vault answers unavailable.
func TestHealthReportsVault(t *testing.T) {
	p := setupProxy(t, http.NotFoundHandler(), "sk_health_0123456789abcdef")
	health := strings.TrimSuffix(p.proxy, "/proxy") + "/health"
	if resp, err := http.Get(health); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthy proxy: %v %v", resp, err)
	}
	locked := &Server{Runtime: serve.New(serve.Options{Open: func() (*vault.Store, error) {
		return nil, errcode.New(errcode.Unavailable, "the file vault needs its passphrase")
	}}), Token: "t"}
	w := httptest.NewRecorder()
	locked.Handler().ServeHTTP(w, httptest.NewRequest("GET", "http://127.0.0.1/health", nil))
	var env errcode.Envelope
	if w.Code != 503 || json.Unmarshal(w.Body.Bytes(), &env) != nil || env.Error.Code != errcode.Unavailable || env.Error.Hint == "" {
		t.Errorf("locked vault: %d %s", w.Code, w.Body)
	}
}
