package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkMcpStartToToolsList: from exec of `mcp serve` to the tools/list
// answer (Go SDK client: connect, which is initialize or server/discover,
// then tools/list), at each protocol revision, against bare process start
// (`--version`), interleaved in one run. Target: under 50 ms.
func BenchmarkMcpStartToToolsList(b *testing.B) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	env := benchVault(b, up, "sk_bench_mcp_0123456789abcdef")
	list := func(version string) time.Duration {
		cmd := exec.Command(binary, "mcp", "serve")
		cmd.Env, cmd.Dir = env, "/"
		client := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil)
		ctx := context.Background()
		start := time.Now()
		cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, &mcp.ClientSessionOptions{ProtocolVersion: version})
		if err != nil {
			b.Fatal(err)
		}
		res, err := cs.ListTools(ctx, nil)
		d := time.Since(start)
		if err != nil || len(res.Tools) != len(mcpToolNames) {
			b.Fatalf("tools/list: %v", err)
		}
		cs.Close()
		return d
	}
	bare := func() time.Duration {
		cmd := exec.Command(binary, "--version")
		cmd.Env = env
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 3 {
		bare()
		list("2025-11-25")
		list("2026-07-28")
	}
	var starts, legacy, modern []time.Duration
	b.ResetTimer()
	for range b.N {
		starts = append(starts, bare())
		legacy = append(legacy, list("2025-11-25"))
		modern = append(modern, list("2026-07-28"))
	}
	b.StopTimer()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(median(starts)), "start_p50_ms")
	b.ReportMetric(ms(median(legacy)), "toolslist_2025-11-25_p50_ms")
	b.ReportMetric(ms(median(modern)), "toolslist_2026-07-28_p50_ms")
	// What the server adds to a bare process start, the slower revision.
	b.ReportMetric(ms(max(median(legacy), median(modern))-median(starts)), "after_start_ms")
}

// BenchmarkMcpCallVsProxy: one api_call through a running `mcp serve`
// (stdio, Go SDK client) against the same request through a running
// `proxy start`, interleaved in one run, both warm. Target: MCP adds at
// most 1 ms at p50.
func BenchmarkMcpCallVsProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"balance","available":[{"amount":48213,"currency":"usd"}]}`)
	}))
	defer up.Close()
	env := benchVault(b, up, "sk_bench_mcp_0123456789abcdef")
	target := up.URL + "/v1/balance"

	_, proxyAddr, token := launchProxy(b, env, "")
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	viaProxy := func() time.Duration { return timedProxyGet(b, client, proxyAddr, token, target) }

	cmd := exec.Command(binary, "mcp", "serve")
	cmd.Env, cmd.Dir = env, "/"
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer cs.Close()
	args := map[string]any{"url": target, "injections": map[string]string{"bearer": "KEY"}}
	viaMCP := func() time.Duration {
		start := time.Now()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "api_call", Arguments: args})
		d := time.Since(start)
		if err != nil || res.IsError {
			b.Fatalf("api_call: %v %+v", err, res)
		}
		return d
	}
	for range 50 {
		viaProxy()
		viaMCP()
	}
	var px, mc []time.Duration
	b.ResetTimer()
	for range b.N {
		px = append(px, viaProxy())
		mc = append(mc, viaMCP())
	}
	b.StopTimer()
	pp, pm := median(px), median(mc)
	b.ReportMetric(float64(pp.Microseconds())/1000, "proxy_p50_ms")
	b.ReportMetric(float64(pm.Microseconds())/1000, "mcp_p50_ms")
	b.ReportMetric(float64((pm-pp).Microseconds())/1000, "mcp-proxy_p50_ms")
}
