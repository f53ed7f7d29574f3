package e2e

// The local proxy through the broker daemon (issue 12): `proxy start` with
// AGENTSECRETS_BROKER=unix:PATH listens on 127.0.0.1 and forwards raw
// connections to the daemon, which reads, injects and redacts. The daemon
// runs as this test's user from a temp --state/--socket (the other-user
// tests need root and live with the broker's install tests).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// brokerClient is a user's home whose commands go to the daemon.
type brokerClient struct {
	*Vault
	d *brokerDaemon
}

// newBrokerClient initialises the daemon's vault through a client (once per
// daemon: init of an existing vault is refused, and the caller says which).
func newBrokerClient(t *testing.T, d *brokerDaemon, initVault bool) *brokerClient {
	t.Helper()
	v := d.client(t)
	if initVault {
		v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	}
	return &brokerClient{Vault: v, d: d}
}

// bindTo stores value as name (in the client's current project) and binds
// it to up, echo allowed: the upstreams here echo by design.
func (c *brokerClient) bindTo(name, value string, up *upstream) {
	c.t.Helper()
	c.RunIn([]byte(value), "secrets", "set", name, "--from-stdin").OK(c.t)
	c.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", c.AdminFile).OK(c.t)
	c.Run("secrets", "bind", name, up.hostport(), "--surface", "header", "--surface", "query", "--header-name", "X-Api-Key",
		"--allow-echo", "--passphrase-file", c.AdminFile).OK(c.t)
}

// echoUpstream answers with the Authorization header it got, in every
// encoding the redactor catches.
func echoUpstream(t *testing.T) *upstream {
	return newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		auth := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Echo", auth)
		for name, enc := range encodings(auth) {
			fmt.Fprintf(w, "%s=%s\n", name, enc)
		}
	})
}

// scanTree fails for any canary in any regular file under root.
func scanTree(t *testing.T, root string, canaries [][]byte) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		assertNoLeak(t, "file "+p, b, canaries)
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", root, err)
	}
	return n
}

// listensOnTCP reports whether process pid holds a listening TCP socket
// (Linux; elsewhere it says it cannot tell).
func listensOnTCP(pid int) (bool, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if in, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes[strings.TrimSuffix(in, "]")] = true
		}
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			// st 0A is LISTEN; field 9 is the socket's inode.
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				return true, nil
			}
		}
	}
	return false, nil
}

