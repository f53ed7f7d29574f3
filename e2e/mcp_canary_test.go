package e2e

// TestMcpCanary extends the canary test (DESIGN.md section 1, "No value
// out") to every MCP tool. It reuses the broker canary's secrets and its
// echoing upstream (canary_broker_test.go): api_call goes to every
// endpoint with every injection style (through the original tool's
// injections map and through call's own fields), at both protocol
// revisions, over stdio and HTTP; every other tool runs on its success and
// error paths, with canaries typed where names and flag values belong.
// Scanned: the raw protocol bytes the server wrote on stdout (so nothing
// the SDK client drops escapes the scan), each decoded result, the
// servers' stderr, the HTTP token file while it exists, and every file
// under the test's root afterwards (audit.log, index.json, vault.enc, ...).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestMcpCanary(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			runMcpCanary(t, backend)
		})
	}
}

// mcpCanaryRun is a broker canary run whose front end is MCP.
type mcpCanaryRun struct {
	*canaryBrokerRun
	wires []*lockedBuffer // raw stdout of every stdio server
	errs  []*lockedBuffer // stderr of every server
}

// startWire starts `mcp serve` with its stdout teed into a buffer, so the
// scan sees the protocol stream itself.
func (m *mcpCanaryRun) startWire(version string, args ...string) *mcp.ClientSession {
	t := m.t
	t.Helper()
	cmd := exec.Command(binary, append([]string{"mcp", "serve"}, args...)...)
	cmd.Env, cmd.Dir = m.v.Env(), "/"
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	wire, stderr := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stderr = stderr
	m.wires, m.errs = append(m.wires, wire), append(m.errs, stderr)
	must(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("mcp serve did not exit after stdin closed")
		}
	})
	client := mcp.NewClient(&mcp.Implementation{Name: "canary", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr := &mcp.IOTransport{Reader: readCloser{io.TeeReader(stdout, wire), stdout}, Writer: stdin}
	cs, err := client.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v\n%s", err, stderr.Bytes())
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

type readCloser struct {
	io.Reader
	io.Closer
}

// call runs one tool and records the whole result.
func (m *mcpCanaryRun) call(cs *mcp.ClientSession, label, tool string, args any) *mcpResult {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		m.capture(label+" (protocol error)", []byte(err.Error()))
		m.t.Errorf("%s: tools/call %s: %v", label, tool, err)
		return nil
	}
	raw, _ := json.Marshal(res)
	m.capture("result of "+label, raw)
	return decodeToolResult(m.t, tool, res)
}

// expect checks a result against an endpoint's outcome, as callEcho does.
func (m *mcpCanaryRun) expect(label string, r *mcpResult, code string, status int, redacted bool) {
	m.t.Helper()
	switch {
	case r == nil:
	case code == "":
		if r.IsError {
			m.t.Errorf("%s: failed: %.300s", label, r.Text)
			return
		}
		if status != 0 && r.Structured["status"] != float64(status) {
			m.t.Errorf("%s: status %v, want %d", label, r.Structured["status"], status)
		}
		if redacted && r.Structured["redacted"] != true {
			m.t.Errorf("%s: the result does not say redacted: %.300s", label, r.Text)
		}
	case code == "*":
		if !r.IsError {
			m.t.Errorf("%s: succeeded, want a failure: %.300s", label, r.Text)
		}
	default:
		if !r.IsError || r.Error["code"] != code {
			m.t.Errorf("%s: want error %s, got %.300s", label, code, r.Text)
		}
	}
}

// injectionsMap is the original tool's form of a set.
func (s cbInjSet) injectionsMap() map[string]string {
	out := map[string]string{}
	for _, in := range s.ins {
		k := in.style
		if in.field != "" {
			k += ":" + in.field
		}
		out[k] = in.secret
	}
	return out
}

// callFields is call's own form of a set (bearer, basic, header: [...], ...).
func (s cbInjSet) callFields(args map[string]any) {
	add := func(k, v string) {
		l, _ := args[k].([]string)
		args[k] = append(l, v)
	}
	for _, in := range s.ins {
		switch in.style {
		case "bearer", "basic":
			args[in.style] = in.secret
		case "header", "query":
			add(in.style, in.field+"="+in.secret)
		case "body":
			add("body_field", in.field+"="+in.secret)
		case "form":
			add("form_field", in.field+"="+in.secret)
		}
	}
}

func (m *mcpCanaryRun) apiCall(cs *mcp.ClientSession, via string, set cbInjSet, ep cbEndpoint, original bool) {
	rid := m.nextRid()
	args := map[string]any{"url": m.up.URL + ep.path, "timeout": "20s"}
	if ep.timeout {
		args["timeout"] = "1s"
	}
	if ep.capped {
		args["max_response"] = cbMaxResponse
	}
	if original {
		args["injections"] = set.injectionsMap()
		args["headers"] = map[string]string{cbRidHeader: rid}
	} else {
		set.callFields(args)
		args["request_header"] = []string{cbRidHeader + ": " + rid}
	}
	label := fmt.Sprintf("api_call (%s) %s with %s", via, ep.path, set.name)
	m.expect(label, m.call(cs, label, "api_call", args), ep.code, ep.status, ep.redacted)
	m.expectReceived(label, rid, set)
}

func runMcpCanary(t *testing.T, backend string) {
	v := NewVault(t, backend)
	c := &canaryRun{t: t, v: v, root: filepath.Dir(v.Home)}
	tmp := filepath.Join(c.root, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "TMPDIR="+tmp)
	b := &canaryBrokerRun{canaryRun: c, values: map[string][]byte{}}
	m := &mcpCanaryRun{canaryBrokerRun: b}
	defer m.scanEverything()

	b.storeCanaries(false)
	misplaced := func(label string) string { return string(c.canary("misplaced"+label, "")) }

	b.other = newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) { fmt.Fprint(w, "other origin\n") })
	b.up = newUpstream(t, b.serve)
	upHost, otherHost := b.up.hostport(), b.other.hostport()
	for _, name := range b.names {
		c.expectActions(b.exec(b.values[name], "secrets", "set", name, "--from-stdin"), map[string]string{name: "created"})
	}
	c.expectOK(b.exec(nil, "project", "use", "default", "--link"))
	admin := []string{"--passphrase-file", v.AdminFile}
	for _, host := range []string{upHost, otherHost} {
		c.expectOK(b.exec(nil, append([]string{"workspace", "allowlist", "add", host, "--allow-http", "--allow-private"}, admin...)...))
	}
	var jobs []func()
	for _, name := range b.names {
		if name == cbUnbound {
			continue
		}
		for _, host := range []string{upHost, otherHost} {
			jobs = append(jobs, func() {
				c.expectOK(b.exec(nil, append([]string{"secrets", "bind", name, host, "--surface", "header", "--surface", "query",
					"--surface", "body", "--surface", "form", "--header-name", "X-Api-Key", "--header-name", "X-Special", "--allow-echo"}, admin...)...))
			})
		}
	}
	cbParallel(2, jobs)

	// ---- 1. api_call: every endpoint, both input forms, both revisions ---
	start := time.Now()
	for _, version := range mcpVersions {
		cs := m.startWire(version)
		jobs = nil
		for _, ep := range cbEndpoints {
			if ep.path == "/v1/redirect-denied" || ep.path == "/v1/redirect-same-path" {
				continue // outcomes depend on a prefixed binding this run does not make
			}
			jobs = append(jobs, func() { m.apiCall(cs, version+" injections", cbComboA, ep, true) })
			jobs = append(jobs, func() { m.apiCall(cs, version+" call fields", cbComboB, ep, false) })
		}
		for _, set := range cbSingles {
			for _, p := range []string{"/v1/encodings", "/v1/headers", "/v1/status404"} {
				jobs = append(jobs, func() { m.apiCall(cs, version+" injections", set, cbEndpointAt(p), true) })
			}
		}
		cbParallel(4, jobs)
		m.otherTools(cs, version, misplaced)
	}
	t.Logf("stdio: %s", time.Since(start).Round(time.Millisecond))

	// ---- 2. The same over Streamable HTTP ---------------------------------
	if viaBroker() {
		// `mcp serve --http` does not run through the broker (its daemon
		// listens on no TCP port); stdio above covered the daemon.
		return
	}
	h := startMCPHTTP(t, v)
	m.errs = append(m.errs, h.stderr)
	tok, err := os.ReadFile(h.File)
	must(t, err)
	m.capture("token file while mcp serve --http ran", tok)
	cs := h.connect(t, "")
	jobs = nil
	for _, p := range []string{"/v1/raw", "/v1/encodings", "/v1/sse", "/v1/gzip", "/v1/status500", "/v1/big"} {
		ep := cbEndpointAt(p)
		jobs = append(jobs, func() { m.apiCall(cs, "http", cbComboA, ep, true) })
		jobs = append(jobs, func() { m.apiCall(cs, "http", cbComboB, ep, false) })
	}
	cbParallel(4, jobs)
	m.otherTools(cs, "http", misplaced)
	cs.Close()
	h.stop(t)
}

