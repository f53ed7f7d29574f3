package broker

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// world is a real file vault with secrets bound to real upstreams on
// 127.0.0.1, and the audit log a one-shot front end writes.
type world struct {
	t    testing.TB
	st   *vault.Store
	dirs home.Dirs
	log  *audit.Log
	sel  vault.Selection
}

const (
	valA = "sk_live_AAAAaaaa1111bbbbCCCC2222dddd"
	valB = "sk_live_BBBBzzzz9999yyyyXXXX8888wwww"
)

func newWorld(t testing.TB, secrets map[string]string) *world {
	t.Helper()
	root := t.TempDir()
	dirs := testDirs(root)
	pass := func(bool) ([]byte, error) { return []byte("vault passphrase"), nil }
	ctx := context.Background()
	st, _, err := vault.Init(ctx, dirs, vault.InitOptions{Options: vault.Options{Getenv: func(string) string { return "" }, VaultPassphrase: pass},
		Backend: "file", AdminPassphrase: func() ([]byte, error) { return []byte("admin passphrase"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, st: st, dirs: dirs, log: audit.Open(dirs.State, audit.Options{}),
		sel: vault.Selection{Workspace: vault.DefaultName, Project: vault.DefaultName}}
	var puts []vault.Put
	for n, v := range secrets {
		puts = append(puts, vault.Put{Name: n, Value: secret.New([]byte(v)), Source: "set"})
	}
	if _, err := st.PutSecrets(ctx, w.sel, puts, vault.Upsert); err != nil {
		t.Fatal(err)
	}
	return w
}

// bind allowlists the upstream's host:port and binds secret to it.
func (w *world) bind(secret, upstreamURL string, edit func(*policy.Binding)) {
	w.t.Helper()
	u, _ := url.Parse(upstreamURL)
	tgt, err := policy.ParseTarget(u.Host)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := policy.NewBinding(tgt, nil, nil, time.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	if edit != nil {
		edit(&b)
	}
	err = w.st.Update(context.Background(), func(ix *vault.Index) error {
		ws := ix.Workspaces[vault.DefaultName]
		if !containsEntry(ws.Allowlist, tgt) {
			ws.Allowlist = append(ws.Allowlist, policy.AllowEntry{Host: tgt.Host, Port: tgt.Port, AllowHTTP: true, AllowPrivate: true})
		}
		s := ws.Projects[vault.DefaultName].Secrets[secret]
		s.Bindings = append(s.Bindings, b)
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func containsEntry(es []policy.AllowEntry, t policy.Target) bool {
	for _, e := range es {
		if e.Host == t.Host && e.Port == t.Port {
			return true
		}
	}
	return false
}

// broker is a new broker, as a new process would build one.
func (w *world) broker(maxResponse int64) *Broker {
	return New(Config{Store: w.st, Audit: w.log, MaxResponse: maxResponse})
}

// do sends one request and reads the whole response.
func (w *world) do(b *Broker, method, u string, h http.Header, body []byte, ins ...Injection) (*Response, string, error) {
	w.t.Helper()
	resp, err := b.Do(context.Background(), &Request{FrontEnd: "call", Selection: w.sel, Method: method, URL: u, Header: h, Body: body, Injections: ins})
	if err != nil {
		return nil, "", err
	}
	data, rerr := io.ReadAll(resp.Body)
	resp.Close(rerr)
	if rerr != nil {
		return resp, string(data), ReadError(context.Background(), rerr)
	}
	return resp, string(data), nil
}

func (w *world) binding(secret string) []policy.Binding {
	ix, err := w.st.Index()
	if err != nil {
		w.t.Fatal(err)
	}
	s, err := ix.Secret(w.sel, secret)
	if err != nil {
		w.t.Fatal(err)
	}
	return s.Bindings
}

// forgive lifts suspensions and drops echo events, as a human's re-bind.
func (w *world) forgive(secret string) {
	w.t.Helper()
	err := w.st.Update(context.Background(), func(ix *vault.Index) error {
		s, _ := ix.Secret(w.sel, secret)
		for i := range s.Bindings {
			s.Bindings[i].SuspendedAt, s.Bindings[i].SuspendReason = nil, ""
		}
		return os.Remove(EchoFile(w.dirs))
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) audits() []audit.Record {
	recs, err := w.log.Read(audit.Filter{})
	if err != nil {
		w.t.Fatal(err)
	}
	return recs
}

func bearer(s string) Injection { return Injection{Style: StyleBearer, Secret: s} }

// echoServer reflects the Authorization header and X-Note into its body.
func echoServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "auth="+r.Header.Get("Authorization")+" note="+r.Header.Get("X-Note"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestEchoTripwireSuspendsBinding: each redacted response is an echo
// event, counted across brokers (processes) through the state file; the
// EchoThreshold-th suspends the binding in the index, after which every
// request injecting the secret to that origin is denied echo_tripwire
// with the re-approval command, and audited blocked.
func TestEchoTripwireSuspendsBinding(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	up := echoServer(t)
	w.bind("A", up.URL, nil)
	for i := 0; i < policy.EchoThreshold; i++ {
		// A new broker each time: call is a one-shot process.
		resp, body, err := w.do(w.broker(0), "GET", up.URL+"/echo", nil, nil, bearer("A"))
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		if !resp.Redacted() || strings.Contains(body, valA) {
			t.Fatalf("request %d not redacted: %q", i+1, body)
		}
		if suspended := w.binding("A")[0].Suspended(); suspended != (i == policy.EchoThreshold-1) {
			t.Fatalf("after %d echoes suspended = %v", i+1, suspended)
		}
	}
	if b := w.binding("A")[0]; b.SuspendReason == "" {
		t.Fatalf("no suspend reason: %+v", b)
	}
	state, err := os.ReadFile(EchoFile(w.dirs))
	if err != nil || bytes.Contains(state, []byte(valA)) || !bytes.Contains(state, []byte(`"secret":"A"`)) {
		t.Fatalf("state file: %s %v", state, err)
	}
	_, _, err = w.do(w.broker(0), "GET", up.URL+"/other/path", nil, nil, bearer("A"))
	if policy.DenyReason(err) != policy.ReasonEchoTripwire || errcode.Classify(err).Code != errcode.Denied {
		t.Fatalf("suspended binding: %v", err)
	}
	u, _ := url.Parse(up.URL)
	if hint := errcode.Classify(err).Hint; !strings.Contains(hint, "agentsecrets secrets bind A "+u.Host+" --surface header --workspace default --project default") {
		t.Fatalf("hint %q", hint)
	}
	recs := w.audits()
	last := recs[len(recs)-1]
	if last.Decision != audit.DecisionBlocked || last.Reason != policy.ReasonEchoTripwire {
		t.Fatalf("last audit %+v", last)
	}
	if prev := recs[len(recs)-2]; prev.Decision != audit.DecisionRedacted || prev.Reason != "credential_echo" {
		t.Fatalf("echo audit %+v", prev)
	}
}

// TestEchoTripwireConcurrent: events from concurrent requests of one
// long-running broker are all counted (the state file changes under the
// index lock).
func TestEchoTripwireConcurrent(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	up := echoServer(t)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	var wg sync.WaitGroup
	for i := 0; i < policy.EchoThreshold; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := b.Do(context.Background(), &Request{Selection: w.sel, Method: "GET", URL: up.URL, Injections: []Injection{bearer("A")}})
			if err != nil {
				t.Error(err)
				return
			}
			_, rerr := io.ReadAll(resp.Body)
			resp.Close(rerr)
		}()
	}
	wg.Wait()
	if !w.binding("A")[0].Suspended() {
		t.Fatal("concurrent echoes were lost")
	}
}

// TestCrossRequestEcho: a value injected earlier (under a header name the
// human pinned), stored by the upstream, comes back in a later response
// to a request that injects another secret, or nothing. Every value bound
// to the origin is redacted.
func TestCrossRequestEcho(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA, "B": valB})
	var mu sync.Mutex
	stored := ""
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if n := r.Header.Get("X-Note"); n != "" {
			stored = n
		}
		io.WriteString(rw, "notes: "+stored)
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, func(b *policy.Binding) { b.SetHeaderNames([]string{"X-Note"}) })
	w.bind("B", up.URL, nil)
	b := w.broker(0)
	if _, body, err := w.do(b, "GET", up.URL+"/store", nil, nil, Injection{Style: StyleHeader, Field: "X-Note", Secret: "A"}); err != nil || strings.Contains(body, valA) {
		t.Fatalf("store: %q %v", body, err)
	}
	for _, c := range []struct {
		name string
		ins  []Injection
	}{{"another secret", []Injection{bearer("B")}}, {"nothing injected", nil}} {
		t.Run(c.name, func(t *testing.T) {
			for _, brk := range []*Broker{b, w.broker(0)} { // cached values, and a fresh process
				resp, body, err := w.do(brk, "GET", up.URL+"/read", nil, nil, c.ins...)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(body, valA) || !resp.Redacted() || !strings.Contains(body, Marker) {
					t.Fatalf("stored echo came back: %q", body)
				}
			}
		})
	}
}

// TestRangeNotForwarded: four ranged reads of a body holding a value would
// each return a piece too short to recognise. Range and If-Range are not
// forwarded with an injected value, so each answer is the whole body,
// scanned whole. A binding with AllowRange forwards them, and each 206 body
// is still scanned as a whole.
func TestRangeNotForwarded(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	sawRange := false
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" || r.Header.Get("If-Range") != "" {
			sawRange = true
		}
		http.ServeContent(rw, r, "x.txt", time.Time{}, strings.NewReader(valA))
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	got := ""
	for i := 0; i < 4; i++ {
		h := http.Header{"Range": {"bytes=" + strconv.Itoa(i*8) + "-" + strconv.Itoa(i*8+7)}, "If-Range": {`"x"`}}
		resp, body, err := w.do(b, "GET", up.URL+"/f", h, nil, bearer("A"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 {
			t.Fatalf("status %d: Range was forwarded", resp.Status)
		}
		got += body
		// Each whole body is an echo, and the tripwire would stop the
		// fourth read; this test is about what the reads return.
		w.forgive("A")
	}
	if sawRange || strings.Contains(got, valA) || strings.Contains(got, valA[8:16]) {
		t.Fatalf("range reassembled or forwarded: %q", got)
	}

	// Range allowed: forwarded, and a 206 that holds the value whole is
	// redacted like any body.
	w2 := newWorld(t, map[string]string{"A": valA})
	w2.bind("A", up.URL, func(b *policy.Binding) { b.AllowRange = true })
	resp, body, err := w2.do(w2.broker(0), "GET", up.URL+"/f", http.Header{"Range": {"bytes=0-"}}, nil, bearer("A"))
	if err != nil || resp.Status != http.StatusPartialContent || strings.Contains(body, valA) || !resp.Redacted() {
		t.Fatalf("allowed range: %d %q %v", resp.Status, body, err)
	}
}

// TestMethodOverride: a binding limited to some methods drops the
// override headers and refuses _method in the query, a form, multipart or
// JSON body, on the first request and on every redirect hop; a binding for
// any method forwards the headers.
func TestMethodOverride(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA, "B": valB})
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		for _, h := range methodOverrideHeaders {
			if v := r.Header.Get(h); v != "" {
				seen = append(seen, h)
			}
		}
		mu.Unlock()
		if r.URL.Path == "/redirect" {
			http.Redirect(rw, r, "/target?_method=DELETE", http.StatusFound)
			return
		}
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, func(b *policy.Binding) { b.Methods = []string{"GET", "POST"} })
	w.bind("B", up.URL, nil)
	b := w.broker(0)
	hdrs := http.Header{}
	for _, h := range methodOverrideHeaders {
		hdrs.Set(h, "DELETE")
	}
	if _, _, err := w.do(b, "GET", up.URL+"/x", hdrs, nil, bearer("A")); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Fatalf("override headers forwarded: %v", seen)
	}
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	multi := http.Header{"Content-Type": {"multipart/form-data; boundary=XX"}}
	jsonH := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		name, method, path string
		h                  http.Header
		body               string
	}{
		{"query", "GET", "/x?_method=DELETE", nil, ""},
		{"query, encoded name", "GET", "/x?%5Fmethod=DELETE", nil, ""},
		{"query, other case", "GET", "/x?a=1&_METHOD=DELETE", nil, ""},
		{"form", "POST", "/x", form, "a=1&_method=DELETE"},
		{"multipart", "POST", "/x", multi, "--XX\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XX--\r\n"},
		{"json", "POST", "/x", jsonH, `{"_method":"DELETE"}`},
		{"redirect hop", "GET", "/redirect", nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := w.do(b, c.method, up.URL+c.path, c.h, []byte(c.body), bearer("A"))
			if policy.DenyReason(err) != policy.ReasonMethodOverride {
				t.Fatalf("got %v, want %s", err, policy.ReasonMethodOverride)
			}
		})
	}
	if _, _, err := w.do(b, "POST", up.URL+"/x", form, []byte("payment_method=card"), bearer("A")); err != nil {
		t.Fatalf("a field that merely ends in _method: %v", err)
	}
	seen = nil
	if _, _, err := w.do(b, "GET", up.URL+"/x?_method=DELETE", hdrs, nil, bearer("B")); err != nil {
		t.Fatalf("any-method binding: %v", err)
	}
	if len(seen) != len(methodOverrideHeaders) {
		t.Fatalf("an any-method binding keeps the headers: %v", seen)
	}
}