// TestBrokerProxy: the proxy API through the daemon injects and redacts
// as the in-process proxy does; the proxy process, its home and its log,
// every output and the daemon's own log and files never hold the value in
// any encoding; the daemon listens on no TCP port; bad tokens, a foreign
// Host and requests for the socket's own endpoints sent to the TCP port
// are refused.
func TestBrokerProxy(t *testing.T) {
	d := startBrokerDaemon(t, "")
	c := newBrokerClient(t, d, true)
	value := newCanary(t, "proxy", "+/=")
	up := echoUpstream(t)
	c.bindTo("KEY", string(value), up)
	pcmd, addr, token := launchProxy(t, c.Env(), c.Dir)
	var outputs [][]byte

	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/v1/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	resp, body := proxyRequest(t, addr, token, hdr, "")
	if resp.StatusCode != 200 || redactedFlag(resp.Header, resp.Trailer) != "true" || resp.Header.Get("X-AS-Audit-Id") == "" {
		t.Fatalf("proxied request: %d %v %v %s", resp.StatusCode, resp.Header, resp.Trailer, body)
	}
	if got := up.requests()[0].Header.Get("Authorization"); got != "Bearer "+string(value) {
		t.Fatalf("the upstream got Authorization %q, want the value", got)
	}
	var hdrs bytes.Buffer
	resp.Header.Write(&hdrs)
	outputs = append(outputs, body, hdrs.Bytes())

	// The query surface, and a second request on the same connection.
	resp, body = proxyRequest(t, addr, token, map[string]string{"X-AS-Target-URL": up.URL + "/q", "X-AS-Method": "GET",
		"X-AS-Inject-Query-api_key": "KEY"}, "")
	if resp.StatusCode != 200 {
		t.Fatalf("query injection: %d %s", resp.StatusCode, body)
	}
	outputs = append(outputs, body)

	for _, bad := range []struct {
		name, token, host string
		status            int
		code              string
	}{
		{"no token", "", "", 401, "unauthorized"},
		{"wrong token", strings.Repeat("0", len(token)), "", 401, "unauthorized"},
		{"non-loopback Host", token, "evil.example", 403, "denied"},
	} {
		h := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Inject-Bearer": "KEY"}
		if bad.host != "" {
			h["Host"] = bad.host
		}
		resp, body := proxyRequest(t, addr, bad.token, h, "")
		if resp.StatusCode != bad.status || !strings.Contains(string(body), `"code":"`+bad.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", bad.name, resp.StatusCode, body, bad.status, bad.code)
		}
		outputs = append(outputs, body)
	}
	if n := len(up.requests()); n != 2 {
		t.Errorf("the upstream got %d requests, want the 2 allowed ones", n)
	}

	// The TCP port reaches the proxy's routes only: never the exec
	// protocol (which would run commands as this user without a token)
	// nor the session endpoints.
	for _, raw := range []string{
		"POST /exec HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: agentsecrets-exec/1\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n",
		"POST /v1/proxy-sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v1/proxy-conn HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: agentsecrets-proxy/1\r\nConnection: Upgrade\r\nX-AS-Session-Token: " + token + "\r\nContent-Length: 0\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		must(t, err)
		io.WriteString(conn, raw)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
		}
		if resp.StatusCode != 404 {
			t.Errorf("%q through the TCP port: HTTP %d, want 404", strings.SplitN(raw, "\r\n", 2)[0], resp.StatusCode)
		}
		conn.Close()
	}

	if tcp, err := listensOnTCP(d.cmd.Process.Pid); err != nil {
		t.Logf("the daemon's sockets not checked: %v", err)
	} else if tcp {
		t.Error("the broker daemon listens on a TCP port")
	}
	// The proxy's process never read a value: its memory holds none.
	if mem, err := readProcMem(pcmd.Process.Pid); err == nil {
		if bytes.Contains(mem, value) {
			t.Error("the forwarding proxy's memory holds the value")
		}
		dm, _ := readProcMem(d.cmd.Process.Pid)
		t.Logf("scanned %d bytes of the proxy's memory; the daemon's (%d bytes) holds the value: %v", len(mem), len(dm), bytes.Contains(dm, value))
	} else {
		t.Logf("proxy memory not scanned: %v", err)
	}
	logs := c.Run("proxy", "logs").OK(t)
	if !strings.Contains(string(logs.Stdout), `"client_uid":"`+strconv.Itoa(os.Getuid())+`"`) {
		t.Errorf("the audit record does not name the client: %s", logs.Stdout)
	}
	st := c.Run("proxy", "status").OK(t)
	outputs = append(outputs, logs.Stdout, logs.Stderr, st.Stdout, st.Stderr)

	c.Run("proxy", "stop").OK(t)
	for i, o := range outputs {
		assertNoLeak(t, fmt.Sprintf("output %d", i), o, [][]byte{value})
	}
	if n := scanTree(t, filepath.Dir(c.Home), [][]byte{value}); n == 0 {
		t.Error("the client's home held no file to scan (proxy.log at least)")
	}
	// The daemon's state (its vault is ciphertext) and its log.
	scanTree(t, filepath.Dir(d.State), [][]byte{value})
	if !d.logged("proxy session for default/default") {
		t.Error("the daemon's log (scanned above) does not show the proxy session")
	}
}

// readProcMem reads the writable private mappings of pid (heap, stacks):
// where a value the process had read would be.
func readProcMem(pid int) ([]byte, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	var out []byte
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[1], "rw") {
			continue
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil || hi-lo > 1<<30 {
			continue
		}
		buf := make([]byte, hi-lo)
		if n, _ := mem.ReadAt(buf, int64(lo)); n > 0 {
			out = append(out, buf[:n]...)
		}
	}
	return out, nil
}

