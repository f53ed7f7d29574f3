package e2e

import (
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream is a real HTTP server on 127.0.0.1 that records what it got.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*seen
}

type seen struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	Body   string
}

func newUpstream(t *testing.T, h func(w http.ResponseWriter, r *http.Request, body string)) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, &seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(b)})
		u.mu.Unlock()
		h(w, r, string(b))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) hostport() string { return strings.TrimPrefix(u.URL, "http://") }

func (u *upstream) requests() []*seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*seen(nil), u.reqs...)
}

// brokerVault is a file-backend vault with one secret per name, each
// allowlisted and bound (all surfaces, X-Api-Key) to every given upstream.
// The upstreams echo by design, so the bindings are exempt from the echo
// tripwire (issue8_policy_test.go tests it).
func brokerVault(t *testing.T, secrets map[string]string, ups ...*upstream) *Vault {
	v := NewVault(t, "file")
	for name, val := range secrets {
		v.RunIn([]byte(val), "secrets", "set", name, "--from-stdin").OK(t)
	}
	for _, u := range ups {
		v.Run("workspace", "allowlist", "add", u.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
		for name := range secrets {
			v.Run("secrets", "bind", name, u.hostport(), "--surface", "header", "--surface", "query", "--surface", "body",
				"--surface", "form", "--header-name", "X-Api-Key", "--allow-echo", "--passphrase-file", v.AdminFile).OK(t)
		}
	}
	return v
}

func randomValue(t *testing.T, prefix string) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// encodings of a value the redactor must catch.
func encodings(v string) map[string]string {
	return map[string]string{
		"raw":       v,
		"base64":    base64.StdEncoding.EncodeToString([]byte(v)),
		"base64url": base64.RawURLEncoding.EncodeToString([]byte(v)),
		"hex":       hex.EncodeToString([]byte(v)),
		"HEX":       strings.ToUpper(hex.EncodeToString([]byte(v))),
		"url":       url.QueryEscape(v),
		"json":      strings.Trim(mustJSON(v), `"`),
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// noValue fails if any encoding of value is in data.
func noValue(t *testing.T, where string, data []byte, value string) {
	t.Helper()
	for name, enc := range encodings(value) {
		if len(enc) >= 6 && strings.Contains(string(data), enc) {
			t.Errorf("%s contains the value (%s form)", where, name)
		}
	}
}

func TestEchoesAreRedacted(t *testing.T) {
	key := randomValue(t, "sk_live_")
	basic := "user:" + randomValue(t, "pw_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		auth := r.Header.Get("Authorization")
		secret := strings.TrimPrefix(strings.TrimPrefix(auth, "Bearer "), "Basic ")
		if r.URL.Query().Get("mode") == "basic" {
			dec, _ := base64.StdEncoding.DecodeString(secret)
			secret = string(dec)
		}
		switch r.URL.Path {
		case "/gzip":
			w.Header().Set("Content-Encoding", "gzip")
			w.Header().Set("Content-Type", "application/json")
			zw := gzip.NewWriter(w)
			fmt.Fprintf(zw, `{"echo":%q}`, auth)
			zw.Close()
		case "/header":
			w.Header().Set("X-Debug-Auth", auth)
			w.Header().Set("X-Debug-B64", base64.StdEncoding.EncodeToString([]byte(secret)))
			fmt.Fprint(w, "ok")
		case "/encodings":
			w.Header().Set("Content-Type", "text/plain")
			for name, enc := range encodings(secret) {
				fmt.Fprintf(w, "%s=%s\n", name, enc)
			}
			fmt.Fprintf(w, "auth=%s\n", auth)
		}
	})
	v := brokerVault(t, map[string]string{"KEY": key, "BASIC": basic}, up)
	cases := []struct {
		name, path, value string
		args              []string
	}{
		{"gzip echo, client asked for gzip", "/gzip", key, []string{"--bearer", "KEY", "-H", "Accept-Encoding: gzip"}},
		{"header echo", "/header", key, []string{"--bearer", "KEY"}},
		{"basic echo", "/encodings?mode=basic", basic, []string{"--basic", "BASIC"}},
		{"basic header echo", "/header?mode=basic", basic, []string{"--basic", "BASIC"}},
		{"every encoding", "/encodings", key, []string{"--bearer", "KEY"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := v.Run(append([]string{"call", "--url", up.URL + c.path}, c.args...)...).OK(t)
			noValue(t, "call output", r.Stdout, c.value)
			noValue(t, "call stderr", r.Stderr, c.value)
			if c.name == "basic echo" || c.name == "basic header echo" {
				noValue(t, "call output", r.Stdout, base64.StdEncoding.EncodeToString([]byte(c.value)))
			}
			res := r.JSON(t)
			if res["redacted"] != true || !strings.Contains(string(r.Stdout), "[REDACTED]") {
				t.Fatalf("not marked redacted: %s", r.Stdout)
			}
		})
	}
	logs := v.Run("proxy", "logs", "--decision", "redacted").OK(t)
	if n := strings.Count(string(logs.Stdout), `"reason":"credential_echo"`); n != len(cases) {
		t.Fatalf("%d credential_echo audit records, want %d: %s", n, len(cases), logs.Stdout)
	}
	noValue(t, "proxy logs", logs.Stdout, key)
}

func TestExactFieldNames(t *testing.T) {
	key := randomValue(t, "k_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "{}") })
	v := brokerVault(t, map[string]string{"KEY": key}, up)
	v.Run("call", "--url", up.URL+"/q?keep=1", "--query", "api_key=KEY", "--query", "camelCase=KEY").OK(t)
	v.Run("call", "--url", up.URL+"/b", "--body-field", "auth.api_key=KEY", "--data", `{"auth":{"other":1},"list":[{"x":1}]}`,
		"--body-field", "list.0.token=KEY").OK(t)
	v.Run("call", "--url", up.URL+"/f", "--form-field", "client_secret=KEY", "--data", "grant_type=client_credentials",
		"-H", "Content-Type: application/x-www-form-urlencoded").OK(t)
	reqs := up.requests()
	q, _ := url.ParseQuery(reqs[0].Query)
	if q.Get("api_key") != key || q.Get("camelCase") != key || q.Get("keep") != "1" {
		t.Fatalf("query names changed: %q", reqs[0].Query)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(reqs[1].Body), &body); err != nil {
		t.Fatal(err)
	}
	auth := body["auth"].(map[string]any)
	if auth["api_key"] != key || auth["other"] != float64(1) || body["list"].([]any)[0].(map[string]any)["token"] != key {
		t.Fatalf("JSON body: %s", reqs[1].Body)
	}
	if reqs[1].Method != "POST" {
		t.Fatalf("a body makes the default method POST, got %s", reqs[1].Method)
	}
	f, _ := url.ParseQuery(reqs[2].Body)
	if f.Get("client_secret") != key || f.Get("grant_type") != "client_credentials" {
		t.Fatalf("form: %q", reqs[2].Body)
	}
}

func TestRedirects(t *testing.T) {
	key := randomValue(t, "sk_")
	other := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "other origin") })
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		switch r.URL.Path {
		case "/cross":
			http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
		case "/same307":
			http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
		case "/target":
			fmt.Fprintf(w, `{"method":%q}`, r.Method)
		}
	})
	// Both origins are allowlisted and bound: cross-origin redirects are
	// still never followed with a credential.
	v := brokerVault(t, map[string]string{"KEY": key}, up, other)
	r := v.Run("call", "--url", up.URL+"/cross", "--header", "X-Api-Key=KEY", "-H", "Referer: https://agent.local/")
	r.OK(t)
	if res := r.JSON(t); res["status"] != float64(302) || !strings.Contains(string(r.Stdout), "another origin") {
		t.Fatalf("cross-origin redirect should come back as the 3xx with a note: %s", r.Stdout)
	}
	v.Run("call", "--url", up.URL+"/cross", "--query", "token=KEY").OK(t)
	if n := len(other.requests()); n != 0 {
		t.Fatalf("the other origin received %d requests", n)
	}

	r = v.Run("call", "--url", up.URL+"/same307", "--body-field", "key=KEY", "--data", `{"amount":5}`).OK(t)
	if res := r.JSON(t); res["status"] != float64(200) {
		t.Fatalf("307 not followed: %s", r.Stdout)
	}
	reqs := up.requests()
	last := reqs[len(reqs)-1]
	if last.Path != "/target" || last.Method != "POST" || !strings.Contains(last.Body, key) || !strings.Contains(last.Body, `"amount":5`) {
		t.Fatalf("307 must re-send method and injected body, got %s %s %q", last.Method, last.Path, last.Body)
	}
}

