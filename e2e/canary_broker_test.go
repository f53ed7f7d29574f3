package e2e

// TestCanaryBroker extends the canary test (canary_test.go, DESIGN.md
// section 1, "No value out") to the broker: `call`, the local proxy,
// `proxy logs`, `proxy status` and `audit verify`.
//
// High-entropy canaries are stored as secrets and injected with every style
// (bearer, basic, header, query, body field, form field; on the proxy every
// X-AS-Inject-* form) into requests to a real upstream on 127.0.0.1 that
// echoes whatever credential it received in every way an API might: raw,
// base64/hex/URL/JSON-escaped, gzip and deflate compressed, in response
// headers (a header name too), in cookies, in 103 Early Hints, in trailers,
// in same- and cross-origin redirects, in 404/500 error pages, split across
// two flushes of a server-sent event stream, in a malformed status line or
// header, in a Content-Encoding the broker refuses, and in responses cut
// short by a hang-up, a timeout or the size cap. Every stdout and stderr,
// every proxy response (status line, headers, trailers, body), the proxy's
// state files while it runs, and every file under the test's root after it
// stopped (the home with audit.log and a rotated audit.log.1, proxy.log,
// index.json, vault.enc, which must be ciphertext; the working directory;
// TMPDIR) must hold no canary in any encoding (assertNoLeak), nor with its
// letter case changed. And the upstream must have received every value
// where it was injected, so a clean scan means redaction, not absence.

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Secret names of the broker canary run.
const (
	cbBearer   = "BEARER_KEY"   // token characters only: echoed in a header name
	cbBasic    = "BASIC_CRED"   // user:password
	cbHeader   = "HEADER_KEY"   // --header X-Api-Key=
	cbQuery    = "QUERY_KEY"    // --query api_key=
	cbBody     = "BODY_KEY"     // --body-field auth.token=
	cbForm     = "FORM_KEY"     // --form-field client_secret=
	cbSpecial  = "SPECIAL_KEY"  // a second secret in one request; every escapable character
	cbPrefixed = "PREFIXED_KEY" // bound to /v1 only
	cbUnbound  = "UNBOUND_KEY"  // stored, bound nowhere
	cbCRLF     = "CRLF_KEY"     // holds CR/LF: refused in any header

	cbMaxResponse = 4096
	cbRidHeader   = "X-Test-Rid" // plain header tying upstream requests to the command that sent them
)

// cbInjection is one secret put somewhere in a request, and where the
// upstream must find it.
type cbInjection struct{ style, field, secret string }

// cbInjSet is the injections of one request.
type cbInjSet struct {
	name string
	ins  []cbInjection
	// proxy holds the X-AS-Inject-* headers, in order (repeatable); nil
	// means the suffix form built from ins.
	proxy [][2]string
}

func (s cbInjSet) callArgs() []string {
	var a []string
	for _, in := range s.ins {
		switch in.style {
		case "bearer", "basic":
			a = append(a, "--"+in.style, in.secret)
		case "header":
			a = append(a, "--header", in.field+"="+in.secret)
		case "query":
			a = append(a, "--query", in.field+"="+in.secret)
		case "body":
			a = append(a, "--body-field", in.field+"="+in.secret)
		case "form":
			a = append(a, "--form-field", in.field+"="+in.secret)
		}
	}
	return a
}

func (s cbInjSet) proxyHeaders() [][2]string {
	if s.proxy != nil {
		return s.proxy
	}
	var h [][2]string
	for _, in := range s.ins {
		name := "X-AS-Inject-" + strings.ToUpper(in.style[:1]) + in.style[1:]
		if in.field != "" {
			name += "-" + in.field
		}
		h = append(h, [2]string{name, in.secret})
	}
	return h
}

// The injection sets. Suffix-form field names are lower case: the proxy
// lower-cases them (HTTP header names are case-insensitive).
var (
	cbSingles = []cbInjSet{
		{name: "bearer", ins: []cbInjection{{"bearer", "", cbBearer}}},
		{name: "basic", ins: []cbInjection{{"basic", "", cbBasic}}},
		{name: "header", ins: []cbInjection{{"header", "X-Api-Key", cbHeader}}},
		{name: "query", ins: []cbInjection{{"query", "api_key", cbQuery}}},
		{name: "body", ins: []cbInjection{{"body", "auth.token", cbBody}}},
		{name: "form", ins: []cbInjection{{"form", "client_secret", cbForm}}},
	}
	cbComboA = cbInjSet{name: "bearer+header+query+body", ins: []cbInjection{
		{"bearer", "", cbBearer}, {"header", "X-Api-Key", cbHeader}, {"query", "api_key", cbQuery}, {"body", "auth.token", cbBody}}}
	cbComboB = cbInjSet{name: "basic+form+query+header", ins: []cbInjection{
		{"basic", "", cbBasic}, {"form", "client_secret", cbForm}, {"query", "sig", cbSpecial}, {"header", "X-Special", cbSpecial}}}
	// The proxy's case-preserving forms (FIELD=NAME in the value), comma-separated and repeated.
	cbProxyForms = []cbInjSet{
		{name: "X-AS-Inject-Header: X-Api-Key=NAME", ins: []cbInjection{{"header", "X-Api-Key", cbHeader}},
			proxy: [][2]string{{"X-AS-Inject-Header", "X-Api-Key=" + cbHeader}}},
		{name: "X-AS-Inject-Query: apiKey=NAME, camelKey=NAME", ins: []cbInjection{{"query", "apiKey", cbQuery}, {"query", "camelKey", cbSpecial}},
			proxy: [][2]string{{"X-AS-Inject-Query", "apiKey=" + cbQuery + ", camelKey=" + cbSpecial}}},
		{name: "X-AS-Inject-Body: auth.apiToken=NAME (repeated) + X-AS-Inject-Bearer", ins: []cbInjection{{"body", "auth.apiToken", cbBody}, {"body", "meta.sigValue", cbSpecial}, {"bearer", "", cbBearer}},
			proxy: [][2]string{{"X-AS-Inject-Body", "auth.apiToken=" + cbBody}, {"X-AS-Inject-Body", "meta.sigValue=" + cbSpecial}, {"X-AS-Inject-Bearer", cbBearer}}},
		{name: "X-AS-Inject-Form: clientSecret=NAME + X-AS-Inject-Basic", ins: []cbInjection{{"form", "clientSecret", cbForm}, {"basic", "", cbBasic}},
			proxy: [][2]string{{"X-AS-Inject-Form", "clientSecret=" + cbForm}, {"X-AS-Inject-Basic", cbBasic}}},
	}
	cbPrefixedSet = cbInjSet{name: "bearer (bound to /v1 only)", ins: []cbInjection{{"bearer", "", cbPrefixed}}}
)

// cbEndpoint is one behaviour of the upstream, and what the front ends make of it.
type cbEndpoint struct {
	path string
	// What `call` does: "" succeeds (status: the upstream status it must
	// report, 0 any); "*" fails with any code; else that code and exit.
	code   string
	exit   int
	status int
	// proxyStatus is the proxy's HTTP status (0: not checked).
	proxyStatus int
	redacted    bool // a complete response must say it redacted
	timeout     bool // run with --timeout 1s (call; the background proxy)
	capped      bool // run with --max-response cbMaxResponse (call; the background proxy)
}

