package e2e

import (
	"strings"
	"testing"
)

// TestSyncMCP: an agent runs the sync loop over MCP on device B:
// secrets_diff reports drift, secrets_pull brings the new version in,
// secrets_push stores a local change, and neither sync tool takes force
// (approval_required). No value is in any tool result or in the server's
// log.
func TestSyncMCP(t *testing.T) { forSyncBackends(t, runSyncMCP) }

func runSyncMCP(t *testing.T, backend string) {
	srv, _, a, b := publishedPair(t, backend)
	v2 := newCanary(t, "mcp.v2", "")
	a.RunIn(v2, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	a.Run("secrets", "push").OK(t)
	s := startMCP(t, b, "", "")
	var texts []string
	call := func(name string, args map[string]any) *mcpResult {
		r := callTool(t, s.session, name, args)
		texts = append(texts, r.Text)
		return r
	}
	d := call("secrets_diff", map[string]any{}).ok(t, "secrets_diff")
	if !strings.Contains(mustJSON(d), `"remote_newer"`) {
		t.Fatalf("secrets_diff: %s", mustJSON(d))
	}
	if st := call("status", map[string]any{}).ok(t, "status"); !strings.Contains(mustJSON(st), `"remote_newer"`) {
		t.Errorf("status after secrets_diff shows no drift: %s", mustJSON(st))
	}
	p := call("secrets_pull", map[string]any{}).ok(t, "secrets_pull")
	if p["synced"] != float64(1) {
		t.Errorf("secrets_pull: %s", mustJSON(p))
	}
	if r := call("status", map[string]any{"check": true}); r.Error == nil || r.Error["code"] != "usage" {
		t.Errorf("status with check over MCP: %s", r.Text)
	}
	for _, tool := range []string{"secrets_pull", "secrets_push"} {
		r := call(tool, map[string]any{"force": true})
		if r.Error == nil || r.Error["code"] != "approval_required" {
			t.Errorf("%s with force: %s", tool, r.Text)
		}
	}
	v3 := newCanary(t, "mcp.v3", "")
	b.RunIn(v3, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	if r := call("secrets_push", map[string]any{"names": []string{"STRIPE_KEY"}}).ok(t, "secrets_push"); r["synced"] != float64(1) {
		t.Errorf("secrets_push: %s", mustJSON(r))
	}
	if st := secretStates(t, a.Run("secrets", "diff")); st["STRIPE_KEY"] != "remote_newer" {
		t.Errorf("A after B's MCP push: %v", st)
	}
	canaries := [][]byte{v2, v3}
	assertNoLeak(t, "MCP tool results", []byte(strings.Join(texts, "\n")), canaries)
	assertNoLeak(t, "mcp serve stderr", s.stderr.Bytes(), canaries)
	assertNoLeak(t, "server log", srv.Logs.Bytes(), canaries)
}
