package e2e

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
)

func openFDs(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("cannot count open files of pid %d: %v", pid, err)
	}
	return len(entries)
}

// TestMcpNoFDLeak: 1,000 api_calls (allowed and denied, four at a time,
// each with its own max_response and timeout) leave the server process's
// open file count flat: the vault, audit log
// and broker are opened once and reused, and upstream connections are
// pooled. (The goroutine count is checked in process, in
// commands/mcp_test.go.)
func TestMcpNoFDLeak(t *testing.T) {
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	v := mcpVault(t, "file", up, map[string]string{"KEY": randomValue(t, "sk_leak_")})
	s := startMCP(t, v, "", "")
	pid := s.cmd.Process.Pid
	call := func(i int) {
		// Every call has its own response cap and timeout: per-call
		// options must not select a transport (or a broker holding one).
		args := map[string]any{"url": fmt.Sprintf("%s/v1/%d", up.URL, i), "injections": map[string]string{"bearer": "KEY"},
			"max_response": 1<<20 + i, "timeout": fmt.Sprintf("%dms", 30000+i)}
		if i%10 == 9 {
			args["url"] = "https://not-allowlisted.example/v1" // denied before any dial
			callTool(t, s.session, "api_call", args).code(t, "api_call", "denied")
			return
		}
		callTool(t, s.session, "api_call", args).ok(t, "api_call")
	}
	batch := func(from, n int) {
		var wg sync.WaitGroup
		work := make(chan int)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					call(i)
				}
			}()
		}
		for i := from; i < from+n; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
	}
	batch(0, 50) // warm: vault, audit log, pooled connections
	before := openFDs(t, pid)
	batch(50, 1000)
	after := openFDs(t, pid)
	t.Logf("open files of mcp serve: %d after warm-up, %d after 1,000 more api_calls", before, after)
	// Up to four pooled upstream connections may differ between samples.
	if after > before+4 {
		t.Errorf("open files grew from %d to %d over 1,000 api_calls", before, after)
	}
	if n := len(up.requests()); n != 945 {
		t.Errorf("upstream received %d requests, want 945", n)
	}
}
