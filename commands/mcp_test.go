package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	mcpsrv "github.com/agentsecrets/agentsecrets/internal/mcp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveInProcess runs `mcp serve` through Main in this process over pipes
// and connects the Go SDK client to it.
func serveInProcess(t *testing.T, root string, version string, args ...string) (*mcp.ClientSession, <-chan int) {
	t.Helper()
	env, _, _ := testEnvErr(t, root)
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	env.IO.In, env.IO.Out = c2sR, s2cW
	done := make(chan int, 1)
	go func() {
		code := Main(append([]string{"mcp", "serve"}, args...), env)
		s2cW.Close()
		done <- code
	}()
	client := mcp.NewClient(&mcp.Implementation{Name: "in-process", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: s2cR, Writer: c2sW}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return cs, done
}

func settleGoroutines(limit int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > limit; i++ {
		time.Sleep(20 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return len(entries)
}

// TestMcpPerCallOptionsShareOneBroker: 200 api_calls, each with its own
// max_response and timeout, leave open files and goroutines flat. Per-call
// options travel on the broker request; were anything keyed by them, each
// call would open a transport with its own pooled connection (a client
// and a server fd, three goroutines) that outlives the call.
func TestMcpPerCallOptionsShareOneBroker(t *testing.T) {
	root, run := fileVault(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	admin := filepath.Join(root, "admin.pass")
	if code, out, _ := run("value-of-key-0123456789", "secrets", "set", "KEY", "--from-stdin"); code != 0 {
		t.Fatalf("set: %s", out)
	}
	for _, args := range [][]string{
		{"workspace", "allowlist", "add", host, "--allow-http", "--allow-private", "--passphrase-file", admin},
		{"secrets", "bind", "KEY", host, "--passphrase-file", admin},
	} {
		if code, out, _ := run("", args...); code != 0 {
			t.Fatalf("%v: %s", args, out)
		}
	}
	cs, done := serveInProcess(t, root, "2025-11-25")
	call := func(i int) {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "api_call", Arguments: map[string]any{
			"url": up.URL + "/x", "bearer": "KEY", "max_response": 1000 + i, "timeout": fmt.Sprintf("%dms", 30000+i)}})
		if err != nil || res.IsError {
			t.Fatalf("api_call %d: %v %+v", i, err, res)
		}
	}
	for i := range 10 {
		call(i)
	}
	fds, goroutines := openFDs(t), settleGoroutines(0)
	for i := 10; i < 210; i++ {
		call(i)
	}
	afterFDs, afterGoroutines := openFDs(t), settleGoroutines(goroutines+4)
	t.Logf("open files %d -> %d, goroutines %d -> %d over 200 api_calls with distinct options", fds, afterFDs, goroutines, afterGoroutines)
	if afterFDs > fds+4 || afterGoroutines > goroutines+4 {
		t.Errorf("open files grew from %d to %d, goroutines from %d to %d", fds, afterFDs, goroutines, afterGoroutines)
	}
	// The per-call cap still applies: the body is 11 bytes.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "api_call", Arguments: map[string]any{"url": up.URL + "/x", "bearer": "KEY", "max_response": 5}})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `"too_large"`) {
		t.Errorf("max_response 5 on an 11-byte body: %v %+v", err, res)
	}
	cs.Close()
	<-done
}

// TestMcpInProcess drives the server with the Go SDK client in this
// process, at both protocol revisions, and checks that 1,000 api_calls
// leave the goroutine count flat and that the session ends cleanly when
// the client closes stdin.
func TestMcpInProcess(t *testing.T) {
	const keyValue = "value-of-key-0123456789"
	root, run := fileVault(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"auth_len":%d}`, len(r.Header.Get("Authorization")))
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	admin := filepath.Join(root, "admin.pass")
	for _, args := range [][]string{
		{"workspace", "allowlist", "add", host, "--allow-http", "--allow-private", "--passphrase-file", admin},
		{"secrets", "bind", "KEY", host, "--passphrase-file", admin},
	} {
		if args[1] == "bind" {
			if code, out, _ := run(keyValue, "secrets", "set", "KEY", "--from-stdin"); code != 0 {
				t.Fatalf("set: %s", out)
			}
		}
		if code, out, _ := run("", args...); code != 0 {
			t.Fatalf("%v: %s", args, out)
		}
	}
	for _, version := range []string{"2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			cs, done := serveInProcess(t, root, version)
			if got := cs.InitializeResult().ProtocolVersion; got != version {
				t.Fatalf("negotiated %s", got)
			}
			ctx := context.Background()
			call := func() {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "api_call", Arguments: map[string]any{"url": up.URL + "/x", "bearer": "KEY"}})
				if err != nil || res.IsError {
					t.Fatalf("api_call: %v %+v", err, res)
				}
				if err := checkBearerInjected(res, keyValue); err != nil {
					t.Fatal(err)
				}
			}
			// The first calls arrive together, before anything is cached
			// or the backend opened (run with -race).
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if i%4 == 3 {
						res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "secrets_generate", Arguments: map[string]any{"name": fmt.Sprintf("GEN_%d_%s", i, strings.ReplaceAll(version, "-", "_"))}})
						if err != nil || res.IsError {
							t.Errorf("secrets_generate: %v %+v", err, res)
						}
						return
					}
					res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "api_call", Arguments: map[string]any{"url": up.URL + "/x", "bearer": "KEY"}})
					if err != nil || res.IsError {
						t.Errorf("api_call: %v %+v", err, res)
					} else if err := checkBearerInjected(res, keyValue); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for range 50 {
				call()
			}
			before := settleGoroutines(0)
			for range 1000 {
				call()
			}
			after := settleGoroutines(before + 4)
			t.Logf("goroutines: %d after warm-up, %d after 1,000 api_calls", before, after)
			if after > before+4 {
				t.Errorf("goroutines grew from %d to %d over 1,000 api_calls", before, after)
			}
			cs.Close()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("mcp serve exited %d after the client closed", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("mcp serve did not return after the client closed stdin")
			}
		})
	}
}

// TestCallDefaults: the defaults of `call` and `proxy start` that kong
// applies are the broker's, which api_call uses.
func TestCallDefaults(t *testing.T) {
	io, _, _, _ := TestIO()
	cli := &CLI{}
	exited := -1
	parser, err := newParser(cli, &Env{IO: io}, &exited)
	if err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"call", "--url", "https://example.invalid/"}, {"proxy", "start"}} {
		if _, err := parser.Parse(argv); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		what, timeout string
		maxResponse   int64
	}{
		{"call", cli.Call.Timeout, cli.Call.MaxResponse},
		{"proxy start", cli.Proxy.Start.Timeout, cli.Proxy.Start.MaxResponse},
	} {
		d, err := broker.ParseTimeout(c.timeout)
		if err != nil || d != broker.DefaultTimeout || c.maxResponse != broker.DefaultMaxResponse {
			t.Errorf("%s defaults: timeout %q, max_response %d; the broker's are %s and %d", c.what, c.timeout, c.maxResponse, broker.DefaultTimeout, broker.DefaultMaxResponse)
		}
	}
}

// TestAPICallInputsMatchCall: api_call takes exactly the call command's
// inputs (but data_file, and verbose, which prints to a person's stderr)
// plus headers, body and injections, so a flag added to call is decoded by
// api_call too.
func TestAPICallInputsMatchCall(t *testing.T) {
	io, _, _, _ := TestIO()
	schemas, err := (&mcpCommands{base: &Env{IO: io}}).Schemas([]string{"call"})
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(schemas["call"].Input, &s); err != nil {
		t.Fatal(err)
	}
	want := []string{"body", "headers", "injections"}
	for k := range s.Properties {
		if k != "data_file" && k != "verbose" {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	if got := mcpsrv.APICallKeys(); !reflect.DeepEqual(got, want) {
		t.Errorf("api_call takes %v; call's schema gives %v", got, want)
	}
}

// checkBearerInjected reads the upstream's {"auth_len":N} echo from an
// api_call result: N must be the length of "Bearer " plus the value, which
// proves the bearer was injected (the value itself never comes back).
func checkBearerInjected(res *mcp.CallToolResult, value string) error {
	var got struct {
		Body struct {
			AuthLen *int `json:"auth_len"`
		} `json:"body"`
	}
	if len(res.Content) == 0 {
		return fmt.Errorf("api_call returned no content")
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		return fmt.Errorf("api_call content is %T, not text", res.Content[0])
	}
	if err := json.Unmarshal([]byte(text.Text), &got); err != nil {
		return fmt.Errorf("api_call result is not JSON: %v", err)
	}
	if want := len("Bearer " + value); got.Body.AuthLen == nil || *got.Body.AuthLen != want {
		return fmt.Errorf("upstream saw no Authorization of length %d (the bearer was not injected): %s", want, text.Text)
	}
	return nil
}