// otherTools runs every other tool, success and error paths, and the
// api_call refusals.
func (m *mcpCanaryRun) otherTools(cs *mcp.ClientSession, via string, misplaced func(string) string) {
	t := m.t
	up := m.up.URL
	refuse := func(label, code string, args map[string]any) {
		t.Helper()
		rid := m.nextRid()
		args["headers"] = map[string]string{cbRidHeader: rid}
		m.expect(via+" "+label, m.call(cs, via+" "+label, "api_call", args), code, 0, false)
		m.expectNotReceived(via+" "+label, rid)
	}
	refuse("unknown secret", "not_found", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"bearer": "NOPE_KEY"}})
	refuse("unbound secret", "denied", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"bearer": cbUnbound}})
	refuse("CR/LF value as bearer", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"bearer": cbCRLF}})
	refuse("CR/LF value in a header", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"header:X-Api-Key": cbCRLF}})
	refuse("not user:pass as basic", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"basic": cbHeader}})
	refuse("not allowlisted", "denied", map[string]any{"url": "https://api.example.com/v1/raw", "injections": map[string]string{"bearer": cbBearer}})
	refuse("two Authorization injections", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"bearer": cbBearer, "basic": cbBasic}})
	// Values typed where a name, a key or a flag value belongs.
	refuse("a value as a secret name", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{"bearer": misplaced("name")}})
	refuse("a value as an injection key", "usage", map[string]any{"url": up + "/v1/raw", "injections": map[string]string{misplaced("key"): cbBearer}})
	refuse("a value as an input key", "usage", map[string]any{"url": up + "/v1/raw", misplaced("inputkey"): "x"})
	refuse("a value as timeout", "usage", map[string]any{"url": up + "/v1/raw", "timeout": misplaced("timeout")})
	refuse("a value as max_response", "usage", map[string]any{"url": up + "/v1/raw", "max_response": misplaced("maxresponse")})
	refuse("a value as method", "usage", map[string]any{"url": up + "/v1/raw", "method": misplaced("method"), "bearer": cbBearer})
	refuse("a value in header pairs", "usage", map[string]any{"url": up + "/v1/raw", "header": []string{"X-Api-Key=" + misplaced("header")}})
	refuse("a value as request_header", "usage", map[string]any{"url": up + "/v1/raw", "request_header": misplaced("plainheader")})
	refuse("a value as the body with data", "usage", map[string]any{"url": up + "/v1/raw", "data": "x", "body": misplaced("body")})

	ok := func(tool string, args map[string]any) *mcpResult {
		t.Helper()
		r := m.call(cs, via+" "+tool, tool, args)
		if r != nil && r.IsError {
			t.Errorf("%s %s failed: %.300s", via, tool, r.Text)
		}
		return r
	}
	fail := func(tool, code string, args map[string]any) {
		t.Helper()
		label := fmt.Sprintf("%s %s (%s)", via, tool, code)
		m.expect(label, m.call(cs, label, tool, args), code, 0, false)
	}
	ok("list_secrets", nil)
	ok("status", nil)
	ok("project_list", nil)
	ok("audit_verify", nil)
	ok("proxy_logs", map[string]any{"last": 0})
	ok("proxy_logs", map[string]any{"secret": cbBearer, "decision": "redacted"})
	ok("project_use", map[string]any{"name": "default"})
	gen := "GEN_" + strings.ToUpper(strings.NewReplacer(".", "_", "/", "_", "-", "_").Replace(via)) + "_" + strconv.FormatInt(m.rid.Add(1), 10)
	ok("secrets_generate", map[string]any{"name": gen, "charset": "ascii", "length": 64})
	fail("secrets_generate", "usage", map[string]any{"name": gen, "overwrite": true})
	fail("secrets_generate", "conflict", map[string]any{"name": gen})
	fail("secrets_generate", "usage", map[string]any{"name": misplaced("genname")})
	fail("secrets_generate", "usage", map[string]any{"name": gen, "charset": misplaced("charset")})
	fail("list_secrets", "usage", map[string]any{"project": misplaced("project")})
	fail("list_secrets", "usage", map[string]any{misplaced("listkey"): true})
	fail("status", "usage", map[string]any{"workspace": misplaced("workspace")})
	fail("proxy_logs", "usage", map[string]any{"since": misplaced("since")})
	fail("proxy_logs", "usage", map[string]any{"decision": misplaced("decision")})
	fail("proxy_logs", "usage", map[string]any{"last": misplaced("last")})
	fail("project_use", "usage", map[string]any{"name": misplaced("projectname")})
	fail("project_use", "not_found", map[string]any{"name": "no-such-project"})
	fail("project_list", "usage", map[string]any{"workspace": misplaced("wsname")})
}