// TestPathRoutingBypass: /public/..;/admin does not pass a /public
// binding, directly or through a redirect; ;parameters are refused with a
// value.
func TestPathRoutingBypass(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/public/redirect" {
			http.Redirect(rw, r, "/public/..;/admin", http.StatusFound)
			return
		}
		io.WriteString(rw, "ok")
	}))
	t.Cleanup(up.Close)
	w.bind("A", up.URL, func(b *policy.Binding) { b.PathPrefix = "/public" })
	b := w.broker(0)
	for _, c := range []struct{ path, reason string }{
		{"/public/..;/admin", policy.ReasonDotSegment},
		{"/public/%2e%2e;x/admin", policy.ReasonDotSegment},
		{"/public/%252E%252e/admin", policy.ReasonDotSegment},
		{"/public/redirect", policy.ReasonDotSegment},
		{"/public/x;a=b", policy.ReasonPathParameter},
		{"/public/x%3Ba=b", policy.ReasonPathParameter},
	} {
		_, _, err := w.do(b, "GET", up.URL+c.path, nil, nil, bearer("A"))
		if policy.DenyReason(err) != c.reason || errcode.Classify(err).Code != errcode.Denied {
			t.Errorf("%s: %v, want %s", c.path, err, c.reason)
		}
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestStackedContentCodings: Content-Encoding on several lines and as a
// list; every layer decoded and scanned, an unknown one refused, and the
// decoded size capped.
func TestStackedContentCodings(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	echo := []byte("you sent " + valA)
	bomb := gz(bytes.Repeat([]byte{0}, 8<<20))
	cases := []struct {
		name  string
		lines []string
		body  []byte
		code  errcode.Code // "" = decoded and redacted
	}{
		{"identity + gzip on two lines", []string{"identity", "gzip"}, gz(echo), ""},
		{"gzip + gzip on two lines", []string{"gzip", "gzip"}, gz(gz(echo)), ""},
		{"gzip, gzip on one line", []string{"gzip, gzip"}, gz(gz(echo)), ""},
		{"x-gzip, identity", []string{"x-gzip , identity"}, gz(echo), ""},
		{"unknown coding after gzip", []string{"gzip", "br"}, gz(echo), errcode.Upstream},
		{"unknown coding", []string{"compress"}, echo, errcode.Upstream},
		{"gzip bomb", []string{"gzip"}, bomb, errcode.TooLarge},
		{"stacked gzip bomb", []string{"gzip", "gzip"}, gz(bomb), errcode.TooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				for _, l := range c.lines {
					rw.Header().Add("Content-Encoding", l)
				}
				rw.Write(c.body)
			}))
			defer up.Close()
			w.bind("A", up.URL, nil)
			resp, body, err := w.do(w.broker(1<<20), "GET", up.URL, nil, nil, bearer("A"))
			if c.code != "" {
				if errcode.Classify(err).Code != c.code {
					t.Fatalf("got %v, want %s", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if body != "you sent "+Marker || resp.Header.Get("Content-Encoding") != "" {
				t.Fatalf("body %q, encoding %q", body, resp.Header.Values("Content-Encoding"))
			}
		})
	}
}

