package e2e

// MCP server tests with the official Go SDK client against the built
// binary: `agentsecrets mcp serve` as a subprocess over stdio (always
// started in /, as Claude Desktop does) and over loopback Streamable HTTP.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The protocol revisions the server must negotiate.
var mcpVersions = []string{"2025-11-25", "2026-07-28"}

// mcpToolNames is the tool set, sorted.
var mcpToolNames = []string{"api_call", "audit_verify", "list_secrets", "project_list", "project_use", "proxy_logs", "secrets_diff", "secrets_generate", "secrets_pull", "secrets_push", "status"}

// mcpServer is one running `mcp serve` subprocess with a connected client.
type mcpServer struct {
	cmd     *exec.Cmd
	session *mcp.ClientSession
	stderr  *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

// startMCP runs `agentsecrets mcp serve args...` for v in dir (default /)
// and connects at version ("" for the SDK's default).
func startMCP(t testing.TB, v *Vault, dir, version string, args ...string) *mcpServer {
	t.Helper()
	if dir == "" {
		dir = "/"
	}
	cmd := exec.Command(binary, append([]string{"mcp", "serve"}, args...)...)
	cmd.Env = v.Env()
	cmd.Dir = dir
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "agentsecrets-e2e", Version: "1.0.0"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts *mcp.ClientSessionOptions
	if version != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, opts)
	if err != nil {
		t.Fatalf("connect to mcp serve %v: %v\nstderr: %s", args, err, stderr.Bytes())
	}
	s := &mcpServer{cmd: cmd, session: cs, stderr: stderr}
	t.Cleanup(func() { cs.Close() })
	return s
}

// mcpResult is one tools/call answer, decoded.
type mcpResult struct {
	raw        *mcp.CallToolResult
	Text       string
	Structured map[string]any
	IsError    bool
	// Error is the {"error":{...}} object of a failed call.
	Error map[string]any
}

func callTool(t testing.TB, cs *mcp.ClientSession, name string, args any) *mcpResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return decodeToolResult(t, name, res)
}

func decodeToolResult(t testing.TB, name string, res *mcp.CallToolResult) *mcpResult {
	t.Helper()
	r := &mcpResult{raw: res, IsError: res.IsError}
	if len(res.Content) != 1 {
		t.Fatalf("%s: %d content blocks, want 1 text block", name, len(res.Content))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content is %T, want text", name, res.Content[0])
	}
	r.Text = tc.Text
	var fromText map[string]any
	if err := json.Unmarshal([]byte(tc.Text), &fromText); err != nil {
		t.Fatalf("%s: text content is not one JSON object: %v\n%s", name, err, tc.Text)
	}
	if res.IsError {
		if res.StructuredContent != nil {
			t.Errorf("%s: an error result carries structuredContent (it would have to match the output schema)", name)
		}
		e, ok := fromText["error"].(map[string]any)
		if !ok {
			t.Fatalf("%s: error text has no error object: %s", name, tc.Text)
		}
		for _, k := range []string{"code", "message", "hint"} {
			if s, _ := e[k].(string); s == "" {
				t.Errorf("%s: error without %s: %s", name, k, tc.Text)
			}
		}
		r.Error = e
		return r
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.Structured); err != nil {
		t.Fatalf("%s: structuredContent is not an object: %s", name, b)
	}
	if !reflect.DeepEqual(r.Structured, fromText) {
		t.Errorf("%s: structuredContent and text differ:\n%s\n%s", name, b, tc.Text)
	}
	return r
}

func (r *mcpResult) ok(t testing.TB, name string) map[string]any {
	t.Helper()
	if r.IsError {
		t.Fatalf("%s failed: %s", name, r.Text)
	}
	return r.Structured
}

func (r *mcpResult) code(t testing.TB, name, want string) {
	t.Helper()
	if !r.IsError {
		t.Fatalf("%s succeeded, want error %s: %.300s", name, want, r.Text)
	}
	if r.Error["code"] != want {
		t.Fatalf("%s: code %v, want %s: %s", name, r.Error["code"], want, r.Text)
	}
}

