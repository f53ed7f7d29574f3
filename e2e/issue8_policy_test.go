package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// issue8Vault stores secrets and binds each to up with bindArgs (no
// --allow-echo: the tripwire is on).
func issue8Vault(t *testing.T, up *upstream, secrets map[string]string, bindArgs ...string) *Vault {
	v := NewVault(t, "file")
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	for name, val := range secrets {
		v.RunIn([]byte(val), "secrets", "set", name, "--from-stdin").OK(t)
		v.Run(append([]string{"secrets", "bind", name, up.hostport(), "--passphrase-file", v.AdminFile}, bindArgs...)...).OK(t)
	}
	return v
}

// runHint runs the agentsecrets command a denial's hint names, as the
// human would, with the admin passphrase.
//
// call's error renderer replaces the right-hand side of every NAME=VALUE
// argument in its output with <redacted> (issue 8 §6, "a bad hint"), which
// here is the secret name KEY of --header x-note=KEY; the command is run
// with the name put back.
func runHint(t *testing.T, v *Vault, hint string) {
	t.Helper()
	hint = strings.ReplaceAll(hint, "<redacted>", "KEY")
	_, cmd, ok := strings.Cut(hint, "agentsecrets ")
	if !ok {
		t.Fatalf("hint names no command: %q", hint)
	}
	v.Run(append(strings.Fields(cmd), "--passphrase-file", v.AdminFile)...).OK(t)
}

// TestIssue8HeaderPinning: on every front end (call --header, the proxy's
// X-AS-Inject-Header-*, MCP api_call's header), a value goes under an
// unpinned header name only after a human runs the one bind command the
// denial names; until then the upstream never sees it.
func TestIssue8HeaderPinning(t *testing.T) {
	key := randomValue(t, "sk_pin_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) { io.WriteString(w, "ok") })
	fronts := []struct {
		name, header string
		send         func(v *Vault, addr, token string) (code, hint string, out []byte)
	}{
		{"call --header", "X-Note", func(v *Vault, _, _ string) (string, string, []byte) {
			r := v.Run("call", "--url", up.URL+"/x", "--header", "x-note=KEY")
			if r.Code == 0 {
				return "", "", r.Stdout
			}
			e := r.JSON(t)["error"].(map[string]any)
			return e["code"].(string), e["hint"].(string), r.Stdout
		}},
		{"proxy X-AS-Inject-Header-*", "X-Other", func(_ *Vault, addr, token string) (string, string, []byte) {
			resp, body := proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Inject-Header-X-Other": "KEY"}, "")
			if resp.StatusCode == 200 {
				return "", "", body
			}
			e := decodeJSON(t, body)["error"].(map[string]any)
			return e["code"].(string), e["hint"].(string), body
		}},
		{"mcp api_call header", "X-Third", func(v *Vault, _, _ string) (string, string, []byte) {
			s := startMCP(t, v, v.Dir, "")
			r := callTool(t, s.session, "api_call", map[string]any{"url": up.URL + "/x", "header": []string{"X-Third=KEY"}})
			if !r.IsError {
				return "", "", []byte(r.Text)
			}
			return r.Error["code"].(string), r.Error["hint"].(string), []byte(r.Text)
		}},
	}
	v := issue8Vault(t, up, map[string]string{"KEY": key})
	addr, token := startProxy(t, v)
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			code, hint, out := f.send(v, addr, token)
			noValue(t, f.name, out, key)
			if code != "denied" || !strings.Contains(string(out), "header_not_bound") && !strings.Contains(hint, "--header-name "+f.header) {
				t.Fatalf("unpinned header: code %q hint %q: %s", code, hint, out)
			}
			for _, r := range up.requests() {
				if r.Header.Get(f.header) != "" {
					t.Fatalf("the upstream received %s before a human approved it", f.header)
				}
			}
			runHint(t, v, hint)
			code, _, out = f.send(v, addr, token)
			if code != "" {
				t.Fatalf("after the hint's bind: %s", out)
			}
			last := up.requests()[len(up.requests())-1]
			if last.Header.Get(f.header) != key {
				t.Fatalf("value not injected under %s", f.header)
			}
		})
	}
	// The audit names the reason of each refusal.
	if r := v.Run("proxy", "logs", "--last", "0", "--decision", "blocked"); !bytes.Contains(r.Stdout, []byte("header_not_bound")) {
		t.Fatalf("no header_not_bound audit record: %s", r.Stdout)
	}
}

