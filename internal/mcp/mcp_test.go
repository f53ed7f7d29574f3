package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestParseLoopbackAddr(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"127.0.0.1:8766", "127.0.0.1:8766"},
		{"127.0.0.1:0", "127.0.0.1:0"},
		{"localhost:9000", "127.0.0.1:9000"},
		{"LOCALHOST:9000", "127.0.0.1:9000"},
		{"[::1]:9000", "[::1]:9000"},
		{"127.1.2.3:80", "127.1.2.3:80"},
		{"0.0.0.0:8766", ""},
		{"[::]:8766", ""},
		{":8766", ""},
		{"192.168.1.2:8766", ""},
		{"example.com:80", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1:65536", ""},
		{"127.0.0.1:-1", ""},
		{"127.0.0.1:http", ""},
	} {
		got, err := ParseLoopbackAddr(c.in)
		if c.want == "" {
			if err == nil || errcode.Classify(err).Code != errcode.Usage {
				t.Errorf("%q: got %q, %v; want a usage error", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestHTTPHandlerGuards(t *testing.T) {
	s, err := New("t", "1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	h := s.HTTPHandler("secret-token")
	initMsg := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	for _, c := range []struct {
		name, host, auth, token string
		want                    int
	}{
		{"no token", "127.0.0.1:1", "", "", 401},
		{"wrong bearer", "127.0.0.1:1", "Bearer nope", "", 401},
		{"basic is not bearer", "127.0.0.1:1", "Basic secret-token", "", 401},
		{"bearer", "127.0.0.1:1", "Bearer secret-token", "", 200},
		{"header", "localhost", "", "secret-token", 200},
		{"ipv6 loopback", "[::1]:1", "Bearer secret-token", "", 200},
		{"rebinding host", "attacker.example", "Bearer secret-token", "", 403},
		{"rebinding host with loopback suffix", "127.0.0.1.attacker.example", "Bearer secret-token", "", 403},
	} {
		req := httptest.NewRequest("POST", "http://x"+Path, strings.NewReader(initMsg))
		req.Host = c.host
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		if c.token != "" {
			req.Header.Set(HeaderToken, c.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: status %d, want %d: %s", c.name, rec.Code, c.want, rec.Body.String())
		}
		if c.want != 200 {
			var rep ErrorReport
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil || rep.Error.Code == "" || rep.Error.Hint == "" {
				t.Errorf("%s: error body %q", c.name, rec.Body.String())
			}
		}
	}
	// An empty configured token never matches.
	empty := s.HTTPHandler("")
	req := httptest.NewRequest("POST", "http://127.0.0.1"+Path, strings.NewReader(initMsg))
	req.Header.Set(HeaderToken, "")
	rec := httptest.NewRecorder()
	empty.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("empty token: %d", rec.Code)
	}
}

// TestResults: success carries structuredContent and the same JSON text;
// an error is isError with the CLI's error object and no structuredContent;
// a panic becomes an internal error that quotes nothing.
func TestResults(t *testing.T) {
	obj := json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}},"additionalProperties":false}`)
	tools := []Tool{
		{Name: "ok", Input: obj, Output: json.RawMessage(`{"type":"object"}`), Handler: func(_ context.Context, args json.RawMessage) (any, error) {
			return map[string]any{"args": args, "html": "<&>"}, nil
		}},
		{Name: "fail", Input: obj, Handler: func(context.Context, json.RawMessage) (any, error) {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "wrap: %w", errors.New("inner")), "run x")
		}},
		{Name: "boom", Input: obj, Handler: func(context.Context, json.RawMessage) (any, error) {
			panic("sk_live_do_not_show")
		}},
	}
	s, err := New("t", "1", "", tools)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cs := connectInMemory(t, s)
	text := func(r *sdk.CallToolResult) string { return r.Content[0].(*sdk.TextContent).Text }

	r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "ok"})
	if err != nil || r.IsError {
		t.Fatalf("ok: %v %+v", err, r)
	}
	if got := text(r); got != `{"args":{},"html":"<&>"}` {
		t.Errorf("ok text %s (no arguments means {}, no HTML escaping)", got)
	}
	sc, _ := json.Marshal(r.StructuredContent)
	var a, b any
	json.Unmarshal(sc, &a)
	json.Unmarshal([]byte(text(r)), &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("structuredContent %s differs from text %s", sc, text(r))
	}
	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "ok", Arguments: map[string]any{"n": 1}})
	if err != nil || text(r) != `{"args":{"n":1},"html":"<&>"}` {
		t.Errorf("ok with arguments: %v %s", err, text(r))
	}

	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "fail"})
	if err != nil || !r.IsError || r.StructuredContent != nil {
		t.Fatalf("fail: %v %+v", err, r)
	}
	if got := text(r); got != `{"error":{"code":"denied","message":"wrap: inner","hint":"run x"}}` {
		t.Errorf("fail text %s", got)
	}

	r, err = cs.CallTool(ctx, &sdk.CallToolParams{Name: "boom"})
	if err != nil || !r.IsError || strings.Contains(text(r), "sk_live") || !strings.Contains(text(r), `"internal"`) {
		t.Errorf("boom: %v %s", err, text(r))
	}
	if s.Calls() != 4 {
		t.Errorf("Calls() = %d, want 4", s.Calls())
	}
}

func TestNewRejectsBadTools(t *testing.T) {
	h := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	for name, tools := range map[string][]Tool{
		"input not an object": {{Name: "a", Input: json.RawMessage(`{"type":"array"}`), Handler: h}},
		"input not JSON":      {{Name: "a", Input: json.RawMessage(`{`), Handler: h}},
		"output not JSON":     {{Name: "a", Input: json.RawMessage(`{"type":"object"}`), Output: json.RawMessage(`{`), Handler: h}},
		"duplicate": {{Name: "a", Input: json.RawMessage(`{"type":"object"}`), Handler: h},
			{Name: "a", Input: json.RawMessage(`{"type":"object"}`), Handler: h}},
	} {
		if _, err := New("t", "1", "", tools); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseLoopbackAddr: whatever the input, an accepted address is a
// loopback IP with a port, and accepting is idempotent.
func FuzzParseLoopbackAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8766", "localhost:0", "[::1]:1", "0.0.0.0:80", "[::ffff:127.0.0.1]:80", "127.0.0.1:", "::1:80", "[fe80::1%lo]:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ParseLoopbackAddr(in)
		if err != nil {
			if strings.Contains(errcode.Classify(err).Message, in) && len(in) > 8 {
				t.Errorf("error quotes the input: %v", err)
			}
			return
		}
		host, _, err := net.SplitHostPort(out)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			t.Fatalf("%q accepted as %q, not a loopback address", in, out)
		}
		again, err := ParseLoopbackAddr(out)
		if err != nil || again != out {
			t.Fatalf("%q -> %q -> %q, %v", in, out, again, err)
		}
	})
}

type bearerRT struct{ token string }

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestHTTPBothRevisions: the Streamable HTTP endpoint serves a session at
// 2025-11-25 and the stateless 2026-07-28, concurrent calls included.
func TestHTTPBothRevisions(t *testing.T) {
	tool := Tool{Name: "echo", Input: json.RawMessage(`{"type":"object"}`), Handler: func(_ context.Context, args json.RawMessage) (any, error) {
		return map[string]json.RawMessage{"args": args}, nil
	}}
	s, err := New("t", "1", "", []Tool{tool})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.HTTPHandler("tok"))
	defer ts.Close()
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		tr := &sdk.StreamableClientTransport{Endpoint: ts.URL + Path, HTTPClient: &http.Client{Transport: bearerRT{"tok"}}}
		cs, err := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil).Connect(context.Background(), tr, &sdk.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			t.Fatalf("%s: %v", version, err)
		}
		if got := cs.InitializeResult().ProtocolVersion; got != version {
			t.Errorf("negotiated %s, want %s", got, version)
		}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{"i": i}})
				if err != nil || r.IsError || r.Content[0].(*sdk.TextContent).Text != fmt.Sprintf(`{"args":{"i":%d}}`, i) {
					t.Errorf("%s call %d: %v %+v", version, i, err, r)
				}
			}()
		}
		wg.Wait()
		cs.Close()
	}
}

// connectInMemory connects an SDK client to s over in-memory transports;
// both ends close when the test ends.
func connectInMemory(t *testing.T, s *Server) *sdk.ClientSession {
	t.Helper()
	st, ct := sdk.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := s.sdk.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := sdk.NewClient(&sdk.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}