// mcpVault: a file vault with KEY (value) and BASIC (user:pass) stored,
// allowlisted and bound to up on every surface.
func mcpVault(t *testing.T, backend string, up *upstream, values map[string]string) *Vault {
	t.Helper()
	v := NewVault(t, backend)
	for name, val := range values {
		v.RunIn([]byte(val), "secrets", "set", name, "--from-stdin").OK(t)
	}
	if up != nil {
		v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
		for name := range values {
			v.Run("secrets", "bind", name, up.hostport(), "--surface", "header", "--surface", "query", "--surface", "body",
				"--surface", "form", "--header-name", "X-Api-Key", "--allow-echo", "--passphrase-file", v.AdminFile).OK(t)
		}
	}
	return v
}

func mustTB(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readSchema(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "schema", name))
	must(t, err)
	var v any
	must(t, json.Unmarshal(b, &v))
	return v
}

func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	var out any
	must(t, json.Unmarshal(b, &out))
	return out
}

// TestMcpToolsMatchSchemas: tools/list names exactly the tool set, each
// with the schemas committed in schema/ and honest annotations.
func TestMcpToolsMatchSchemas(t *testing.T) {
	v := NewVault(t, "file")
	s := startMCP(t, v, "", "")
	res, err := s.session.ListTools(context.Background(), nil)
	must(t, err)
	files := map[string]string{"api_call": "call", "list_secrets": "secrets_list", "status": "status", "proxy_logs": "proxy_logs",
		"audit_verify": "audit_verify", "secrets_generate": "secrets_generate", "project_list": "project_list", "project_use": "project_use",
		"secrets_diff": "secrets_diff", "secrets_pull": "secrets_pull", "secrets_push": "secrets_push"}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		file := files[tool.Name]
		wantIn := readSchema(t, file+".input.json")
		if tool.Name == "api_call" {
			// call's fields minus data_file (a server-side file read), plus
			// the original AgentSecrets tool's headers, body, injections.
			props := wantIn.(map[string]any)["properties"].(map[string]any)
			delete(props, "data_file")
			for _, k := range []string{"headers", "body", "injections"} {
				props[k] = asJSON(t, tool.InputSchema).(map[string]any)["properties"].(map[string]any)[k]
				if props[k] == nil {
					t.Errorf("api_call input has no %s", k)
				}
			}
		}
		if tool.Name == "secrets_generate" {
			// An agent creates generated secrets, never replaces one.
			delete(wantIn.(map[string]any)["properties"].(map[string]any), "overwrite")
		}
		if tool.Name == "status" {
			// status --check reaches the network; the tool never does.
			delete(wantIn.(map[string]any)["properties"].(map[string]any), "check")
		}
		if tool.Name == "secrets_push" || tool.Name == "secrets_pull" {
			// Overwriting the server's newer content is a human's --force.
			delete(wantIn.(map[string]any)["properties"].(map[string]any), "force")
		}
		// Nothing through MCP can be approved: no tool takes a passphrase file.
		if props := asJSON(t, tool.InputSchema).(map[string]any)["properties"].(map[string]any); props["passphrase_file"] != nil {
			t.Errorf("%s takes a passphrase file: an approval could be scripted through MCP", tool.Name)
		}
		if got := asJSON(t, tool.InputSchema); !reflect.DeepEqual(got, wantIn) {
			t.Errorf("%s inputSchema differs from schema/%s.input.json:\n%s", tool.Name, file, mustJSON(got))
		}
		if got := asJSON(t, tool.OutputSchema); !reflect.DeepEqual(got, readSchema(t, file+".output.json")) {
			t.Errorf("%s outputSchema differs from schema/%s.output.json:\n%s", tool.Name, file, mustJSON(got))
		}
		a := tool.Annotations
		if a == nil || a.DestructiveHint == nil || a.OpenWorldHint == nil {
			t.Errorf("%s: annotations incomplete: %+v", tool.Name, a)
			continue
		}
		readOnly := map[string]bool{"list_secrets": true, "status": true, "proxy_logs": true, "audit_verify": true, "project_list": true, "secrets_diff": true}[tool.Name]
		if a.ReadOnlyHint != readOnly {
			t.Errorf("%s: readOnlyHint %v, want %v", tool.Name, a.ReadOnlyHint, readOnly)
		}
		// The sync tools talk to the sync server.
		if *a.OpenWorldHint != (tool.Name == "api_call" || strings.HasPrefix(tool.Name, "secrets_") && tool.Name != "secrets_generate") {
			t.Errorf("%s: openWorldHint %v", tool.Name, *a.OpenWorldHint)
		}
		if *a.DestructiveHint {
			t.Errorf("%s: destructiveHint: no MCP tool may replace or delete a stored value", tool.Name)
		}
		if readOnly && !a.IdempotentHint {
			t.Errorf("%s: read-only but not idempotent", tool.Name)
		}
		if tool.Description == "" || tool.Title == "" {
			t.Errorf("%s: no description or title", tool.Name)
		}
	}
	sort.Strings(names)
	if !reflect.DeepEqual(names, mcpToolNames) {
		t.Errorf("tools %v, want %v", names, mcpToolNames)
	}
}

