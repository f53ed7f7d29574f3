package proxy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/serve"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestHandler drives the /proxy handler through a real vault, broker and
// upstream (setupProxy) with one request per outcome a client can meet,
// and checks status, error code, the audit header and how the answer is
// framed: whole (Content-Length, X-AS-Redacted a header) up to wholeMax
// bytes of a body of known length, streamed (chunked, X-AS-Redacted a
// trailer) beyond that or when the upstream streams. No answer may carry
// the value.
func TestHandler(t *testing.T) {
	const value = "sk_handler_0123456789abcdefghij"
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			w.Header().Set(HeaderRedacted, "false") // an upstream's claim is not ours
			io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
		case "/fill":
			// n bytes with a declared length, the Authorization header
			// echoed at offset at when given.
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			body := []byte(strings.Repeat("x", n))
			if at, err := strconv.Atoi(r.URL.Query().Get("at")); err == nil {
				copy(body[at:], r.Header.Get("Authorization"))
			}
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body)
		case "/events":
			w.Header().Set(HeaderRedacted, "false")
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set("Content-Length", "40")
			io.WriteString(w, "data: "+r.Header.Get("Authorization")[:34])
		case "/unknown-length":
			io.WriteString(w, "part one, ")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
		case "/cut-short":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "ten bytes.")
			w.(http.Flusher).Flush()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
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
	const whole, streamed = "whole", "streamed"
	type tc struct {
		name     string
		method   string            // the client's; "" is GET
		host     string            // Host header; "" is the proxy's own
		header   map[string]string // on top of token, target and bearer
		drop     []string          // of those defaults
		path     string            // upstream path
		status   int
		code     string // error code, "" for a proxied answer
		form     string // whole or streamed, for a proxied answer
		redacted string // its X-AS-Redacted
		body     string // substring of the body
		size     int    // of the body, when not 0
		xs       bool   // the body is size bytes of 'x', as /fill sent them
	}
	for _, c := range []tc{
		{name: "success", path: "/ok", status: 200, form: whole, redacted: "false", body: `{"auth_len":38}`},
		{name: "redacted", path: "/echo", status: 200, form: whole, redacted: "true", body: broker.Marker},
		{name: "the first buffer full", path: "/fill?n=8192", status: 200, form: whole, redacted: "false", size: wholeSmall, xs: true},
		{name: "the first buffer and 1", path: "/fill?n=8193", status: 200, form: whole, redacted: "false", size: wholeSmall + 1, xs: true},
		{name: "64 KiB is whole", path: "/fill?n=65536", status: 200, form: whole, redacted: "false", size: wholeMax, xs: true},
		{name: "64 KiB and 1 streams", path: "/fill?n=65537", status: 200, form: streamed, redacted: "false", size: wholeMax + 1},
		{name: "echo in a whole answer", path: "/fill?n=60000&at=30000", status: 200, form: whole, redacted: "true", body: broker.Marker},
		{name: "echo across the first buffer's end", path: "/fill?n=20000&at=8180", status: 200, form: whole, redacted: "true", body: broker.Marker},
		{name: "echo across the 64 KiB line", path: "/fill?n=70000&at=65520", status: 200, form: streamed, redacted: "true", body: broker.Marker},
		{name: "event stream", path: "/events", status: 200, form: streamed, redacted: "true", body: "data: "},
		{name: "unknown length", path: "/unknown-length", status: 200, form: streamed, redacted: "false", body: "part one, part two"},
		{name: "no content", path: "/no-content", status: 204, form: whole, redacted: "false"},
		{name: "HEAD", method: "HEAD", path: "/ok", status: 200, form: whole, redacted: "false"},
		{name: "upstream cut short", path: "/cut-short", status: 502, code: "upstream"},
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
			p := p
			if c.redacted == "true" {
				// Its own vault: echoes from one upstream trip the wire
				// (policy.EchoThreshold), which would suspend KEY for the
				// cases after.
				p = setupProxy(t, up, value)
			}
			req, _ := http.NewRequest(cmp.Or(c.method, "GET"), p.proxy, nil)
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
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read the answer: %v", err)
			}
			if strings.Contains(string(body), value) || strings.Contains(fmt.Sprint(resp.Header, resp.Trailer), value) {
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
			if resp.Header.Get(HeaderAuditID) == "" || !strings.Contains(string(body), c.body) || c.size != 0 && len(body) != c.size {
				t.Errorf("audit id %q, body of %d bytes: %.100s", resp.Header.Get(HeaderAuditID), len(body), body)
			}
			if c.xs && strings.Trim(string(body), "x") != "" {
				t.Errorf("the body is not what the upstream sent: %d bytes, not all 'x'", len(body))
			}
			header, trailer := resp.Header.Get(HeaderRedacted), resp.Trailer.Get(HeaderRedacted)
			switch {
			case c.form == streamed && (resp.ContentLength != -1 || header != "" || trailer != c.redacted):
				t.Errorf("want a streamed answer: length %d, X-AS-Redacted header %q, trailer %q (want %q)", resp.ContentLength, header, trailer, c.redacted)
			case c.form == whole && (header != c.redacted || resp.Trailer != nil || len(resp.TransferEncoding) != 0):
				t.Errorf("want a whole answer: X-AS-Redacted header %q (want %q), trailer %v, transfer encoding %v", header, c.redacted, resp.Trailer, resp.TransferEncoding)
			case c.form == whole && c.status == 200 && c.method != "HEAD" && resp.ContentLength != int64(len(body)):
				t.Errorf("Content-Length %d for a body of %d bytes", resp.ContentLength, len(body))
			case (c.status == 204 || c.method == "HEAD") && resp.Header.Get("Content-Length") != "":
				t.Errorf("%s answer with a length: %q", c.name, resp.Header.Get("Content-Length"))
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