// scanEverything is the broker canary's final scan for an MCP run.
func (m *mcpCanaryRun) scanEverything() {
	t := m.t
	tally := &cbLeakTally{TB: t, hits: map[string]map[string]bool{}}
	scan := func(where string, data []byte) { scanBlob(tally, where, data, m.canaries) }
	_, caps := m.scanRecorded(scan)
	wire := 0
	for i, w := range m.wires {
		b := w.Bytes()
		wire += len(b)
		// One JSON-RPC message per line: scan each, decoded too.
		for j, line := range bytes.Split(b, []byte("\n")) {
			scan(fmt.Sprintf("protocol stream %d, message %d", i, j), line)
		}
	}
	for i, e := range m.errs {
		scan(fmt.Sprintf("stderr of mcp serve #%d", i), e.Bytes())
	}
	scanned := scanFiles(t, m.root, scan)
	want := []string{"home/config.json", "home/index.json", "home/audit.log", "work/.agentsecrets/project.json"}
	if m.v.Backend == "file" {
		want = append(want, "home/vault.enc")
	}
	for _, w := range want {
		if !scanned[w] {
			t.Errorf("the file scan did not see %s (saw %v)", w, scanned)
		}
	}
	if wire == 0 {
		t.Errorf("no protocol bytes were captured")
	}
	t.Logf("scanned %d results, %d bytes of protocol stream, %d files for %d canaries", caps, wire, len(scanned), len(m.canaries))
	tally.summary(t)
}