// TestMcpTools runs every tool over stdio, success and failure, and checks
// that a failure carries the CLI's code, message and hint.
func TestMcpTools(t *testing.T) {
	key, basic := randomValue(t, "sk_mcp_"), "agent:"+randomValue(t, "pw_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"method":%q,"ctype":%q,"body_len":%d,"plain":%q}`, r.URL.Path, r.Method, r.Header.Get("Content-Type"), len(body), r.Header.Get("X-Plain"))
	})
	v := mcpVault(t, "file", up, map[string]string{"KEY": key, "BASIC": basic})
	s := startMCP(t, v, "", "")
	cs := s.session

	// api_call, the original tool's shape.
	r := callTool(t, cs, "api_call", map[string]any{"url": up.URL + "/v1/orig", "method": "POST", "headers": map[string]string{"X-Plain": "yes"},
		"body": map[string]any{"amount": 5}, "injections": map[string]string{"bearer": "KEY", "query:api_key": "KEY", "body:auth.token": "KEY", "header:X-Api-Key": "KEY"}}).ok(t, "api_call")
	body, _ := r["body"].(map[string]any)
	if r["status"] != float64(200) || body["method"] != "POST" || body["ctype"] != "application/json" || body["plain"] != "yes" {
		t.Errorf("api_call (original shape): %v", r)
	}
	got := up.requests()[len(up.requests())-1]
	for _, in := range []cbInjection{{"bearer", "", "KEY"}, {"query", "api_key", "KEY"}, {"body", "auth.token", "KEY"}, {"header", "X-Api-Key", "KEY"}} {
		if !cbReceived(got, in, []byte(key)) {
			t.Errorf("upstream did not receive KEY as %s %s", in.style, in.field)
		}
	}
	if !strings.Contains(got.Body, `"amount":5`) {
		t.Errorf("upstream body %q lacks the JSON body", got.Body)
	}
	// api_call, call's own fields; form and basic through injections.
	r = callTool(t, cs, "api_call", map[string]any{"url": up.URL + "/v1/rich", "bearer": "KEY", "request_header": "X-Plain: rich", "query": []string{"k=KEY"}}).ok(t, "api_call")
	if body, _ := r["body"].(map[string]any); body["plain"] != "rich" || r["audit_id"] == "" {
		t.Errorf("api_call (call fields): %v", r)
	}
	callTool(t, cs, "api_call", map[string]any{"url": up.URL + "/v1/form", "injections": map[string]string{"basic": "BASIC", "form:client_secret": "KEY"}}).ok(t, "api_call")
	got = up.requests()[len(up.requests())-1]
	if !cbReceived(got, cbInjection{"basic", "", "BASIC"}, []byte(basic)) || !cbReceived(got, cbInjection{"form", "client_secret", "KEY"}, []byte(key)) || got.Method != "POST" {
		t.Errorf("basic + form injection not received: %s %+v", got.Method, got.Header)
	}

	// Failures: same code, message and hint as the CLI.
	for _, tc := range []struct {
		name string
		args map[string]any
		cli  []string
		code string
	}{
		{"not allowlisted", map[string]any{"url": "https://api.example.com/x", "injections": map[string]string{"bearer": "KEY"}},
			[]string{"call", "--url", "https://api.example.com/x", "--bearer", "KEY"}, "denied"},
		{"no such secret", map[string]any{"url": up.URL + "/x", "bearer": "MISSING"}, []string{"call", "--url", up.URL + "/x", "--bearer", "MISSING"}, ""},
		{"bad timeout", map[string]any{"url": up.URL + "/x", "timeout": "soon"}, []string{"call", "--url", up.URL + "/x", "--timeout", "soon"}, "usage"},
		{"bad pair", map[string]any{"url": up.URL + "/x", "header": []string{"X-Api-Key"}}, []string{"call", "--url", up.URL + "/x", "--header", "X-Api-Key"}, "usage"},
	} {
		res := callTool(t, cs, "api_call", tc.args)
		cli := v.Run(tc.cli...)
		want := cli.JSON(t)["error"].(map[string]any)
		if tc.code != "" && want["code"] != tc.code {
			t.Errorf("%s: the CLI says %v, want %s", tc.name, want["code"], tc.code)
		}
		res.code(t, "api_call "+tc.name, want["code"].(string))
		if res.Error["message"] != want["message"] || res.Error["hint"] != want["hint"] {
			t.Errorf("%s: MCP error %v differs from the CLI's %v", tc.name, res.Error, want)
		}
	}
	callTool(t, cs, "api_call", map[string]any{}).code(t, "api_call without url", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL, "data_file": "/etc/passwd"}).code(t, "api_call data_file", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL, "injections": map[string]string{"cookie:x": "KEY"}}).code(t, "api_call bad injection key", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL, "injections": []string{"KEY"}}).code(t, "api_call injections not a map", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL, "max_response": "big"}).code(t, "api_call max_response type", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL, "data": "x", "body": "y"}).code(t, "api_call data and body", "usage")
	callTool(t, cs, "api_call", map[string]any{"url": up.URL + "/fail", "fail": true, "bearer": "KEY"}).ok(t, "api_call --fail on 200")

	// The other tools.
	ls := callTool(t, cs, "list_secrets", nil).ok(t, "list_secrets")
	if n := len(ls["secrets"].([]any)); n != 2 {
		t.Errorf("list_secrets: %d secrets, want 2", n)
	}
	callTool(t, cs, "list_secrets", map[string]any{"project": "nope"}).code(t, "list_secrets unknown project", "not_found")
	callTool(t, cs, "list_secrets", map[string]any{"bogus": 1}).code(t, "list_secrets unknown input", "usage")
	st := callTool(t, cs, "status", nil).ok(t, "status")
	if backend, _ := st["backend"].(map[string]any); st["initialised"] != true || backend["kind"] != "file" || st["secrets"] != float64(2) {
		t.Errorf("status: %v", st)
	}
	logs := callTool(t, cs, "proxy_logs", map[string]any{"last": 3}).ok(t, "proxy_logs")
	recs := logs["records"].([]any)
	if len(recs) != 3 || recs[2].(map[string]any)["front_end"] != "mcp" {
		t.Errorf("proxy_logs: %v", logs)
	}
	callTool(t, cs, "proxy_logs", map[string]any{"decision": "maybe"}).code(t, "proxy_logs bad decision", "usage")
	callTool(t, cs, "proxy_logs", map[string]any{"last": "ten"}).code(t, "proxy_logs bad last", "usage")
	if av := callTool(t, cs, "audit_verify", nil).ok(t, "audit_verify"); av["ok"] != true {
		t.Errorf("audit_verify: %v", av)
	}
	gen := callTool(t, cs, "secrets_generate", map[string]any{"name": "GENERATED", "length": 40}).ok(t, "secrets_generate")
	if strings.Contains(mustJSON(gen), "value") {
		t.Errorf("secrets_generate result mentions a value: %v", gen)
	}
	callTool(t, cs, "secrets_generate", map[string]any{"name": "GENERATED"}).code(t, "secrets_generate again", "conflict")
	callTool(t, cs, "secrets_generate", map[string]any{"name": "GENERATED", "overwrite": true}).code(t, "secrets_generate overwrite", "usage")
	callTool(t, cs, "secrets_generate", map[string]any{"name": "bad name!"}).code(t, "secrets_generate bad name", "usage")
	callTool(t, cs, "secrets_generate", map[string]any{}).code(t, "secrets_generate without name", "usage")
	callTool(t, cs, "secrets_generate", map[string]any{"name": "X_LEN", "length": 2}).code(t, "secrets_generate short", "usage")
	pl := callTool(t, cs, "project_list", nil).ok(t, "project_list")
	if n := len(pl["projects"].([]any)); n != 1 {
		t.Errorf("project_list: %v", pl)
	}
	callTool(t, cs, "project_use", map[string]any{"name": "other"}).code(t, "project_use unknown", "not_found")
	v.Run("project", "create", "other").OK(t)
	callTool(t, cs, "project_use", map[string]any{"name": "other"}).ok(t, "project_use")
	if ls := callTool(t, cs, "list_secrets", nil).ok(t, "list_secrets after project_use"); ls["project"] != "other" {
		t.Errorf("after project_use the server lists %v", ls["project"])
	}
	// --link writes into the working directory, which the server does not have.
	callTool(t, cs, "project_use", map[string]any{"name": "other", "link": true}).code(t, "project_use --link", "usage")
	// An unknown tool is a protocol error, not a result.
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "secrets_bind", Arguments: map[string]any{}}); err == nil {
		t.Errorf("secrets_bind exists as a tool")
	}
}