var cbEndpoints = []cbEndpoint{
	{path: "/v1/quiet", status: 200, proxyStatus: 200},
	{path: "/v1/raw", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/encodings", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/json", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/gson", status: 200, proxyStatus: 200},
	{path: "/v1/headers", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/gzip", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/deflate", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/sse", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/trailer", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/status500", status: 500, proxyStatus: 500, redacted: true},
	{path: "/v1/status404", status: 404, proxyStatus: 404, redacted: true},
	{path: "/v1/redirect-same", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/redirect-same-path", redacted: true}, // not followed when the value has / or \
	{path: "/v1/redirect-cross", status: 302, proxyStatus: 302, redacted: true},
	{path: "/v1/redirect-denied", redacted: true},               // bound to the whole host: followed, unless the value has / or \
	{path: "/v1/basic-password", status: 401, proxyStatus: 401}, // the password of a --basic credential, alone
	{path: "/v1/content-encoding", code: "upstream", exit: 8, proxyStatus: 502},
	{path: "/v1/malformed-status", code: "upstream", exit: 8, proxyStatus: 502},
	{path: "/v1/malformed-header", code: "upstream", exit: 8, proxyStatus: 502},
	{path: "/v1/hangup-clean", code: "*"},
	{path: "/v1/hangup-mid", code: "*"},
	{path: "/v1/slow", code: "timeout", exit: 9, proxyStatus: 504, timeout: true},
	{path: "/v1/slow-body", code: "*", proxyStatus: 200, timeout: true},
	{path: "/v1/large", status: 200, proxyStatus: 200, redacted: true},
	{path: "/v1/big", code: "too_large", exit: 10, proxyStatus: 413, capped: true},
	{path: "/v1/big-chunked", code: "too_large", exit: 10, proxyStatus: 200, capped: true},
}

// cbCapture is one thing a front end gave back, to be scanned.
type cbCapture struct {
	where string
	data  []byte
}

// canaryBrokerRun is a canaryRun plus the upstreams and the proxy responses.
type canaryBrokerRun struct {
	*canaryRun
	names     []string          // stored secrets, sorted
	values    map[string][]byte // name → value
	up, other *upstream
	client    *http.Client
	rid       atomic.Int64

	mu   sync.Mutex // canaryRun.outputs (commands run in parallel) and caps
	caps []cbCapture
}

func TestCanaryBroker(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			runCanaryBroker(t, backend)
			t.Logf("%s backend: %s", backend, time.Since(start).Round(time.Millisecond))
		})
	}
}

func runCanaryBroker(t *testing.T, backend string) {
	start := time.Now()
	v := NewVault(t, backend)
	c := &canaryRun{t: t, v: v, root: filepath.Dir(v.Home)}
	tmp := filepath.Join(c.root, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "TMPDIR="+tmp)
	b := &canaryBrokerRun{canaryRun: c, values: map[string][]byte{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true},
			// The proxy's 3xx is the response under test: never follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	// The scan runs even when a step below stops the test with t.Fatal.
	defer b.scanEverything()
	defer b.client.CloseIdleConnections()

	// ---- Canaries -------------------------------------------------------
	b.storeCanaries(true)
	// Values typed where a name or a flag value belongs; never stored.
	misplaced := map[string][]byte{}
	for _, k := range []string{"bearer", "header", "query", "plainheader", "proxybearer", "proxyquery", "token",
		"timeout", "maxresponse", "method", "since", "decision", "last"} {
		misplaced[k] = c.canary("misplaced"+k, "")
	}

	// ---- Upstreams ------------------------------------------------------
	b.other = newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "other origin\n") })
	b.up = newUpstream(t, b.serve)
	upHost, otherHost := b.up.hostport(), b.other.hostport()
	port := strings.Split(upHost, ":")[1]

	// ---- Setup: store, allowlist, bind ------------------------------------
	for _, name := range b.names {
		c.expectActions(b.exec(b.values[name], "secrets", "set", name, "--from-stdin"), map[string]string{name: "created"})
	}
	c.expectOK(b.exec(nil, "project", "use", "default", "--link"))
	admin := []string{"--passphrase-file", v.AdminFile}
	// Custom header names are approved explicitly (header-name pinning).
	// The upstream echoes by design, hundreds of times: the tripwire
	// (tested on its own) would suspend every binding after a few calls.
	surfaces := []string{"--surface", "header", "--surface", "query", "--surface", "body", "--surface", "form",
		"--header-name", "X-Api-Key", "--header-name", "X-Special", "--allow-echo"}
	var jobs []func()
	for _, args := range [][]string{
		{upHost, "--allow-http", "--allow-private"},
		{otherHost, "--allow-http", "--allow-private"}, // a cross-origin redirect target that is allowed and bound
		{"169.254.169.254:80", "--allow-http", "--allow-private"},
		{"localhost:" + port, "--allow-http"}, // not --allow-private: the SSRF guard refuses 127.0.0.1
	} {
		jobs = append(jobs, func() {
			c.expectOK(b.exec(nil, append(append([]string{"workspace", "allowlist", "add"}, args...), admin...)...))
		})
	}
	cbParallel(2, jobs)
	jobs = nil
	for _, name := range b.names {
		if name == cbUnbound || name == cbPrefixed {
			continue
		}
		for _, host := range []string{upHost, otherHost} {
			jobs = append(jobs, func() {
				c.expectOK(b.exec(nil, append(append([]string{"secrets", "bind", name, host}, surfaces...), admin...)...))
			})
		}
	}
	for _, target := range []string{upHost + "/v1"} {
		jobs = append(jobs, func() {
			c.expectOK(b.exec(nil, append(append([]string{"secrets", "bind", cbPrefixed, target}, surfaces...), admin...)...))
		})
	}
	for _, target := range []string{"169.254.169.254:80", "localhost:" + port} {
		jobs = append(jobs, func() { c.expectOK(b.exec(nil, append([]string{"secrets", "bind", cbBearer, target}, admin...)...)) })
	}
	cbParallel(2, jobs)
	t.Logf("setup: %s", time.Since(start).Round(time.Millisecond))

	// ---- 1. call: every endpoint, every style -----------------------------
	phase := time.Now()
	jobs = nil
	for _, ep := range cbEndpoints {
		for _, set := range []cbInjSet{cbComboA, cbComboB} {
			jobs = append(jobs, func() { b.callEcho(set, ep) })
		}
	}
	for _, set := range cbSingles {
		for _, p := range []string{"/v1/encodings", "/v1/headers", "/v1/status404"} {
			jobs = append(jobs, func() { b.callEcho(set, cbEndpointAt(p)) })
		}
	}
	jobs = append(jobs, func() {
		ep := cbEndpointAt("/v1/redirect-denied")
		ep.code, ep.exit = "denied", 4 // the hop to /private/... is outside the binding
		b.callEcho(cbPrefixedSet, ep)
	})
	cbParallel(4, jobs)
	t.Logf("call matrix (%d calls): %s", len(jobs), time.Since(phase).Round(time.Millisecond))

	// ---- 2. call: output options and error paths -------------------------
	phase = time.Now()
	b.callVariants(misplaced, port)
	t.Logf("call variants and errors: %s", time.Since(phase).Round(time.Millisecond))

	// ---- 3. The proxy (foreground, startProxy) ----------------------------
	phase = time.Now()
	addr, token := startProxy(t, v)
	c.expectOK(b.exec(nil, "proxy", "status"))
	c.expectOK(b.exec(nil, "--format", "text", "proxy", "status"))
	b.captureStateFiles("while the foreground proxy ran")
	jobs = nil
	sets := append(append(append([]cbInjSet{}, cbSingles...), cbComboA, cbComboB), cbProxyForms...)
	for _, ep := range cbEndpoints {
		if ep.timeout || ep.capped {
			continue // the background proxy, with a short timeout and cap, runs these
		}
		for _, set := range sets {
			jobs = append(jobs, func() { b.proxyEcho("proxy", addr, token, set, ep) })
		}
	}
	jobs = append(jobs, func() {
		ep := cbEndpointAt("/v1/redirect-denied")
		ep.code, ep.proxyStatus = "denied", 403
		b.proxyEcho("proxy", addr, token, cbPrefixedSet, ep)
	})
	cbParallel(8, jobs)
	n := len(jobs)
	b.proxyErrors(addr, token, misplaced, port)
	t.Logf("proxy (%d echo requests + errors): %s", n, time.Since(phase).Round(time.Millisecond))
	c.expectOK(b.exec(nil, "proxy", "stop"))
	c.expectResult(b.exec(nil, "proxy", "status"), 7)

	// ---- 4. Rotate the audit log ------------------------------------------
	// Rotation happens at 10 MiB, which this test does not reach; do what
	// Log.rotate does (rename the active file to the next number) while no
	// process writes, so a rotated file holds real broker records and the
	// chain must continue across it.
	must(t, os.Rename(filepath.Join(v.Home, "audit.log"), filepath.Join(v.Home, "audit.log.1")))

	// ---- 5. The background proxy: timeout, size cap, proxy.log ------------
	phase = time.Now()
	r := b.exec(nil, "proxy", "start", "--background", "--port", "0", "--timeout", "1s", "--max-response", strconv.Itoa(cbMaxResponse))
	st := c.expectOK(r)
	if st == nil {
		t.Fatal("the background proxy did not start")
	}
	stopped := false
	defer func() {
		if !stopped {
			b.exec(nil, "proxy", "stop")
		}
	}()
	bgAddr, _ := st["address"].(string)
	tokFile, _ := st["token_file"].(string)
	tok, err := os.ReadFile(tokFile)
	must(t, err)
	bgToken := strings.TrimSpace(string(tok))
	c.expectOK(b.exec(nil, "--format", "text", "proxy", "status"))
	b.captureStateFiles("while the background proxy ran")
	jobs = nil
	for _, ep := range cbEndpoints {
		if !ep.timeout && !ep.capped && ep.path != "/v1/raw" && ep.path != "/v1/sse" {
			continue
		}
		for _, set := range append(append([]cbInjSet{}, cbSingles...), cbComboA, cbComboB) {
			jobs = append(jobs, func() { b.proxyEcho("background proxy", bgAddr, bgToken, set, ep) })
		}
	}
	cbParallel(8, jobs)
	c.expectOK(b.exec(nil, "proxy", "stop"))
	stopped = true
	c.expectResult(b.exec(nil, "--format", "text", "proxy", "status"), 7)
	t.Logf("background proxy (%d requests): %s", len(jobs), time.Since(phase).Round(time.Millisecond))

	// ---- 6. proxy logs, audit verify --------------------------------------
	b.logsAndVerify(start, upHost, misplaced)

	// Nothing ever went to the other origin: cross-origin redirects are not
	// followed with a credential, even to an allowed and bound host.
	if n := len(b.other.requests()); n != 0 {
		t.Errorf("the cross-origin upstream received %d requests; a redirect carried a credential to another origin", n)
	}
}

