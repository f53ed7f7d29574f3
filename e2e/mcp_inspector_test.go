package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// inspector runs the MCP Inspector CLI with a private HOME (it keeps a
// catalog and OAuth state there) and returns stdout, stderr and the exit
// status.
func inspector(t *testing.T, args ...string) ([]byte, []byte, int) {
	t.Helper()
	bin := jsTool(t, "mcp-inspector")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--cli"}, args...)...)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1", "MCP_CATALOG_PATH=" + filepath.Join(home, "mcp.json")}
	r := capture(t, cmd, args)
	return r.Stdout, r.Stderr, r.Code
}

// serverEnvFlags passes the vault's environment to the stdio server the
// inspector starts (it gives a child only a minimal environment).
func serverEnvFlags(v *Vault) []string {
	var out []string
	for _, kv := range v.Env() {
		if strings.HasPrefix(kv, "AGENTSECRETS_") || strings.HasPrefix(kv, "DBUS_") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			out = append(out, "-e", kv)
		}
	}
	return out
}

// TestMcpInspectorStrict: the inspector's --strict schema-portability check
// reports nothing for our tools, over stdio and over HTTP. (In inspector
// 2.12.0, --strict applies to tools/list: problems go to stderr with path,
// issue and fix, and error-severity ones exit 6; without it only a count is
// printed. Both warnings and errors count as failures here.)
func TestMcpInspectorStrict(t *testing.T) {
	v := NewVault(t, "file")
	check := func(label string, stdout, stderr []byte, code int) {
		t.Helper()
		if code != 0 {
			t.Fatalf("%s: inspector exit %d\nstdout: %.2000s\nstderr: %s", label, code, stdout, stderr)
		}
		for _, word := range []string{"Warning", "Error", "Issue:", "portability"} {
			if bytes.Contains(stderr, []byte(word)) {
				t.Errorf("%s: --strict reported problems:\n%s", label, stderr)
				break
			}
		}
		var list struct {
			Tools []struct {
				Name string `json:"name"`
			} `json:"tools"`
		}
		if err := json.Unmarshal(stdout, &list); err != nil {
			t.Fatalf("%s: tools/list output is not JSON: %v\n%.500s", label, err, stdout)
		}
		if len(list.Tools) != len(mcpToolNames) {
			t.Errorf("%s: %d tools listed, want %d", label, len(list.Tools), len(mcpToolNames))
		}
	}
	args := append([]string{"--strict", "--method", "tools/list"}, serverEnvFlags(v)...)
	stdout, stderr, code := inspector(t, append(args, binary, "mcp", "serve")...)
	check("stdio", stdout, stderr, code)

	h := startMCPHTTP(t, v)
	stdout, stderr, code = inspector(t, "--strict", "--method", "tools/list", "--transport", "http", "--server-url", h.URL,
		"--header", "Authorization: Bearer "+h.Token)
	check("http", stdout, stderr, code)
	// Without the token the inspector gets 401 and fails.
	if _, _, code := inspector(t, "--method", "tools/list", "--transport", "http", "--server-url", h.URL, "--stored-auth-only", "--connect-timeout", "10000"); code == 0 {
		t.Errorf("the inspector listed tools without the session token")
	}
}

// TestMcpInspectorApiCall: tools/call api_call through the inspector
// against a local upstream that echoes the credential in every common
// encoding; the inspector's output never holds the value, and the
// upstream did receive it.
func TestMcpInspectorApiCall(t *testing.T) {
	key := randomValue(t, "sk_insp_")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.Header().Set("X-Echo", got)
		w.Header().Set("Content-Type", "application/json")
		enc := encodings(got)
		json.NewEncoder(w).Encode(map[string]any{"echo": enc, "b64": base64.StdEncoding.EncodeToString([]byte(got)), "ok": true})
	})
	v := mcpVault(t, "file", up, map[string]string{"KEY": key})
	toolArgs := fmt.Sprintf(`{"url":%q,"method":"GET","injections":{"bearer":"KEY"}}`, up.URL+"/v1/echo")
	args := append([]string{"--method", "tools/call", "--tool-name", "api_call", "--tool-args-json", toolArgs}, serverEnvFlags(v)...)
	stdout, stderr, code := inspector(t, append(args, binary, "mcp", "serve")...)
	if code != 0 {
		t.Fatalf("inspector exit %d\nstdout: %.2000s\nstderr: %s", code, stdout, stderr)
	}
	noValue(t, "inspector stdout", stdout, key)
	noValue(t, "inspector stderr", stderr, key)
	assertNoLeak(t, "inspector output", append(stdout, stderr...), [][]byte{[]byte(key)})
	var res struct {
		IsError           bool           `json:"isError"`
		StructuredContent map[string]any `json:"structuredContent"`
	}
	if err := json.Unmarshal(stdout, &res); err != nil {
		t.Fatalf("tools/call output is not JSON: %v\n%.500s", err, stdout)
	}
	if res.IsError || res.StructuredContent["redacted"] != true || res.StructuredContent["status"] != float64(200) {
		t.Errorf("api_call result: %.1000s", stdout)
	}
	reqs := up.requests()
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+key {
		t.Errorf("the upstream did not receive the injected value (%d requests)", len(reqs))
	}
	// A denied call: an isError result with the CLI's code, and no request.
	toolArgs = `{"url":"https://api.example.com/v1","injections":{"bearer":"KEY"}}`
	args = append([]string{"--method", "tools/call", "--tool-name", "api_call", "--tool-args-json", toolArgs}, serverEnvFlags(v)...)
	stdout, stderr, _ = inspector(t, append(args, binary, "mcp", "serve")...)
	if !bytes.Contains(stdout, []byte(`\"code\":\"denied\"`)) || !bytes.Contains(stdout, []byte(`"isError": true`)) {
		t.Errorf("denied api_call through the inspector:\nstdout: %.1000s\nstderr: %.1000s", stdout, stderr)
	}
	noValue(t, "inspector output (denied)", append(stdout, stderr...), key)
}