// TestMcpProjectSelection: the config entry's --workspace/--project win;
// otherwise the user's current project; a directory link counts only with
// --link-dir, whatever directory the client starts the server in.
func TestMcpProjectSelection(t *testing.T) {
	v := NewVault(t, "file")
	v.Run("workspace", "create", "team").OK(t)
	v.Run("project", "create", "api", "--workspace", "team").OK(t)
	v.Run("project", "create", "linked").OK(t)
	v.RunIn([]byte("v1"), "secrets", "set", "IN_API", "--from-stdin", "--workspace", "team", "--project", "api").OK(t)
	v.Run("project", "use", "linked", "--link").OK(t) // in v.Dir
	project := func(s *mcpServer) string {
		ls := callTool(t, s.session, "list_secrets", nil).ok(t, "list_secrets")
		return ls["workspace"].(string) + "/" + ls["project"].(string)
	}
	if got := project(startMCP(t, v, "/", "", "--workspace", "team", "--project", "api")); got != "team/api" {
		t.Errorf("--workspace team --project api from /: %s", got)
	}
	if got := project(startMCP(t, v, v.Dir, "")); got != "default/default" {
		t.Errorf("started in a linked directory without --link-dir: %s, want the current project", got)
	}
	if got := project(startMCP(t, v, "/", "", "--link-dir", v.Dir)); got != "default/linked" {
		t.Errorf("--link-dir: %s", got)
	}
	// A tool's own scope still wins.
	s := startMCP(t, v, "/", "", "--workspace", "team", "--project", "api")
	if ls := callTool(t, s.session, "list_secrets", map[string]any{"workspace": "default"}).ok(t, "list_secrets"); ls["workspace"] != "default" {
		t.Errorf("tool scope: %v", ls)
	}
	// Bad names fail at start, as a usage error on stderr: stdout is the
	// protocol stream, which carries JSON-RPC only.
	cmd := exec.Command(binary, "mcp", "serve", "--project", "../x")
	cmd.Env, cmd.Dir = v.Env(), "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	if cmd.ProcessState.ExitCode() != 2 || len(out) != 0 || !strings.Contains(stderr.String(), `"usage"`) {
		t.Errorf("mcp serve --project ../x: exit %d, stdout %q, stderr %s", cmd.ProcessState.ExitCode(), out, stderr.Bytes())
	}
}