// TestBrokerProxySessions: two proxies of the same user on one daemon each
// work with their own token, and neither accepts the other's: a proxy
// connection is bound to the session that opened it. A killed proxy's
// session ends; the other's does not.
func TestBrokerProxySessions(t *testing.T) {
	d := startBrokerDaemon(t, "")
	a := newBrokerClient(t, d, true)
	b := newBrokerClient(t, d, false)
	value := randomValue(t, "sk_sess_")
	up := echoUpstream(t)
	a.bindTo("KEY", value, up)
	pa, addrA, tokA := launchProxy(t, a.Env(), a.Dir)
	_, addrB, tokB := launchProxy(t, b.Env(), b.Dir)
	if tokA == tokB {
		t.Fatal("two proxies share a token")
	}
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	for _, p := range []struct{ addr, token string }{{addrA, tokA}, {addrB, tokB}} {
		if resp, body := proxyRequest(t, p.addr, p.token, hdr, ""); resp.StatusCode != 200 {
			t.Fatalf("own token on %s: %d %s", p.addr, resp.StatusCode, body)
		}
	}
	for _, p := range []struct{ addr, token string }{{addrA, tokB}, {addrB, tokA}} {
		resp, body := proxyRequest(t, p.addr, p.token, hdr, "")
		if resp.StatusCode != 401 || !strings.Contains(string(body), `"code":"unauthorized"`) {
			t.Errorf("another session's token on %s: %d %s, want 401 unauthorized", p.addr, resp.StatusCode, body)
		}
		noValue(t, "refusal", body, value)
	}
	if n := len(up.requests()); n != 2 {
		t.Errorf("the upstream got %d requests, want 2", n)
	}
	// A proxy that is killed cannot end its session; the daemon ends it
	// when the proxy's hand-over connection closes.
	pa.Process.Kill()
	for deadline := time.Now().Add(5 * time.Second); !d.logged("proxy session for default/default ended"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the daemon kept the session of a killed proxy")
		}
	}
	if resp, body := proxyRequest(t, addrB, tokB, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("the other proxy after the first was killed: %d %s", resp.StatusCode, body)
	}
}