func TestPolicyDenials(t *testing.T) {
	key := randomValue(t, "sk_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "reached") })
	v := brokerVault(t, map[string]string{"KEY": key}, up)
	v.RunIn([]byte(randomValue(t, "u_")), "secrets", "set", "UNBOUND", "--from-stdin").OK(t)
	port := strings.Split(up.hostport(), ":")[1]
	cases := []struct {
		name, url string
		args      []string
		code      string
		exit      int
	}{
		{"unknown secret", up.URL, []string{"--bearer", "NOPE"}, "not_found", 3},
		{"unbound secret", up.URL, []string{"--bearer", "UNBOUND"}, "denied", 4},
		{"host not allowlisted", "https://api.example.com/", []string{"--bearer", "KEY"}, "denied", 4},
		{"localhost is another name", "http://localhost:" + port + "/", []string{"--bearer", "KEY"}, "denied", 4},
		{"userinfo", "http://api.example.com@" + up.hostport() + "/", []string{"--bearer", "KEY"}, "usage", 2},
		{"other port", "http://127.0.0.1:1/", []string{"--bearer", "KEY"}, "denied", 4},
		{"non-ASCII host", "https://bücher.example/", []string{"--bearer", "KEY"}, "usage", 2},
		{"dot segments", up.URL + "/v1/../admin", []string{"--bearer", "KEY"}, "denied", 4},
		{"metadata address", "http://169.254.169.254/latest/meta-data/", []string{"--bearer", "KEY"}, "denied", 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := v.Run(append([]string{"call", "--url", c.url}, c.args...)...)
			e := r.ErrorCode(t, c.code, c.exit)
			noValue(t, "error", r.Stdout, key)
			if c.code == "denied" && !strings.Contains(e["hint"].(string), "agentsecrets") {
				t.Fatalf("a denial must name the command that allows it: %v", e)
			}
		})
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("a denied request reached the upstream %d times", n)
	}
	// A trailing dot and upper case normalise to the same host before the
	// allowlist is consulted: they neither bypass it nor break it.
	e := v.Run("call", "--url", "https://API.EXAMPLE.COM./v1", "--bearer", "KEY").ErrorCode(t, "denied", 4)
	if !strings.Contains(e["message"].(string), "api.example.com:443 is not") {
		t.Fatalf("host not normalised: %v", e)
	}
	v.Run("call", "--url", "http://127.0.0.1.:"+port+"/x", "--bearer", "KEY").OK(t)
	// Metadata stays blocked even when allowlisted as private.
	v.Run("workspace", "allowlist", "add", "169.254.169.254:80", "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "KEY", "169.254.169.254:80", "--passphrase-file", v.AdminFile).OK(t)
	r := v.Run("call", "--url", "http://169.254.169.254:80/latest/meta-data/", "--bearer", "KEY", "--timeout", "3s")
	e = r.ErrorCode(t, "denied", 4)
	if !strings.Contains(e["message"].(string), "169.254.169.254") {
		t.Fatalf("%v", e)
	}
	logs := v.Run("proxy", "logs", "--decision", "blocked").OK(t)
	for _, reason := range []string{"not_bound", "not_allowlisted", "ssrf_metadata_address"} {
		if !strings.Contains(string(logs.Stdout), reason) {
			t.Errorf("no blocked record with reason %s: %s", reason, logs.Stdout)
		}
	}
}

// startProxy runs `proxy start` in the foreground as a child process and
// returns its address and token.
func startProxy(t *testing.T, v *Vault) (addr, token string) {
	t.Helper()
	_, addr, token = launchProxy(t, v.Env(), v.Dir)
	return addr, token
}

// launchProxy runs `proxy start --port 0 ARGS` in the foreground as a child
// process, waits until it listens, checks `proxy status` and the token
// file's mode, and returns the process, its address and its session token.
// Cleanup interrupts it and waits for it.
func launchProxy(tb testing.TB, env []string, dir string, args ...string) (cmd *exec.Cmd, addr, token string) {
	tb.Helper()
	return launchProxyOf(tb, binary, env, dir, args...)
}

// redactedFlag is a /proxy answer's X-AS-Redacted where the answer's
// framing puts it: a header when it came whole (with a Content-Length), a
// trailer when it streamed; "" when it is missing or in the other place.
func redactedFlag(header, trailer http.Header) string {
	if header.Get("Content-Length") != "" {
		if trailer.Get("X-AS-Redacted") != "" {
			return ""
		}
		return header.Get("X-AS-Redacted")
	}
	if header.Get("X-AS-Redacted") != "" {
		return ""
	}
	return trailer.Get("X-AS-Redacted")
}

// launchProxyOf is launchProxy with another agentsecrets executable (a
// benchmark's build of the base tree).
func launchProxyOf(tb testing.TB, binary string, env []string, dir string, args ...string) (cmd *exec.Cmd, addr, token string) {
	tb.Helper()
	cmd, addr, token, _ = launchProxyTo(tb, binary, env, dir, io.Discard, args...)
	return cmd, addr, token
}

// launchProxyTo is launchProxyOf that copies the proxy's standard error,
// but the line that says it listens, to rest; copied is closed once the proxy has
// exited and all of it was copied (wait for it before cmd.Wait, which
// closes the pipe).
func launchProxyTo(tb testing.TB, binary string, env []string, dir string, rest io.Writer, args ...string) (cmd *exec.Cmd, addr, token string, copied <-chan struct{}) {
	tb.Helper()
	cmd = exec.Command(binary, append([]string{"proxy", "start", "--port", "0"}, args...)...)
	cmd.Env, cmd.Dir = env, dir
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	errs := bufio.NewReader(stderr)
	line, err := errs.ReadString('\n')
	// GODEBUG=gctrace=1 traces collections before the proxy says it
	// listens.
	for err == nil && strings.HasPrefix(line, "gc ") {
		io.WriteString(rest, line)
		line, err = errs.ReadString('\n')
	}
	if err != nil {
		tb.Fatalf("proxy did not start: %v", err)
	}
	done := make(chan struct{})
	go func() {
		io.Copy(rest, errs)
		close(done)
	}()
	status := exec.Command(binary, "proxy", "status", "--json")
	status.Env, status.Dir = env, dir
	out, err := status.Output()
	if err != nil {
		tb.Fatalf("proxy status: %v: %s", err, out)
	}
	var st struct {
		Running   bool   `json:"running"`
		Address   string `json:"address"`
		TokenFile string `json:"token_file"`
	}
	if err := json.Unmarshal(out, &st); err != nil || !st.Running {
		tb.Fatalf("proxy status after start: %s (%v; %s)", out, err, line)
	}
	tok, err := os.ReadFile(st.TokenFile)
	if err != nil {
		tb.Fatal(err)
	}
	if fi, _ := os.Stat(st.TokenFile); fi.Mode().Perm() != 0o600 {
		tb.Fatalf("token file mode %o", fi.Mode().Perm())
	}
	return cmd, st.Address, strings.TrimSpace(string(tok)), done
}

// proxyGets sends n GETs of target through the proxy at addr, one at a
// time on one keep-alive connection, the value of KEY injected as a bearer
// token; each must answer 200.
func proxyGets(t *testing.T, addr, token, target string, n int) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	for range n {
		req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
		req.Header.Set("X-AS-Session-Token", token)
		req.Header.Set("X-AS-Target-URL", target)
		req.Header.Set("X-AS-Inject-Bearer", "KEY")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("proxied request: %d", resp.StatusCode)
		}
	}
}

