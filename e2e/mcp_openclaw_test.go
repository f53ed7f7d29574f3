package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestMcpOpenClaw registers `agentsecrets mcp serve` with the real
// OpenClaw CLI (`openclaw mcp add`, which probes the server before saving)
// and lists its tools with `openclaw mcp probe --json`. OpenClaw runs with
// a temporary HOME, so the user's ~/.openclaw is never read or written.
func TestMcpOpenClaw(t *testing.T) {
	openclaw := jsTool(t, "openclaw")
	v := NewVault(t, "file")
	home := t.TempDir()
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, openclaw, args...)
		cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "NO_COLOR=1"}
		cmd.Dir = home
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("openclaw %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
		}
		return out.Bytes()
	}
	add := []string{"mcp", "add", "agentsecrets", "--command", binary, "--arg", "mcp", "--arg", "serve", "--cwd", "/"}
	for _, kv := range v.Env() {
		if strings.HasPrefix(kv, "AGENTSECRETS_") {
			add = append(add, "--env", kv)
		}
	}
	run(add...)
	cfg, err := os.ReadFile(filepath.Join(home, ".openclaw", "openclaw.json"))
	if err != nil {
		t.Fatalf("openclaw mcp add wrote no config under the temporary HOME: %v", err)
	}
	if !bytes.Contains(cfg, []byte(binary)) {
		t.Errorf("the saved config does not name the binary:\n%s", cfg)
	}
	var probe struct {
		Servers map[string]struct {
			Tools int `json:"tools"`
		} `json:"servers"`
		Tools       []string `json:"tools"`
		Diagnostics []any    `json:"diagnostics"`
	}
	out := run("mcp", "probe", "agentsecrets", "--json")
	if err := json.Unmarshal(out, &probe); err != nil {
		t.Fatalf("openclaw mcp probe --json: %v\n%s", err, out)
	}
	var tools []string
	for _, name := range probe.Tools {
		tools = append(tools, strings.TrimPrefix(name, "agentsecrets__"))
	}
	sort.Strings(tools)
	if strings.Join(tools, ",") != strings.Join(mcpToolNames, ",") || probe.Servers["agentsecrets"].Tools != len(mcpToolNames) {
		t.Errorf("openclaw sees tools %v (server reports %d), want %v\n%s", tools, probe.Servers["agentsecrets"].Tools, mcpToolNames, out)
	}
	if len(probe.Diagnostics) != 0 {
		t.Errorf("openclaw diagnostics: %v", probe.Diagnostics)
	}
}