// store remembers a secret to create.
func (b *canaryBrokerRun) store(name string, value []byte) {
	b.names = append(b.names, name)
	b.values[name] = value
}

// exec runs one command and records its output; safe for parallel use.
func (b *canaryBrokerRun) exec(stdin []byte, args ...string) *Result {
	b.t.Helper()
	r := b.v.RunIn(stdin, args...)
	b.mu.Lock()
	b.outputs = append(b.outputs, r)
	b.mu.Unlock()
	return r
}

func (b *canaryBrokerRun) capture(where string, data []byte) {
	b.mu.Lock()
	b.caps = append(b.caps, cbCapture{where, append([]byte(nil), data...)})
	b.mu.Unlock()
}

func (b *canaryBrokerRun) nextRid() string { return strconv.FormatInt(b.rid.Add(1), 10) }

// captureStateFiles keeps the files a running proxy has in the home
// (proxy.json, proxy.token): they are gone after it stops.
func (b *canaryBrokerRun) captureStateFiles(when string) {
	entries, err := os.ReadDir(b.v.Home)
	must(b.t, err)
	seen := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "proxy.") || !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.v.Home, e.Name()))
		if err != nil {
			b.t.Errorf("read %s: %v", e.Name(), err)
			continue
		}
		b.capture("file home/"+e.Name()+" "+when, data)
		seen++
	}
	if seen < 2 {
		b.t.Errorf("%s: expected proxy.json and proxy.token in the home, saw %d proxy.* files", when, seen)
	}
}

func cbEndpointAt(path string) cbEndpoint {
	for _, ep := range cbEndpoints {
		if ep.path == path {
			return ep
		}
	}
	panic("no endpoint " + path)
}

// parallel runs jobs on n goroutines.
func cbParallel(n int, jobs []func()) {
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			j()
		}()
	}
	wg.Wait()
}

// ---- The upstream ----------------------------------------------------------

// found returns the stored values the request carries anywhere (sorted by
// secret name): what an upstream that echoes "the credential" has to echo.
func (b *canaryBrokerRun) found(r *http.Request, body string) [][]byte {
	got := map[string]bool{}
	if a := r.Header.Get("Authorization"); a != "" {
		if tok, ok := strings.CutPrefix(a, "Bearer "); ok {
			got[tok] = true
		}
		if enc, ok := strings.CutPrefix(a, "Basic "); ok {
			if dec, err := base64.StdEncoding.DecodeString(enc); err == nil {
				got[string(dec)] = true
			}
		}
	}
	for _, vs := range r.Header {
		for _, v := range vs {
			got[v] = true
		}
	}
	for _, raw := range []string{r.URL.RawQuery, body} {
		q, _ := url.ParseQuery(raw)
		for _, vs := range q {
			for _, v := range vs {
				got[v] = true
			}
		}
	}
	var doc any
	if json.Unmarshal([]byte(body), &doc) == nil {
		var walk func(any)
		walk = func(n any) {
			switch x := n.(type) {
			case string:
				got[x] = true
			case map[string]any:
				for _, e := range x {
					walk(e)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			}
		}
		walk(doc)
	}
	var out [][]byte
	for _, name := range b.names {
		if got[string(b.values[name])] {
			out = append(out, b.values[name])
		}
	}
	return out
}

// cbEchoes are the encodings an API might echo a value in, all of
// them forms the broker documents that it redacts.
func cbEchoes(v []byte) []canaryEncoding {
	std := base64.StdEncoding.EncodeToString
	q := strconv.Quote(string(v))
	cat := func(parts ...string) []byte { return []byte(strings.Join(parts, "")) }
	return []canaryEncoding{
		{"raw", v},
		{"base64 std", []byte(std(v))},
		{"base64 std unpadded", []byte(base64.RawStdEncoding.EncodeToString(v))},
		{"base64 url", []byte(base64.URLEncoding.EncodeToString(v))},
		{"base64 url unpadded", []byte(base64.RawURLEncoding.EncodeToString(v))},
		{"base64 of value+tail", []byte(std(cat(string(v), "tail")))},
		{"base64 of x+value+yz", []byte(std(cat("x", string(v), "yz")))},
		{"base64 of xy+value+z", []byte(std(cat("xy", string(v), "z")))},
		{"hex", []byte(hex.EncodeToString(v))},
		{"HEX", []byte(strings.ToUpper(hex.EncodeToString(v)))},
		{"url.QueryEscape", []byte(url.QueryEscape(string(v)))},
		{"url.PathEscape", []byte(url.PathEscape(string(v)))},
		{"JSON-escaped", []byte(cbJSONInner(v, true))},
		{"JSON-escaped (no HTML escaping)", []byte(cbJSONInner(v, false))},
		{`JSON-escaped with \/`, []byte(strings.ReplaceAll(cbJSONInner(v, false), "/", `\/`))},
		{"Go-quoted", []byte(q[1 : len(q)-1])},
	}
}

// cbJSONInner is v as the inside of a JSON string.
func cbJSONInner(v []byte, escapeHTML bool) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	_ = enc.Encode(string(v))
	s := strings.TrimSuffix(buf.String(), "\n")
	return s[1 : len(s)-1]
}

// cbGsonInner is v JSON-escaped the way Gson does by default (HTML-safe: also
// = and ' as \u003d and \u0027). Still valid JSON for the same string.
func cbGsonInner(v []byte) string {
	return strings.NewReplacer("=", `\u003d`, "'", `\u0027`).Replace(cbJSONInner(v, true))
}

func cbHeaderSafe(v []byte) bool { return !bytes.ContainsAny(v, "\r\n\x00") }

func cbTokenOnly(v []byte) bool {
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return len(v) > 0
}