// TestEchoEventsNameTheValueThatEchoed: with two secrets bound to one
// origin, only the one whose value came back — in the body, in a header,
// or split across two lines of one header — accrues echo events; the
// other is never suspended by an echo it did not make.
func TestEchoEventsNameTheValueThatEchoed(t *testing.T) {
	cases := []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"body", func(w http.ResponseWriter) { io.WriteString(w, "stored: "+valB) }},
		{"header", func(w http.ResponseWriter) { w.Header().Set("X-Stored", valB); w.WriteHeader(200) }},
		{"header split across lines", func(w http.ResponseWriter) {
			w.Header().Add("X-Stored", valB[:len(valB)/2])
			w.Header().Add("X-Stored", valB[len(valB)/2:])
			w.WriteHeader(200)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, map[string]string{"A": valA, "B": valB})
			up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { c.write(rw) }))
			defer up.Close()
			w.bind("A", up.URL, nil)
			w.bind("B", up.URL, nil)
			for i := 0; i < policy.EchoThreshold; i++ {
				resp, body, err := w.do(w.broker(0), "GET", up.URL+"/v1", nil, nil, bearer("A"))
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				all := body
				for _, vs := range resp.Header {
					all += strings.Join(vs, "")
				}
				if !resp.Redacted() || strings.Contains(all, valB) || strings.Contains(all, valB[:len(valB)/2]) {
					t.Fatalf("request %d: echo of B not redacted: %q", i+1, all)
				}
			}
			if w.binding("A")[0].Suspended() {
				t.Fatal("A was suspended for B's echo")
			}
			if !w.binding("B")[0].Suspended() {
				t.Fatal("B echoed three times and is not suspended")
			}
		})
	}
}