func decodeJSON(t *testing.T, b []byte) map[string]any {
	r := &Result{Stdout: b}
	return r.JSON(t)
}

// TestIssue8EchoTripwire: one-shot calls and the long-running proxy count
// towards one threshold through the state directory; past it the binding
// is suspended for every front end, list and status show it with the
// re-approval command, the refusal is audited, and that command restores
// it. No value reaches any output or the state file.
func TestIssue8EchoTripwire(t *testing.T) {
	key := randomValue(t, "sk_trip_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
	})
	v := issue8Vault(t, up, map[string]string{"KEY": key})
	addr, token := startProxy(t, v)
	var outs [][]byte
	// One echo through the proxy, two through call processes: three. The
	// proxy records its event as it closes the response, just after the
	// client has the last byte, so wait until the state file has it.
	resp, body := proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/echo", "X-AS-Inject-Bearer": "KEY"}, "")
	if resp.StatusCode != 200 {
		t.Fatalf("proxy: %d %s", resp.StatusCode, body)
	}
	outs = append(outs, body)
	stateFile := filepath.Join(v.Home, "echoes.json") // beside index.json
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(stateFile); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		r := v.Run("call", "--url", up.URL+"/echo", "--bearer", "KEY").OK(t)
		if r.JSON(t)["redacted"] != true {
			t.Fatalf("not redacted: %s", r.Stdout)
		}
		outs = append(outs, r.Stdout, r.Stderr)
	}
	before := len(up.requests())

	r := v.Run("call", "--url", up.URL+"/anything", "--bearer", "KEY")
	e := r.ErrorCode(t, "denied", 4)
	if !strings.Contains(e["message"].(string), "echo tripwire") {
		t.Fatalf("not the tripwire: %v", e)
	}
	hint := e["hint"].(string)
	want := "agentsecrets secrets bind KEY " + up.hostport() + " --surface header --workspace default --project default"
	if !strings.HasSuffix(hint, want) {
		t.Fatalf("hint %q does not end with the re-approval command %q", hint, want)
	}
	resp, body = proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/echo", "X-AS-Inject-Bearer": "KEY"}, "")
	if resp.StatusCode != 403 || !bytes.Contains(body, []byte("echo tripwire")) {
		t.Fatalf("proxy after suspension: %d %s", resp.StatusCode, body)
	}
	if n := len(up.requests()); n != before {
		t.Fatalf("a suspended binding still reached the upstream (%d requests)", n-before)
	}
	list := v.Run("--format", "text", "secrets", "list").OK(t)
	status := v.Run("status").OK(t)
	logs := v.Run("proxy", "logs", "--last", "0", "--decision", "blocked").OK(t)
	if !bytes.Contains(list.Stdout, []byte("SUSPENDED")) || !bytes.Contains(status.Stdout, []byte(`"reapprove":"`+want)) ||
		!bytes.Contains(logs.Stdout, []byte(`"reason":"echo_tripwire"`)) {
		t.Fatalf("list/status/logs do not show the suspension:\n%s\n%s\n%s", list.Stdout, status.Stdout, logs.Stdout)
	}
	outs = append(outs, r.Stdout, list.Stdout, status.Stdout, logs.Stdout)

	runHint(t, v, hint)
	r = v.Run("call", "--url", up.URL+"/echo", "--bearer", "KEY").OK(t)
	outs = append(outs, r.Stdout)
	state, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatalf("no state file: %v", err)
	}
	outs = append(outs, state)
	for _, o := range outs {
		noValue(t, "output", o, key)
	}
}