func cbSleep(r *http.Request, d time.Duration) bool {
	select {
	case <-r.Context().Done():
		return false
	case <-time.After(d):
		return true
	}
}

// hijack writes raw bytes on the connection and closes it.
func cbHijack(w http.ResponseWriter, raw []byte) {
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	rw.Write(raw)
	rw.Flush()
	conn.Close()
}

// serve is the echoing upstream. Every echo is labelled, so a leak report's
// excerpt says which one got through.
func (b *canaryBrokerRun) serve(w http.ResponseWriter, r *http.Request, body string) {
	vals := b.found(r, body)
	first := []byte("no-credential-received")
	if len(vals) > 0 {
		first = vals[0]
	}
	cut := first[:len(first)*3/4] // enough of the random part to be a leak
	h := w.Header()
	text := func(status int) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
	}
	flush := func() { w.(http.Flusher).Flush() }
	rawEcho := func(out io.Writer) {
		for _, v := range vals {
			fmt.Fprintf(out, "raw echo: %s\n", v)
		}
	}
	redirect := func(loc string) {
		h.Set("Location", loc)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusFound)
		fmt.Fprintf(w, "moved to %s\n", loc)
	}
	// jsonObjs is a JSON document echoing each value in several fields, each
	// escaped by enc (one escaping style per document, as a real server has).
	jsonObjs := func(enc func([]byte) string) string {
		var objs []string
		for _, v := range vals {
			e := enc(v)
			objs = append(objs, fmt.Sprintf(`{"echo":"%s","nested":{"token":"%s"},"list":["%s"],"base64":"%s"}`,
				e, e, e, base64.StdEncoding.EncodeToString(v)))
		}
		return "[" + strings.Join(objs, ",") + "]"
	}
	switch r.URL.Path {
	case "/v1/quiet":
		text(200)
		fmt.Fprint(w, "nothing to see\n")
	case "/v1/raw":
		text(200)
		rawEcho(w)
	case "/v1/encodings":
		text(200)
		for _, v := range vals {
			for _, e := range cbEchoes(v) {
				fmt.Fprintf(w, "%s: %s\n", e.name, e.data)
			}
		}
	case "/v1/json":
		h.Set("Content-Type", "application/json")
		// encoding/json (HTML-safe), encoding/json without HTML escaping, PHP (\/).
		fmt.Fprintf(w, `{"go":%s,"go_no_html_escaping":%s,"php":%s}`,
			jsonObjs(func(v []byte) string { return cbJSONInner(v, true) }),
			jsonObjs(func(v []byte) string { return cbJSONInner(v, false) }),
			jsonObjs(func(v []byte) string { return strings.ReplaceAll(cbJSONInner(v, false), "/", `\/`) }))
	case "/v1/gson":
		h.Set("Content-Type", "application/json")
		fmt.Fprint(w, jsonObjs(cbGsonInner))
	case "/v1/headers":
		h.Set("Link", "</hint?k="+url.QueryEscape(string(first))+">; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		for _, v := range vals {
			if cbHeaderSafe(v) {
				h.Add("X-Echo", string(v))
				h.Add("Set-Cookie", "raw="+string(v))
			}
			h.Add("X-Echo-Base64", base64.StdEncoding.EncodeToString(v))
			h.Add("X-Echo-Hex", hex.EncodeToString(v))
			h.Add("X-Echo-Url", url.QueryEscape(string(v)))
			h.Add("X-Echo-Json", cbJSONInner(v, true))
			h.Add("Set-Cookie", "session="+url.QueryEscape(string(v))+"; Path=/; HttpOnly")
			// The value as a header NAME, written as is (not canonicalised).
			if cbTokenOnly(v) {
				h["X-Echo-"+string(v)] = []string{"value in the header name"}
			} else {
				h["X-Echo-Hex-"+hex.EncodeToString(v)] = []string{"hex value in the header name"}
			}
		}
		text(200)
		fmt.Fprint(w, "headers echoed\n")
	case "/v1/gzip":
		h.Set("Content-Encoding", "gzip")
		text(200)
		zw := gzip.NewWriter(w)
		rawEcho(zw)
		for _, v := range vals {
			fmt.Fprintf(zw, "gzip base64 echo: %s\n", base64.StdEncoding.EncodeToString(v))
		}
		zw.Close()
	case "/v1/deflate":
		h.Set("Content-Encoding", "deflate")
		text(200)
		zw := zlib.NewWriter(w)
		rawEcho(zw)
		for _, v := range vals {
			fmt.Fprintf(zw, "deflate hex echo: %s\n", hex.EncodeToString(v))
		}
		zw.Close()
	case "/v1/sse":
		h.Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		flush()
		for _, v := range vals {
			half := len(v) / 2
			fmt.Fprintf(w, "data: split echo: %s", v[:half])
			flush()
			if !cbSleep(r, 100*time.Millisecond) {
				return
			}
			fmt.Fprintf(w, "%s\n\n", v[half:])
			flush()
		}
		fmt.Fprint(w, "data: done\n\n")
	case "/v1/trailer":
		h.Set("Trailer", "X-Echo-Trailer")
		text(200)
		fmt.Fprint(w, "a trailer follows\n")
		rawEcho(w)
		if cbHeaderSafe(first) {
			h.Set("X-Echo-Trailer", string(first))
		}
	case "/v1/status500":
		h.Set("Content-Type", "application/json")
		w.WriteHeader(500)
		var msgs []string
		for _, v := range vals {
			msgs = append(msgs, `"Invalid API key provided: `+cbJSONInner(v, true)+`"`)
		}
		fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","messages":[%s]}}`, strings.Join(msgs, ","))
	case "/v1/status404":
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(404)
		fmt.Fprint(w, "<html><body><h1>404 Not Found</h1>\n")
		for _, v := range vals {
			fmt.Fprintf(w, "<p>raw echo: %s</p>\n<p>html-escaped echo: %s</p>\n", v, html.EscapeString(string(v)))
		}
		fmt.Fprint(w, "</body></html>\n")
	case "/v1/redirect-same":
		redirect("/v1/landing?from=redirect&echo=" + url.QueryEscape(string(first)))
	case "/v1/redirect-same-path":
		redirect("/v1/landing/" + url.PathEscape(string(first)))
	case "/v1/redirect-cross":
		redirect(b.other.URL + "/steal?token=" + url.QueryEscape(string(first)))
	case "/v1/redirect-denied":
		redirect("/private/" + url.PathEscape(string(first)))
	case "/v1/basic-password":
		// What an API that checks user and password separately might say.
		text(401)
		for _, v := range vals {
			if user, pass, ok := bytes.Cut(v, []byte(":")); ok {
				fmt.Fprintf(w, "user %s: wrong password %s\n", user, pass)
			}
		}
	case "/v1/content-encoding":
		if cbHeaderSafe(first) {
			h.Set("Content-Encoding", string(first))
		}
		text(200)
		fmt.Fprint(w, "body in an unknown encoding\n")
	case "/v1/malformed-status":
		cbHijack(w, []byte("HTTP/1.1 "+string(first)+"\r\n\r\n"))
	case "/v1/malformed-header":
		// A folded first header line: Go's client quotes the whole line in its error.
		cbHijack(w, []byte("HTTP/1.1 200 OK\r\n X-Echo: "+string(first)+"\r\nContent-Length: 2\r\n\r\nok"))
	case "/v1/hangup-clean":
		// Every echo complete, then the connection closes short of Content-Length.
		var raw bytes.Buffer
		raw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n")
		rawEcho(&raw)
		cbHijack(w, raw.Bytes())
	case "/v1/hangup-mid":
		// Chunked (so the proxy streams it), closed in the middle of an echo.
		var data bytes.Buffer
		rawEcho(&data)
		fmt.Fprintf(&data, "echo cut by a hang-up: %s", cut)
		cbHijack(w, fmt.Appendf(nil, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s", data.Len(), data.Bytes()))
	case "/v1/slow":
		if !cbSleep(r, 1500*time.Millisecond) {
			return
		}
		text(200)
		rawEcho(w)
	case "/v1/slow-body":
		text(200)
		rawEcho(w)
		fmt.Fprintf(w, "echo cut by a stall: %s", cut)
		flush()
		cbSleep(r, 3*time.Second)
	case "/v1/large":
		// Past what the proxy answers whole (64 KiB), with a length: it
		// holds the first 64 KiB and 1 byte, then streams. The first echo
		// straddles that line, the others follow it.
		var data bytes.Buffer
		data.Write(bytes.Repeat([]byte("x"), 64<<10-len(first)/2))
		rawEcho(&data)
		data.Write(bytes.Repeat([]byte("y"), 16<<10))
		rawEcho(&data)
		h.Set("Content-Length", strconv.Itoa(data.Len()))
		text(200)
		w.Write(data.Bytes())
	case "/v1/big":
		const size = 1 << 20
		line := []byte("raw echo: " + string(first) + "\n")
		h.Set("Content-Length", strconv.Itoa(size))
		text(200)
		w.Write(bytes.Repeat(line, size/len(line)+1)[:size])
	case "/v1/big-chunked":
		text(200)
		flush() // no Content-Length: the cap is hit while streaming
		var head bytes.Buffer
		rawEcho(&head)
		const label = "\necho cut by the size cap: "
		filler := max(cbMaxResponse-head.Len()-len(label)-len(cut), 0)
		w.Write(head.Bytes())
		w.Write(bytes.Repeat([]byte("x"), filler))
		fmt.Fprintf(w, "%s%s\n", label, first)
		flush()
		w.Write(bytes.Repeat([]byte("y"), 8192))
	default: // landing pages of redirects
		text(200)
		fmt.Fprintf(w, "landing at %s?%s\n", r.URL.EscapedPath(), r.URL.RawQuery)
		rawEcho(w)
	}
}

// ---- Did the values arrive? ------------------------------------------------

// received reports whether the upstream got val as the injection asked.
func cbReceived(s *seen, in cbInjection, val []byte) bool {
	v := string(val)
	switch in.style {
	case "bearer":
		return s.Header.Get("Authorization") == "Bearer "+v
	case "basic":
		return s.Header.Get("Authorization") == "Basic "+base64.StdEncoding.EncodeToString(val)
	case "header":
		return s.Header.Get(in.field) == v
	case "query":
		q, _ := url.ParseQuery(s.Query)
		return q.Get(in.field) == v
	case "form":
		q, _ := url.ParseQuery(s.Body)
		return q.Get(in.field) == v
	case "body":
		var node any
		if json.Unmarshal([]byte(s.Body), &node) != nil {
			return false
		}
		for _, p := range strings.Split(in.field, ".") {
			m, ok := node.(map[string]any)
			if !ok {
				return false
			}
			node = m[p]
		}
		return node == any(v)
	}
	return false
}

func (b *canaryBrokerRun) byRid(rid string) []*seen {
	var out []*seen
	for _, s := range b.up.requests() {
		if s.Header.Get(cbRidHeader) == rid {
			out = append(out, s)
		}
	}
	return out
}

// expectReceived: the first request the upstream got for rid carries every
// injected value exactly where it was injected.
func (b *canaryBrokerRun) expectReceived(label, rid string, set cbInjSet) {
	b.t.Helper()
	got := b.byRid(rid)
	if len(got) == 0 {
		b.t.Errorf("%s: the upstream never received the request, so nothing was injected", label)
		return
	}
	for _, in := range set.ins {
		if !cbReceived(got[0], in, b.values[in.secret]) {
			b.t.Errorf("%s: the upstream did not receive %s as %s %q (%s %s?%.100s)", label, in.secret, in.style, in.field, got[0].Method, got[0].Path, got[0].Query)
		}
	}
}

func (b *canaryBrokerRun) expectNotReceived(label, rid string) {
	b.t.Helper()
	if n := len(b.byRid(rid)); n > 0 {
		b.t.Errorf("%s: a refused request reached the upstream %d times", label, n)
	}
}

// ---- call ------------------------------------------------------------------

func (b *canaryBrokerRun) callEcho(set cbInjSet, ep cbEndpoint) {
	rid := b.nextRid()
	timeout := "20s"
	if ep.timeout {
		timeout = "1s"
	}
	args := []string{"call", "--url", b.up.URL + ep.path, "-H", cbRidHeader + ": " + rid, "--timeout", timeout}
	if ep.capped {
		args = append(args, "--max-response", strconv.Itoa(cbMaxResponse))
	}
	r := b.exec(nil, append(args, set.callArgs()...)...)
	label := fmt.Sprintf("call %s with %s", ep.path, set.name)
	switch ep.code {
	case "":
		if m := b.expectOK(r); m != nil {
			if ep.status != 0 && m["status"] != float64(ep.status) {
				b.t.Errorf("%s: status %v, want %d", label, m["status"], ep.status)
			}
			if ep.redacted && m["redacted"] != true {
				b.t.Errorf("%s: the result does not say redacted: %.300s", label, r.Stdout)
			}
		}
	case "*":
		if r.Code == 0 {
			b.t.Errorf("%s: succeeded, want a failure: %.300s", label, r.Stdout)
		} else {
			b.t.Logf("%s: exit %d %.200s", label, r.Code, r.Stdout)
		}
	default:
		b.expectErr(r, ep.code, ep.exit)
	}
	b.expectReceived(label, rid, set)
}

// callVariants: --select, --format text, --fail, --input, and the error paths.
func (b *canaryBrokerRun) callVariants(misplaced map[string][]byte, port string) {
	c := b.canaryRun
	up := b.up.URL
	rid := func() (string, []string) { id := b.nextRid(); return id, []string{"-H", cbRidHeader + ": " + id} }
	ok := func(label string, set cbInjSet, stdin []byte, args ...string) *Result {
		id, h := rid()
		r := b.exec(stdin, append(append(args, h...), set.callArgs()...)...)
		c.expectOK(r)
		b.expectReceived(label, id, set)
		return r
	}
	bearer, header, basic, query := cbSingles[0], cbSingles[2], cbSingles[1], cbSingles[3]
	body, form := cbSingles[4], cbSingles[5]

	r := ok("--select body", bearer, nil, "call", "--url", up+"/v1/json", "--select", "body")
	if !bytes.Contains(r.Stdout, []byte(`"echo":"[REDACTED]"`)) {
		b.t.Errorf("--select body: %.300s", r.Stdout)
	}
	ok("--select body.go.0.echo", body, nil, "call", "--url", up+"/v1/json", "--select", "body.go.0.echo")
	ok("--select headers", basic, nil, "call", "--url", up+"/v1/headers", "--select", "headers")
	ok("--format text --select body", query, nil, "--format", "text", "call", "--url", up+"/v1/encodings", "--select", "body")
	ok("--format text", header, nil, "--format", "text", "call", "--url", up+"/v1/headers")
	ok("--format text gzip", form, nil, "--format", "text", "call", "--url", up+"/v1/gzip")
	ok("--json", cbComboB, nil, "--json", "call", "--url", up+"/v1/encodings")
	id, h := rid()
	doc, _ := json.Marshal(map[string]any{"url": up + "/v1/encodings", "bearer": cbBearer, "timeout": "20s", "request_header": []string{h[1]}})
	c.expectOK(b.exec(doc, "call", "--input", "-"))
	b.expectReceived("call --input -", id, bearer)
	ok("CR/LF value in the query", cbInjSet{ins: []cbInjection{{"query", "crlf", cbCRLF}}}, nil, "call", "--url", up+"/v1/raw")
	// It holds a ':' and so is user:password; base64 carries the line break safely.
	ok("CR/LF value as basic", cbInjSet{ins: []cbInjection{{"basic", "", cbCRLF}}}, nil, "call", "--url", up+"/v1/raw")

	// fail expects a refusal; unless reached, the upstream must not see the request.
	var reached bool
	fail := func(label string, set cbInjSet, code string, exit int, text bool, args ...string) {
		id, h := rid()
		if text {
			args = append([]string{"--format", "text"}, args...)
		}
		r := b.exec(nil, append(append(args, h...), set.callArgs()...)...)
		if text {
			c.expectTextErr(r, exit)
		} else {
			c.expectErr(r, code, exit)
		}
		if reached {
			b.expectReceived(label, id, set)
		} else {
			b.expectNotReceived(label, id)
		}
	}
	reached = true
	fail("--fail on 500", bearer, "upstream", 8, false, "call", "--url", up+"/v1/status500", "--fail")
	fail("--fail on 404", body, "upstream", 8, false, "call", "--url", up+"/v1/status404", "--fail")
	fail("--format text --fail on 404", cbComboA, "upstream", 8, true, "call", "--url", up+"/v1/status404", "--fail")
	fail("--select matching nothing", query, "usage", 2, false, "call", "--url", up+"/v1/encodings", "--select", "nope.nothing")
	reached = false
	bigBody := c.inputFile("big-body.json", bytes.Repeat([]byte("a"), 10<<20+1))
	fail("--data-file over 10 MiB", bearer, "too_large", 10, false, "call", "--url", up+"/v1/raw", "--data-file", bigBody)
	c.removeInputs()

	// Refusals: nothing may reach the upstream, and no value may come back.
	one := func(style, field, secret string) cbInjSet {
		return cbInjSet{name: style + " " + secret, ins: []cbInjection{{style, field, secret}}}
	}
	for _, text := range []bool{false, true} {
		fail("unknown secret", one("bearer", "", "NOPE_KEY"), "not_found", 3, text, "call", "--url", up+"/v1/raw")
		fail("unbound secret", one("bearer", "", cbUnbound), "denied", 4, text, "call", "--url", up+"/v1/raw")
		fail("CR/LF value as bearer", one("bearer", "", cbCRLF), "usage", 2, text, "call", "--url", up+"/v1/raw")
		fail("CR/LF value in a header", one("header", "X-Api-Key", cbCRLF), "usage", 2, text, "call", "--url", up+"/v1/raw")
	}
	fail("not user:pass as basic", one("basic", "", cbHeader), "usage", 2, false, "call", "--url", up+"/v1/raw")
	fail("not allowlisted", bearer, "denied", 4, false, "call", "--url", "https://api.example.com/v1/raw")
	fail("metadata address", bearer, "denied", 4, false, "call", "--url", "http://169.254.169.254/latest/meta-data/", "--timeout", "3s")
	fail("private address", bearer, "denied", 4, false, "call", "--url", "http://localhost:"+port+"/v1/raw")
	fail("outside the bound path", one("bearer", "", cbPrefixed), "denied", 4, false, "call", "--url", up+"/v2/raw")
	fail("userinfo in the URL", bearer, "usage", 2, false, "call", "--url", "http://user@127.0.0.1:"+port+"/v1/raw")
	fail("two Authorization injections", cbInjSet{ins: []cbInjection{{"bearer", "", cbBearer}, {"basic", "", cbBasic}}}, "usage", 2, false, "call", "--url", up+"/v1/raw")
	fail("malformed --header pair", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "--header", "X-Api-Key")
	fail("malformed --query pair", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "--query", "="+cbQuery)
	// Values typed where a name or a flag value belongs.
	m := func(k string) string { return string(misplaced[k]) }
	fail("a value as --bearer", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "--bearer", m("bearer"))
	fail("a value in --header", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "--header", "X-Api-Key="+m("header"))
	fail("a value in --query", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "--query", "api_key="+m("query"))
	fail("a value as -H", cbInjSet{}, "usage", 2, false, "call", "--url", up+"/v1/raw", "-H", m("plainheader"))
	fail("a value as --timeout", bearer, "usage", 2, false, "call", "--url", up+"/v1/raw", "--timeout", m("timeout"))
	fail("a value as --max-response", bearer, "usage", 2, false, "call", "--url", up+"/v1/raw", "--max-response", m("maxresponse"))
	fail("a value as -X", bearer, "usage", 2, false, "call", "--url", up+"/v1/raw", "-X", m("method"))
}

// ---- The proxy -------------------------------------------------------------

type cbProxyResp struct {
	status  int
	header  http.Header
	trailer http.Header
	body    []byte
	err     error // transport or body read error
}

// proxyDo sends one request to a proxy and captures everything that came
// back. A transport error is not fatal: a proxy that aborts a response
// mid-body is one of the cases.
func (b *canaryBrokerRun) proxyDo(label, addr string, hdr http.Header, body []byte) cbProxyResp {
	req, err := http.NewRequest("POST", "http://"+addr+"/proxy", bytes.NewReader(body))
	must(b.t, err)
	req.Header = hdr
	var pr cbProxyResp
	var meta bytes.Buffer
	resp, err := b.client.Do(req)
	if err != nil {
		pr.err = err
		fmt.Fprintf(&meta, "transport error: %v\n", err)
	} else {
		data, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		pr = cbProxyResp{status: resp.StatusCode, header: resp.Header, trailer: resp.Trailer, body: data, err: rerr}
		fmt.Fprintf(&meta, "%s %s\r\n", resp.Proto, resp.Status)
		resp.Header.Write(&meta)
		meta.WriteString("-- trailers --\r\n")
		resp.Trailer.Write(&meta)
		if rerr != nil {
			fmt.Fprintf(&meta, "-- body read error: %v\n", rerr)
		}
	}
	b.capture("status line, headers and trailers of "+label, meta.Bytes())
	b.capture("body of "+label, pr.body)
	return pr
}

func (b *canaryBrokerRun) proxyEcho(front, addr, token string, set cbInjSet, ep cbEndpoint) {
	rid := b.nextRid()
	hdr := http.Header{}
	hdr.Set("X-AS-Session-Token", token)
	hdr.Set("X-AS-Target-URL", b.up.URL+ep.path)
	hdr.Set(cbRidHeader, rid)
	for _, kv := range set.proxyHeaders() {
		hdr.Add(kv[0], kv[1])
	}
	label := fmt.Sprintf("%s %s with %s", front, ep.path, set.name)
	pr := b.proxyDo(label, addr, hdr, nil)
	b.expectReceived(fmt.Sprintf("%s (proxy answered %d %.200q, %v)", label, pr.status, pr.body, pr.err), rid, set)
	switch {
	case ep.proxyStatus != 0 && pr.status != ep.proxyStatus:
		b.t.Errorf("%s: status %d (%v), want %d: %.300s", label, pr.status, pr.err, ep.proxyStatus, pr.body)
	case pr.status >= 400 && ep.code != "" && ep.code != "*":
		if !bytes.Contains(pr.body, []byte(`"code":"`+ep.code+`"`)) {
			b.t.Errorf("%s: %d %.300s, want code %s", label, pr.status, pr.body, ep.code)
		}
	case ep.code == "" && pr.err == nil:
		if pr.header.Get("X-AS-Audit-Id") == "" {
			b.t.Errorf("%s: no X-AS-Audit-Id", label)
		}
		if ep.redacted && redactedFlag(pr.header, pr.trailer) != "true" {
			b.t.Errorf("%s: X-AS-Redacted header %q, trailer %q, want true where the framing puts it", label, pr.header.Get("X-AS-Redacted"), pr.trailer.Get("X-AS-Redacted"))
		}
	case ep.code == "" && pr.err != nil:
		b.t.Errorf("%s: %v", label, pr.err)
	}
}

// proxyErrors: every refusal of the proxy, through proxyRequest.
func (b *canaryBrokerRun) proxyErrors(addr, token string, misplaced map[string][]byte, port string) {
	target := b.up.URL + "/v1/raw"
	cases := []struct {
		name   string
		token  string
		hdr    map[string]string
		body   string
		status int
		code   string
	}{
		{"no token", "", map[string]string{"X-AS-Inject-Bearer": cbBearer}, "", 401, "unauthorized"},
		{"wrong token (a value)", string(misplaced["token"]), map[string]string{"X-AS-Inject-Bearer": cbBearer}, "", 401, "unauthorized"},
		{"non-loopback Host", token, map[string]string{"Host": "evil.example:8765", "X-AS-Inject-Bearer": cbBearer}, "", 403, "denied"},
		{"unknown secret", token, map[string]string{"X-AS-Inject-Bearer": "NOPE_KEY"}, "", 404, "not_found"},
		{"unbound secret", token, map[string]string{"X-AS-Inject-Bearer": cbUnbound}, "", 403, "denied"},
		{"outside the bound path", token, map[string]string{"X-AS-Target-URL": b.up.URL + "/v2/raw", "X-AS-Inject-Bearer": cbPrefixed}, "", 403, "denied"},
		{"not allowlisted", token, map[string]string{"X-AS-Target-URL": "https://api.example.com/v1", "X-AS-Inject-Bearer": cbBearer}, "", 403, "denied"},
		{"SSRF: metadata address", token, map[string]string{"X-AS-Target-URL": "http://169.254.169.254/latest/meta-data/", "X-AS-Inject-Bearer": cbBearer}, "", 403, "denied"},
		{"SSRF: private address", token, map[string]string{"X-AS-Target-URL": "http://localhost:" + port + "/v1/raw", "X-AS-Inject-Bearer": cbBearer}, "", 403, "denied"},
		{"bad target URL: scheme", token, map[string]string{"X-AS-Target-URL": "ftp://127.0.0.1:" + port + "/v1/raw", "X-AS-Inject-Bearer": cbBearer}, "", 400, "usage"},
		{"bad target URL: unparsable", token, map[string]string{"X-AS-Target-URL": "http://[::1", "X-AS-Inject-Bearer": cbBearer}, "", 400, "usage"},
		{"bad target URL: userinfo", token, map[string]string{"X-AS-Target-URL": "http://user@127.0.0.1:" + port + "/v1/raw", "X-AS-Inject-Bearer": cbBearer}, "", 400, "usage"},
		{"no target", token, map[string]string{"X-AS-Target-URL": "", "X-AS-Inject-Bearer": cbBearer}, "", 400, "usage"},
		{"CR/LF value as bearer", token, map[string]string{"X-AS-Inject-Bearer": cbCRLF}, "", 400, "usage"},
		{"CR/LF value in a header", token, map[string]string{"X-AS-Inject-Header-X-Api-Key": cbCRLF}, "", 400, "usage"},
		{"a value as the secret name", token, map[string]string{"X-AS-Inject-Bearer": string(misplaced["proxybearer"])}, "", 400, "usage"},
		{"a value in X-AS-Inject-Query", token, map[string]string{"X-AS-Inject-Query": "api_key=" + string(misplaced["proxyquery"])}, "", 400, "usage"},
		{"malformed X-AS-Inject-Query", token, map[string]string{"X-AS-Inject-Query": cbQuery}, "", 400, "usage"},
		{"unknown X-AS-Inject-*", token, map[string]string{"X-AS-Inject-Cookie": cbBearer}, "", 400, "usage"},
		{"two Authorization injections", token, map[string]string{"X-AS-Inject-Bearer": cbBearer, "X-AS-Inject-Basic": cbBasic}, "", 400, "usage"},
		{"unknown project", token, map[string]string{"X-AS-Project": "nope", "X-AS-Inject-Bearer": cbBearer}, "", 404, "not_found"},
		{"oversized request body", token, map[string]string{"X-AS-Inject-Bearer": cbBearer}, strings.Repeat("a", 10<<20+1), 413, "too_large"},
	}
	for _, tc := range cases {
		rid := b.nextRid()
		hdr := map[string]string{"X-AS-Target-URL": target, cbRidHeader: rid}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		if hdr["X-AS-Target-URL"] == "" {
			delete(hdr, "X-AS-Target-URL")
		}
		resp, body := proxyRequest(b.t, addr, tc.token, hdr, tc.body)
		var meta bytes.Buffer
		fmt.Fprintf(&meta, "%s %s\r\n", resp.Proto, resp.Status)
		resp.Header.Write(&meta)
		resp.Trailer.Write(&meta)
		label := "proxy error path: " + tc.name
		b.capture("status line, headers and trailers of "+label, meta.Bytes())
		b.capture("body of "+label, body)
		if resp.StatusCode != tc.status || !bytes.Contains(body, []byte(`"code":"`+tc.code+`"`)) {
			b.t.Errorf("%s: %d %.300s, want %d %s", label, resp.StatusCode, body, tc.status, tc.code)
		}
		b.expectNotReceived(label, rid)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/health", nil)
	if resp, err := b.client.Do(req); err != nil {
		b.t.Errorf("/health: %v", err)
	} else {
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		b.capture("proxy /health", data)
	}
}

// ---- Logs and the audit chain ------------------------------------------------

func (b *canaryBrokerRun) logsAndVerify(start time.Time, upHost string, misplaced map[string][]byte) {
	c := b.canaryRun
	records := func(r *Result) []map[string]any {
		m := c.expectOK(r)
		list, _ := m["records"].([]any)
		var out []map[string]any
		for _, e := range list {
			if o, ok := e.(map[string]any); ok {
				out = append(out, o)
			}
		}
		return out
	}
	all := records(b.exec(nil, "proxy", "logs", "--last", "0"))
	reasons, styles, fronts := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, rec := range all {
		reasons[fmt.Sprint(rec["reason"])] = true
		fronts[fmt.Sprint(rec["front_end"])] = true
		list, _ := rec["styles"].([]any)
		for _, s := range list {
			st, _, _ := strings.Cut(fmt.Sprint(s), ":")
			styles[st] = true
		}
	}
	for _, want := range []string{"credential_echo", "not_allowlisted", "not_bound", "ssrf_metadata_address", "ssrf_private_address",
		"unknown_secret", "upstream_timeout", "upstream_error", "too_large", "bad_request"} {
		if !reasons[want] {
			b.t.Errorf("no audit record with reason %s (reasons: %v)", want, reasons)
		}
	}
	// Not a leak, so only logged: the broker records "header:X-Api-Key"
	// styles, which the audit log's normalisation turns into "(invalid)".
	for _, want := range []string{"bearer", "basic", "header", "query", "body", "form"} {
		if !styles[want] {
			b.t.Logf("NOTE: no audit record names style %s (styles seen: %v)", want, styles)
		}
	}
	if !fronts["call"] || !fronts["proxy"] {
		b.t.Errorf("audit front ends: %v, want call and proxy", fronts)
	}
	b.t.Logf("%d audit records", len(all))

	check := func(label string, recs []map[string]any, ok func(map[string]any) bool) {
		if len(recs) == 0 {
			b.t.Errorf("proxy logs %s: no records", label)
		}
		for _, rec := range recs {
			if !ok(rec) {
				b.t.Errorf("proxy logs %s: record %v does not match", label, rec)
				return
			}
		}
	}
	for _, d := range []string{"allowed", "blocked", "redacted", "error"} {
		check("--decision "+d, records(b.exec(nil, "proxy", "logs", "--last", "0", "--decision", d)),
			func(r map[string]any) bool { return r["decision"] == d })
	}
	check("--secret", records(b.exec(nil, "proxy", "logs", "--last", "0", "--secret", cbBearer)), func(r map[string]any) bool {
		return strings.Contains(fmt.Sprint(r["secrets"]), cbBearer)
	})
	check("--host", records(b.exec(nil, "proxy", "logs", "--last", "0", "--host", upHost)), func(r map[string]any) bool { return r["host"] == upHost })
	since := start.Add(-time.Minute).UTC().Format(time.RFC3339)
	for _, s := range []string{"1h", since} {
		if got := records(b.exec(nil, "proxy", "logs", "--last", "0", "--since", s)); len(got) != len(all) {
			b.t.Errorf("proxy logs --since %s: %d records, want all %d", s, len(got), len(all))
		}
	}
	if got := records(b.exec(nil, "proxy", "logs", "--last", "3")); len(got) != 3 {
		b.t.Errorf("proxy logs --last 3: %d records", len(got))
	}
	check("combined", records(b.exec(nil, "proxy", "logs", "--decision", "redacted", "--secret", cbSpecial, "--host", upHost, "--since", "1h", "--last", "5")),
		func(r map[string]any) bool { return r["decision"] == "redacted" })
	for _, args := range [][]string{
		{"proxy", "logs"},
		{"proxy", "logs", "--last", "0"},
		{"proxy", "logs", "--decision", "blocked", "--secret", cbBearer},
		{"proxy", "logs", "--decision", "error", "--host", upHost, "--since", "1h"},
	} {
		c.expectOK(b.exec(nil, append([]string{"--format", "text"}, args...)...))
	}
	c.expectOK(b.exec(nil, "proxy", "logs", "--last", "0", "--select", "records.#.reason"))
	c.expectErr(b.exec(nil, "proxy", "logs", "--since", string(misplaced["since"])), "usage", 2)
	c.expectErr(b.exec(nil, "proxy", "logs", "--decision", string(misplaced["decision"])), "usage", 2)
	c.expectErr(b.exec(nil, "proxy", "logs", "--last", string(misplaced["last"])), "usage", 2)

	res := c.expectOK(b.exec(nil, "audit", "verify"))
	if res != nil {
		files := fmt.Sprint(res["files"])
		if res["ok"] != true || !strings.Contains(files, "audit.log.1") {
			b.t.Errorf("audit verify: %v, want ok across audit.log.1 and audit.log", res)
		}
	}
	c.expectOK(b.exec(nil, "--format", "text", "audit", "verify"))
}

// ---- The scan ----------------------------------------------------------------

// cbLeakTally forwards assertNoLeak's reports and counts them by place and
// encoding, for a summary at the end.
type cbLeakTally struct {
	testing.TB
	mu   sync.Mutex
	hits map[string]map[string]bool // where → "encoding of canary"
}

func (l *cbLeakTally) Errorf(format string, args ...any) {
	l.TB.Helper()
	l.TB.Errorf(format, args...)
	if len(args) < 4 {
		return
	}
	where := fmt.Sprint(args[0])
	what := fmt.Sprintf("%v of %v", args[1], args[3])
	if _, isInt := args[1].(int); isInt { // the fragment message
		what = fmt.Sprintf("fragment of %v", args[3])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hits[where] == nil {
		l.hits[where] = map[string]bool{}
	}
	l.hits[where][what] = true
}

// asciiLower lower-cases ASCII letters only, so offsets stay the same.
func cbASCIILower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// assertNoFoldedLeak reports a canary whose random part appears with its
// letter case changed (a canonicalised header name, a lower-cased echo): it
// loses a bit per letter and leaves the rest. An occurrence in the original
// case is assertNoLeak's to report.
func assertNoFoldedLeak(tb testing.TB, where string, data []byte, canaries [][]byte) {
	tb.Helper()
	low := cbASCIILower(data)
	for i, c := range canaries {
		run := randomRun(c)
		for j := 0; j+fragmentLen <= len(run) && j < maxFragmentWindows; j++ {
			w := run[j : j+fragmentLen]
			if bytes.Contains(data, w) {
				break
			}
			if k := bytes.Index(low, cbASCIILower(w)); k >= 0 {
				tb.Errorf("LEAK in %s: %s of canary #%d %s at byte %d: %s", where, "case-folded fragment (letter case changed)", i, canaryLabel(c), k, excerpt(data, k, fragmentLen))
				break
			}
		}
	}
}

// scanEverything checks every command output, every proxy response, the
// state files of the running proxies, and every file under the test's root.
func (b *canaryBrokerRun) scanEverything() {
	t := b.t
	b.removeInputs()
	tally := &cbLeakTally{TB: t, hits: map[string]map[string]bool{}}
	scan := func(where string, data []byte) { scanBlob(tally, where, data, b.canaries) }
	outputs, caps := b.scanRecorded(scan)
	scanned := scanFiles(t, b.root, scan)
	want := []string{"home/config.json", "home/index.json", "home/audit.log", "home/audit.log.1", "home/proxy.log", "work/.agentsecrets/project.json"}
	if b.v.Backend == "file" {
		want = append(want, "home/vault.enc")
	}
	for _, w := range want {
		if !scanned[w] {
			t.Errorf("the file scan did not see %s (saw %v)", w, scanned)
		}
	}
	t.Logf("scanned %d command outputs, %d proxy captures and %d files for %d canaries", outputs, caps, len(scanned), len(b.canaries))
	tally.summary(t)
}

// summary reports every place a canary leaked, once, sorted.
func (c *cbLeakTally) summary(t testing.TB) {
	t.Helper()
	if len(c.hits) == 0 {
		return
	}
	var lines []string
	for where, whats := range c.hits {
		var ws []string
		for w := range whats {
			ws = append(ws, w)
		}
		sort.Strings(ws)
		lines = append(lines, fmt.Sprintf("  %s:\n      %s", where, strings.Join(ws, "\n      ")))
	}
	sort.Strings(lines)
	t.Errorf("LEAK SUMMARY: %d places leaked a canary:\n%s", len(lines), strings.Join(lines, "\n"))
}

// scanBlob checks data, and the strings inside it when it is JSON, for
// every canary form.
func scanBlob(tally *cbLeakTally, where string, data []byte, canaries [][]byte) {
	blob := data
	if strs, ok := jsonStrings(data); ok {
		blob = append(append(append([]byte{}, data...), "\n--- the same, JSON-decoded ---\n"...), strs...)
	}
	assertNoLeak(tally, where, blob, canaries)
	assertNoFoldedLeak(tally, where, blob, canaries)
}

// scanRecorded scans every recorded command output and capture of a run.
// It returns how many outputs and captures it scanned.
func (b *canaryBrokerRun) scanRecorded(scan func(string, []byte)) (outputs, caps int) {
	b.mu.Lock()
	recorded, captured := b.outputs, b.caps
	b.mu.Unlock()
	for _, r := range recorded {
		scan("stdout of "+b.describe(r.Args), r.Stdout)
		scan("stderr of "+b.describe(r.Args), r.Stderr)
	}
	for _, cp := range captured {
		scan(cp.where, cp.data)
	}
	return 2 * len(recorded), len(captured)
}

// scanFiles scans every regular file under root and returns the paths it
// saw, relative to root with forward slashes.
func scanFiles(t testing.TB, root string, scan func(string, []byte)) map[string]bool {
	scanned := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		scanned[filepath.ToSlash(rel)] = true
		scan("file "+rel, data)
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", root, err)
	}
	return scanned
}

// storeCanaries stores one canary per injection style, plus an unbound one
// and one holding CR/LF; withPrefixed adds one a followed redirect's path
// may hold.
func (b *canaryBrokerRun) storeCanaries(withPrefixed bool) {
	c, t := b.canaryRun, b.t
	b.store(cbBearer, c.canary("bearer", ""))
	basic := []byte("agent:" + canaryMarker + "basic." + randomB64(t, 32) + `&<>"`)
	c.canaries = append(c.canaries, basic)
	b.store(cbBasic, basic)
	b.store(cbHeader, c.canary("header", "+/="))
	b.store(cbQuery, c.canary("query", `+/=&"<>\`))
	b.store(cbBody, c.canary("body", `"\<>&/`))
	b.store(cbForm, c.canary("form", "+&= %"))
	b.store(cbSpecial, c.canary("special", `+/="\&<>'`))
	if withPrefixed {
		b.store(cbPrefixed, c.canary("prefixed", `+=&<>"`)) // no / or \: a redirect to a path holding it is followed
	}
	b.store(cbUnbound, c.canary("unbound", "+/="))
	b.store(cbCRLF, c.canary("crlf", "\r\nX-Injected: yes"))
	sort.Strings(b.names)
}
