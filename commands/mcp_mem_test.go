package commands

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestApiCallGzipBombMemory: a 100 KB gzip answer that decodes to 100 MB
// is refused as too_large by api_call, whatever max_response it asks for,
// without the server allocating gigabytes (it reached 3 GB before).
func TestApiCallGzipBombMemory(t *testing.T) {
	root, run := fileVault(t)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(bytes.Repeat([]byte{0}, 100<<20))
	zw.Close()
	gz := buf.Bytes()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz)
	}))
	defer up.Close()
	host := strings.TrimPrefix(up.URL, "http://")
	admin := filepath.Join(root, "admin.pass")
	run("value-of-key-0123456789", "secrets", "set", "KEY", "--from-stdin")
	for _, args := range [][]string{
		{"workspace", "allowlist", "add", host, "--allow-http", "--allow-private", "--passphrase-file", admin},
		{"secrets", "bind", "KEY", host, "--passphrase-file", admin},
	} {
		if code, out, _ := run("", args...); code != 0 {
			t.Fatalf("%v: %s", args, out)
		}
	}
	cs, _ := serveInProcess(t, root, "2025-11-25")
	defer cs.Close()
	for _, args := range []map[string]any{
		{"url": up.URL + "/x", "bearer": "KEY"},
		{"url": up.URL + "/x", "bearer": "KEY", "max_response": 1 << 30},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "api_call", Arguments: args})
		runtime.ReadMemStats(&after)
		if err != nil || !res.IsError {
			t.Fatalf("api_call: %v %+v", err, res)
		}
		text := res.Content[0].(*mcp.TextContent).Text
		var rep struct{ Error struct{ Code string } }
		if json.Unmarshal([]byte(text), &rep) != nil || rep.Error.Code != "too_large" {
			t.Fatalf("want too_large: %s", text)
		}
		mb := (after.TotalAlloc - before.TotalAlloc) >> 20
		t.Logf("max_response %v: %d MB allocated", args["max_response"], mb)
		if mb > 256 {
			t.Fatalf("api_call allocated %d MB for a 100 KB answer", mb)
		}
	}
}