// TestUnrecordedEchoBlocksUntilCounted: when the tripwire's state file
// cannot take an echo event, the response's Close reports unavailable, the
// event is kept, and every later request fails unavailable, before any
// value is read, until the event is written.
func TestUnrecordedEchoBlocksUntilCounted(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	up := echoServer(t)
	w.bind("A", up.URL, nil)
	b := w.broker(0)
	if err := os.Mkdir(EchoFile(w.dirs), 0o700); err != nil {
		t.Fatal(err)
	}
	resp, err := b.Do(context.Background(), &Request{FrontEnd: "proxy", Selection: w.sel, Method: "GET", URL: up.URL, Injections: []Injection{bearer("A")}})
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	if strings.Contains(string(body), valA) {
		t.Fatal("echo not redacted")
	}
	if err := resp.Close(rerr); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("Close with an unwritable echo log: %v", err)
	}
	_, _, err = w.do(b, "GET", up.URL+"/again", nil, nil)
	if errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("request after an uncounted echo: %v", err)
	}
	if err := os.Remove(EchoFile(w.dirs)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.do(b, "GET", up.URL+"/plain", nil, nil); err != nil {
		t.Fatalf("after repair: %v", err)
	}
	log, err := ReadEchoLog(w.dirs)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(log); !bytes.Contains(got, []byte(`"secret":"A"`)) {
		t.Fatalf("the kept event was not written: %s", got)
	}
}