// TestMcpProtocolVersions: both revisions negotiate over stdio and HTTP.
func TestMcpProtocolVersions(t *testing.T) {
	v := NewVault(t, "file")
	h := startMCPHTTP(t, v)
	for _, ver := range mcpVersions {
		for _, transport := range []string{"stdio", "http"} {
			t.Run(ver+"/"+transport, func(t *testing.T) {
				var cs *mcp.ClientSession
				if transport == "stdio" {
					cs = startMCP(t, v, "", ver).session
				} else {
					cs = h.connect(t, ver)
				}
				if got := cs.InitializeResult().ProtocolVersion; got != ver {
					t.Fatalf("negotiated %s, want %s", got, ver)
				}
				if got := cs.InitializeResult().ServerInfo; got == nil || got.Name != "agentsecrets" {
					t.Errorf("server info %+v", got)
				}
				tools, err := cs.ListTools(context.Background(), nil)
				must(t, err)
				if len(tools.Tools) != len(mcpToolNames) {
					t.Errorf("%d tools", len(tools.Tools))
				}
				callTool(t, cs, "status", nil).ok(t, "status")
				callTool(t, cs, "list_secrets", map[string]any{"project": "nope"}).code(t, "list_secrets", "not_found")
			})
		}
	}
}

// mcpHTTP is a running `mcp serve --http`.
type mcpHTTP struct {
	cmd    *exec.Cmd
	URL    string // http://127.0.0.1:PORT/mcp
	Token  string
	File   string
	stderr *lockedBuffer
}