// TestBrokerProxyLimits: a client limited to default/default (broker run
// --user UID=default/default) gets a proxy for that project; its requests
// may not name another with X-AS-Project or X-AS-Workspace, and a proxy
// for another project is refused at start.
func TestBrokerProxyLimits(t *testing.T) {
	d := startBrokerDaemon(t, "")
	c := newBrokerClient(t, d, true)
	value := randomValue(t, "sk_lim_")
	up := echoUpstream(t)
	c.bindTo("KEY", value, up)
	// The allowlist is workspace-wide, which a project grant does not
	// reach: set up first, then restart the daemon with the limit.
	d.stop()
	d.args = []string{"--user", strconv.Itoa(os.Getuid()) + "=default/default"}
	d.start()
	_, addr, token := launchProxy(t, c.Env(), c.Dir)
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	if resp, body := proxyRequest(t, addr, token, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("granted project: %d %s", resp.StatusCode, body)
	}
	for _, over := range []map[string]string{{"X-AS-Project": "other"}, {"X-AS-Workspace": "other"}} {
		h := map[string]string{}
		for k, v := range hdr {
			h[k] = v
		}
		for k, v := range over {
			h[k] = v
		}
		resp, body := proxyRequest(t, addr, token, h, "")
		if resp.StatusCode != 403 || !strings.Contains(string(body), `"code":"denied"`) || !strings.Contains(string(body), "does not let uid") {
			t.Errorf("override %v: %d %s, want 403 denied by the broker's limits", over, resp.StatusCode, body)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Errorf("the upstream got %d requests, want 1", n)
	}
	c.Run("proxy", "stop").OK(t)
	r := c.Run("proxy", "start", "--port", "0", "--project", "other")
	if r.Code == 0 {
		t.Fatal("a proxy for a project outside the limits started")
	}
	r.ErrorCode(t, "denied", r.Code)
}

// TestBrokerProxyDaemonRestart: while the daemon is down the proxy answers
// unavailable; once it is back (with no memory of the session) the same
// token works again, without restarting the proxy.
func TestBrokerProxyDaemonRestart(t *testing.T) {
	d := startBrokerDaemon(t, "")
	c := newBrokerClient(t, d, true)
	value := randomValue(t, "sk_restart_")
	up := echoUpstream(t)
	c.bindTo("KEY", value, up)
	_, addr, token := launchProxy(t, c.Env(), c.Dir)
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	if resp, body := proxyRequest(t, addr, token, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("before the restart: %d %s", resp.StatusCode, body)
	}
	d.stop()
	resp, body := proxyRequest(t, addr, token, hdr, "")
	if resp.StatusCode != 503 || !strings.Contains(string(body), `"code":"unavailable"`) || !strings.Contains(string(body), `"hint":`) {
		t.Errorf("daemon down: %d %s, want 503 unavailable with a hint", resp.StatusCode, body)
	}
	d.start()
	resp, body = proxyRequest(t, addr, token, hdr, "")
	if resp.StatusCode != 200 {
		t.Fatalf("after the restart: %d %s", resp.StatusCode, body)
	}
	noValue(t, "response after the restart", body, value)
	if n := len(up.requests()); n != 2 {
		t.Errorf("the upstream got %d requests, want 2", n)
	}
	if st := c.Run("proxy", "status").OK(t).JSON(t); st["running"] != true {
		t.Errorf("proxy status after the daemon's restart: %v", st)
	}
}

// TestBrokerProxyBackground: `proxy start --background` in broker mode
// detaches a forwarder that status sees and stop ends, and stopping it
// ends its session on the daemon.
func TestBrokerProxyBackground(t *testing.T) {
	d := startBrokerDaemon(t, "")
	c := newBrokerClient(t, d, true)
	value := randomValue(t, "sk_bg_")
	up := echoUpstream(t)
	c.bindTo("KEY", value, up)
	t.Cleanup(func() { c.Run("proxy", "stop") })
	st := c.Run("proxy", "start", "--background", "--port", "0").OK(t).JSON(t)
	addr, _ := st["address"].(string)
	tokenFile, _ := st["token_file"].(string)
	if st["running"] != true || st["workspace"] != "default" || st["project"] != "default" {
		t.Fatalf("background start: %v", st)
	}
	tok, err := os.ReadFile(tokenFile)
	must(t, err)
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	resp, body := proxyRequest(t, addr, strings.TrimSpace(string(tok)), hdr, "")
	if resp.StatusCode != 200 {
		t.Fatalf("through the background proxy: %d %s", resp.StatusCode, body)
	}
	noValue(t, "response", body, value)
	if r := c.Run("proxy", "stop").OK(t).JSON(t); r["stopped"] != true {
		t.Fatalf("proxy stop: %v", r)
	}
	if r := c.Run("proxy", "status"); r.Code != 7 || r.JSON(t)["running"] != false {
		t.Fatalf("status after stop: exit %d: %s", r.Code, r.Stdout)
	}
	for deadline := time.Now().Add(5 * time.Second); !d.logged("proxy session for default/default ended"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("stopping the proxy did not end its session")
		}
	}
}

// TestBrokerProxyProjectLink: started in a directory linked to a project
// (a file on the client's side, which the daemon cannot read), the proxy's
// session uses that project, as a local proxy would.
func TestBrokerProxyProjectLink(t *testing.T) {
	d := startBrokerDaemon(t, "")
	c := newBrokerClient(t, d, true)
	c.Run("project", "create", "linked").OK(t)
	c.Run("project", "use", "linked", "--link").OK(t)
	if _, err := os.Stat(filepath.Join(c.Dir, ".agentsecrets", "project.json")); err != nil {
		t.Fatalf("the link is not on the client's side: %v", err)
	}
	value := randomValue(t, "sk_link_")
	up := echoUpstream(t)
	c.bindTo("KEY", value, up)
	_, addr, token := launchProxy(t, c.Env(), c.Dir)
	if st := c.Run("proxy", "status").OK(t).JSON(t); st["project"] != "linked" {
		t.Fatalf("proxy status: %v, want project linked", st)
	}
	hdr := map[string]string{"X-AS-Target-URL": up.URL + "/x", "X-AS-Method": "GET", "X-AS-Inject-Bearer": "KEY"}
	if resp, body := proxyRequest(t, addr, token, hdr, ""); resp.StatusCode != 200 {
		t.Fatalf("KEY of the linked project: %d %s", resp.StatusCode, body)
	}
}