func proxyRequest(t *testing.T, addr, token string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/proxy", strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-AS-Session-Token", token)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

func TestProxy(t *testing.T) {
	key := randomValue(t, "sk_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		fmt.Fprintf(w, `{"auth":%q,"query":%q,"body":%q}`, r.Header.Get("Authorization"), r.URL.RawQuery, body)
	})
	v := brokerVault(t, map[string]string{"KEY": key}, up)
	addr, token := startProxy(t, v)
	target := up.URL + "/v1/x"
	cases := []struct {
		name   string
		token  string
		hdr    map[string]string
		status int
		code   string
	}{
		{"no token", "", map[string]string{"X-AS-Target-URL": target}, 401, "unauthorized"},
		{"wrong token", "nope", map[string]string{"X-AS-Target-URL": target}, 401, "unauthorized"},
		{"non-loopback Host", token, map[string]string{"Host": "evil.example:8765", "X-AS-Target-URL": target}, 403, "denied"},
		{"unknown secret is 404", token, map[string]string{"X-AS-Target-URL": target, "X-AS-Inject-Bearer": "NOPE"}, 404, "not_found"},
		{"not allowlisted is 403", token, map[string]string{"X-AS-Target-URL": "https://api.example.com/", "X-AS-Inject-Bearer": "KEY"}, 403, "denied"},
		{"no target is 400", token, map[string]string{"X-AS-Inject-Bearer": "KEY"}, 400, "usage"},
		{"upstream down is 502", token, map[string]string{"X-AS-Target-URL": "http://" + closedPort(t) + "/", "X-AS-Method": "GET"}, 403, "denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := proxyRequest(t, addr, c.token, c.hdr, "")
			if resp.StatusCode != c.status || !strings.Contains(string(body), `"code":"`+c.code+`"`) {
				t.Fatalf("status %d body %s, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
			noValue(t, "proxy error", body, key)
		})
	}
	resp, body := proxyRequest(t, addr, token, map[string]string{
		"X-AS-Target-URL":             target + "?a=1",
		"X-AS-Method":                 "POST",
		"X-AS-Inject-Bearer":          "KEY",
		"X-AS-Inject-Query-api_key":   "KEY",
		"X-AS-Inject-Query":           "camelKey=KEY",
		"X-AS-Inject-Body-auth.token": "KEY",
		"Content-Type":                "application/json",
	}, `{"n":1}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	noValue(t, "proxy response", body, key)
	if redactedFlag(resp.Header, resp.Trailer) != "true" || resp.Header.Get("X-AS-Audit-Id") == "" {
		t.Fatalf("trailer %v header %v", resp.Trailer, resp.Header)
	}
	got := up.requests()[len(up.requests())-1]
	q, _ := url.ParseQuery(got.Query)
	if q.Get("api_key") != key || q.Get("camelKey") != key || q.Get("a") != "1" || got.Header.Get("Authorization") != "Bearer "+key {
		t.Fatalf("upstream saw query %q auth %q", got.Query, got.Header.Get("Authorization"))
	}
	if !strings.Contains(got.Body, `"token":"`+key+`"`) || got.Header.Get("X-As-Session-Token") != "" || got.Header.Get("X-As-Inject-Bearer") != "" {
		t.Fatalf("upstream saw body %q headers %v", got.Body, got.Header)
	}
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestSSEStreams: the first event reaches the client while the upstream is
// still waiting to send the second — the proxy does not buffer.
func TestSSEStreams(t *testing.T) {
	key := randomValue(t, "sk_")
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		fmt.Fprint(w, "data: second\n\n")
	})
	v := brokerVault(t, map[string]string{"KEY": key}, up)
	addr, token := startProxy(t, v)
	req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
	req.Header.Set("X-AS-Session-Token", token)
	req.Header.Set("X-AS-Target-URL", up.URL+"/events")
	req.Header.Set("X-AS-Inject-Bearer", "KEY")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	if err != nil || first != "data: first\n" {
		t.Fatalf("first event: %q %v", first, err)
	}
	close(release) // only now may the upstream send the rest
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: second") {
		t.Fatalf("rest: %q", rest)
	}
}

// TestProxyPicksUpNewValues: the proxy holds values in memory, and a
// `secrets set` takes effect on its next request without a restart.
func TestProxyPicksUpNewValues(t *testing.T) {
	first, second := randomValue(t, "v1_"), randomValue(t, "v2_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "ok") })
	v := brokerVault(t, map[string]string{"KEY": first}, up)
	addr, token := startProxy(t, v)
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	if resp, body := proxyRequest(t, addr, token, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	v.RunIn([]byte(second), "secrets", "set", "KEY", "--from-stdin").OK(t)
	if resp, body := proxyRequest(t, addr, token, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	reqs := up.requests()
	if got := reqs[len(reqs)-2].Header.Get("Authorization"); got != "Bearer "+first {
		t.Fatalf("first request sent %q", got)
	}
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer "+second {
		t.Fatalf("after secrets set the proxy still sent the old value")
	}
	v.Run("secrets", "delete", "KEY", "--yes").OK(t)
	resp, body := proxyRequest(t, addr, token, hdr, "")
	if resp.StatusCode != 404 {
		t.Fatalf("deleted secret: %d %s", resp.StatusCode, body)
	}
}