var listeningRE = regexp.MustCompile(`listening on (http://\S+) \(token in (\S+)\)`)

func startMCPHTTP(t testing.TB, v *Vault, args ...string) *mcpHTTP {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"mcp", "serve", "--http", "127.0.0.1:0"}, args...)...)
	cmd.Env, cmd.Dir = v.Env(), "/"
	pr, pw := io.Pipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = io.MultiWriter(pw, stderr)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	mustTB(t, cmd.Start())
	h := &mcpHTTP{cmd: cmd, stderr: stderr}
	t.Cleanup(func() { h.stop(t) })
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case m := <-found:
		h.URL, h.File = m[1], m[2]
	case <-time.After(20 * time.Second):
		t.Fatalf("mcp serve --http did not report its address: %s", stderr.Bytes())
	}
	tok, err := os.ReadFile(h.File)
	mustTB(t, err)
	h.Token = strings.TrimSpace(string(tok))
	return h
}

func (h *mcpHTTP) stop(t testing.TB) {
	if h.cmd.ProcessState != nil {
		return
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("mcp serve --http exited: %v\n%s", err, h.stderr.Bytes())
		}
	case <-time.After(15 * time.Second):
		h.cmd.Process.Kill()
		t.Errorf("mcp serve --http did not stop on SIGTERM")
	}
}

// bearer adds the session token to every request.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func (h *mcpHTTP) connect(t testing.TB, version string) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "agentsecrets-e2e", Version: "1.0.0"}, nil)
	tr := &mcp.StreamableClientTransport{Endpoint: h.URL, HTTPClient: &http.Client{Transport: bearer{h.Token, &http.Transport{Proxy: nil}}}}
	var opts *mcp.ClientSessionOptions
	if version != "" {
		opts = &mcp.ClientSessionOptions{ProtocolVersion: version}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, tr, opts)
	if err != nil {
		t.Fatalf("connect %s: %v\n%s", h.URL, err, h.stderr.Bytes())
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestMcpHTTP: loopback only, a session token, a loopback Host; the token
// file is private and removed at exit.
func TestMcpHTTP(t *testing.T) {
	v := NewVault(t, "file")
	for _, addr := range []string{"0.0.0.0:0", "192.168.1.10:8766", "[::]:0", "example.com:80", "127.0.0.1", "127.0.0.1:70000"} {
		r := v.Run("mcp", "serve", "--http", addr)
		r.ErrorCode(t, "usage", 2)
	}
	h := startMCPHTTP(t, v)
	fi, err := os.Stat(h.File)
	must(t, err)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
	initMsg := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`
	post := func(host string, hdr map[string]string) (*http.Response, map[string]any) {
		req, _ := http.NewRequest("POST", h.URL, strings.NewReader(initMsg))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, val := range hdr {
			req.Header.Set(k, val)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(b, &m)
		return resp, m
	}
	errCode := func(m map[string]any) any {
		e, _ := m["error"].(map[string]any)
		return e["code"]
	}
	if resp, m := post("", nil); resp.StatusCode != 401 || errCode(m) != "unauthorized" {
		t.Errorf("no token: %d %v", resp.StatusCode, m)
	}
	if resp, m := post("", map[string]string{"Authorization": "Bearer " + strings.Repeat("0", 64)}); resp.StatusCode != 401 || errCode(m) != "unauthorized" {
		t.Errorf("wrong token: %d %v", resp.StatusCode, m)
	}
	if resp, m := post("evil.example:80", map[string]string{"Authorization": "Bearer " + h.Token}); resp.StatusCode != 403 || errCode(m) != "denied" {
		t.Errorf("rebinding Host: %d %v", resp.StatusCode, m)
	}
	if resp, _ := post("", map[string]string{"X-AS-Session-Token": h.Token}); resp.StatusCode != 200 {
		t.Errorf("X-AS-Session-Token: %d", resp.StatusCode)
	}
	if resp, _ := post("localhost", map[string]string{"Authorization": "Bearer " + h.Token}); resp.StatusCode != 200 {
		t.Errorf("Host localhost: %d", resp.StatusCode)
	}
	cs := h.connect(t, "")
	callTool(t, cs, "status", nil).ok(t, "status")
	cs.Close()
	h.stop(t)
	if _, err := os.Stat(h.File); !os.IsNotExist(err) {
		t.Errorf("token file left behind after stop: %v", err)
	}
}