// TestIssue8CrossRequestEcho: a value the upstream stored under a pinned
// custom header comes back to a later proxy request that injects another
// secret, or none, and is redacted there too.
func TestIssue8CrossRequestEcho(t *testing.T) {
	a, b := randomValue(t, "sk_a_"), randomValue(t, "sk_b_")
	var mu sync.Mutex
	stored := ""
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		mu.Lock()
		defer mu.Unlock()
		if n := r.Header.Get("X-Note"); n != "" {
			stored = n
		}
		io.WriteString(w, "notes: "+stored)
	})
	v := issue8Vault(t, up, map[string]string{"A": a, "B": b}, "--header-name", "X-Note", "--allow-echo")
	addr, token := startProxy(t, v)
	_, body := proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/store", "X-AS-Inject-Header-X-Note": "A"}, "")
	noValue(t, "store", body, a)
	for _, hdr := range []map[string]string{
		{"X-AS-Target-URL": up.URL + "/read", "X-AS-Inject-Bearer": "B"},
		{"X-AS-Target-URL": up.URL + "/read"},
	} {
		resp, body := proxyRequest(t, addr, token, hdr, "")
		noValue(t, "read", body, a)
		if resp.StatusCode != 200 || !bytes.Contains(body, []byte("[REDACTED")) {
			t.Fatalf("%v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	r := v.Run("call", "--url", up.URL+"/read").OK(t)
	noValue(t, "call without injection", r.Stdout, a)
}

func gzipBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestIssue8StackedCodings: Content-Encoding on two lines is decoded layer
// by layer and scanned, by call and by the proxy; an unknown coding is
// refused by both.
func TestIssue8StackedCodings(t *testing.T) {
	key := randomValue(t, "sk_enc_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		echo := []byte("you sent " + r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/identity-gzip":
			w.Header().Add("Content-Encoding", "identity")
			w.Header().Add("Content-Encoding", "gzip")
			w.Write(gzipBytes(echo))
		case "/gzip-gzip":
			w.Header().Add("Content-Encoding", "gzip")
			w.Header().Add("Content-Encoding", "gzip")
			w.Write(gzipBytes(gzipBytes(echo)))
		case "/unknown":
			w.Header().Add("Content-Encoding", "gzip")
			w.Header().Add("Content-Encoding", "zstd")
			w.Write(gzipBytes(echo))
		}
	})
	v := issue8Vault(t, up, map[string]string{"KEY": key}, "--allow-echo")
	addr, token := startProxy(t, v)
	for _, p := range []string{"/identity-gzip", "/gzip-gzip"} {
		r := v.Run("call", "--url", up.URL+p, "--bearer", "KEY").OK(t)
		if res := r.JSON(t); res["body_encoding"] != "text" || res["redacted"] != true {
			t.Fatalf("call %s: %s", p, r.Stdout)
		}
		resp, body := proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + p, "X-AS-Inject-Bearer": "KEY"}, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || !bytes.HasPrefix(body, []byte("you sent Bearer [REDACTED")) {
			t.Fatalf("proxy %s: %d %q %q", p, resp.StatusCode, resp.Header.Values("Content-Encoding"), body)
		}
		noValue(t, p, append(r.Stdout, body...), key)
	}
	v.Run("call", "--url", up.URL+"/unknown", "--bearer", "KEY").ErrorCode(t, "upstream", 8)
	resp, body := proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/unknown", "X-AS-Inject-Bearer": "KEY"}, "")
	if resp.StatusCode == 200 {
		t.Fatalf("proxy passed an unknown coding: %s", body)
	}
	noValue(t, "unknown", body, key)
}

// TestIssue8PathParameters: /public/..;/admin does not pass a /public
// binding through call; the refusal has its own reason.
func TestIssue8PathParameters(t *testing.T) {
	key := randomValue(t, "sk_path_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) { io.WriteString(w, "ok") })
	v := NewVault(t, "file")
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.RunIn([]byte(key), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.Run("secrets", "bind", "KEY", up.hostport()+"/public", "--passphrase-file", v.AdminFile).OK(t)
	for _, p := range []string{"/public/..;/admin", "/public/%2e%2e;x/admin", "/public/x;jsessionid=1"} {
		v.Run("call", "--url", up.URL+p, "--bearer", "KEY").ErrorCode(t, "denied", 4)
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
	logs := v.Run("proxy", "logs", "--last", "0").OK(t)
	if !bytes.Contains(logs.Stdout, []byte("path_dot_segment")) || !bytes.Contains(logs.Stdout, []byte("path_parameter")) {
		t.Fatalf("audit reasons: %s", logs.Stdout)
	}
}
