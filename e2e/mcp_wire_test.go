package e2e

// Malformed JSON-RPC against the built binary: over raw stdio (no SDK
// client, which would never send such bytes) and over --http. Every bad
// message is answered with a JSON-RPC error and the session goes on.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mcpWireCase is one malformed message and the JSON-RPC error it gets;
// code 0 means no answer (a blank line).
type mcpWireCase struct {
	name string
	line []byte
	code float64
	id   any // the id the error echoes; nil for null
}

func mcpWireCases(canary string) []mcpWireCase {
	deep := func(n int) []byte {
		return []byte(`{"jsonrpc":"2.0","id":90,"method":"ping","params":{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}}`)
	}
	return []mcpWireCase{
		{"garbage", []byte("hello world " + canary), -32700, nil},
		{"half JSON", []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"api_call"`), -32700, nil},
		{"binary", []byte("\x00\xff\xfe\x01{\x80}"), -32700, nil},
		{"invalid UTF-8 in a string", []byte("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"p\xffing\"}"), -32700, nil},
		{"lone brace", []byte("{"), -32700, nil},
		{"batch", []byte(`[{"jsonrpc":"2.0","id":10,"method":"ping"}]`), -32600, nil},
		{"empty batch", []byte(`[]`), -32600, nil},
		{"batch of garbage", []byte(`[1,2,3]`), -32600, nil},
		{"bare number", []byte(`42`), -32600, nil},
		{"bare string", []byte(`"` + canary + `"`), -32600, nil},
		{"null", []byte(`null`), -32600, nil},
		{"bad version", []byte(`{"jsonrpc":"1.0","id":11,"method":"ping"}`), -32600, float64(11)},
		{"no version", []byte(`{"id":12,"method":"ping"}`), -32600, float64(12)},
		{"numeric version", []byte(`{"jsonrpc":2.0,"id":13,"method":"ping"}`), -32600, float64(13)},
		{"object id", []byte(`{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`), -32600, nil},
		{"array id", []byte(`{"jsonrpc":"2.0","id":[1],"method":"ping"}`), -32600, nil},
		{"bool id", []byte(`{"jsonrpc":"2.0","id":true,"method":"ping"}`), -32600, nil},
		{"fractional id", []byte(`{"jsonrpc":"2.0","id":1.5,"method":"ping"}`), -32600, nil},
		{"huge id", []byte(`{"jsonrpc":"2.0","id":1e300,"method":"ping"}`), -32600, nil},
		{"duplicate id, last an object", []byte(`{"jsonrpc":"2.0","id":14,"id":{},"method":"ping"}`), -32600, nil},
		{"keys in other case", []byte(`{"JSONRPC":"2.0","ID":15,"METHOD":"ping"}`), -32600, nil},
		{"method not a string", []byte(`{"jsonrpc":"2.0","id":16,"method":5}`), -32600, float64(16)},
		{"params a string", []byte(`{"jsonrpc":"2.0","id":17,"method":"ping","params":"x"}`), -32600, float64(17)},
		{"response without id", []byte(`{"jsonrpc":"2.0","result":{}}`), -32600, nil},
		{"response with result and error", []byte(`{"jsonrpc":"2.0","id":18,"result":{},"error":{"code":1,"message":"x"}}`), -32600, float64(18)},
		{"response with a bad error", []byte(`{"jsonrpc":"2.0","id":19,"error":"x"}`), -32600, float64(19)},
		{"nested 100 deep", deep(100), -32600, nil},
		{"nested 5000 deep", deep(5000), -32600, nil},
		{"5 MiB line", []byte(`{"jsonrpc":"2.0","id":20,"method":"ping","params":{"pad":"` + strings.Repeat("a", 5<<20) + `"}}`), -32600, nil},
		{"20 MiB line, past the SDK's own cap", bytes.Repeat([]byte("x"), 20<<20), -32600, nil},
		{"blank line", []byte("   \r"), 0, nil},
	}
}

// TestMcpMalformedStdio: each malformed line is answered with the right
// JSON-RPC error, and a ping after it is answered too; stdout carries
// nothing but JSON-RPC messages, the process exits 0 when stdin closes,
// and a secret the session used never appears in any output.
func TestMcpMalformedStdio(t *testing.T) {
	canary := string(newCanary(t, "wire", "+/="))
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"auth":%q}`, r.Header.Get("Authorization"))
	})
	v := mcpVault(t, "file", up, map[string]string{"KEY": canary})
	cmd := exec.Command(binary, "mcp", "serve")
	cmd.Env, cmd.Dir = v.Env(), "/"
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdoutPipe, err := cmd.StdoutPipe()
	must(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var stdout bytes.Buffer
	lines := make(chan map[string]any, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(io.TeeReader(stdoutPipe, &stdout))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil || m["jsonrpc"] != "2.0" {
				t.Errorf("stdout line is not a JSON-RPC message: %.200q", sc.Text())
			}
			lines <- m
		}
	}()
	send := func(b []byte) {
		t.Helper()
		if _, err := stdin.Write(append(append([]byte(nil), b...), '\n')); err != nil {
			t.Fatalf("write to mcp serve: %v\nstderr: %s", err, stderr.Bytes())
		}
	}
	next := func(what string) map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("%s: mcp serve closed stdout (exit %v)\nstderr: %s", what, cmd.Wait(), stderr.Bytes())
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer within 30s\nstderr: %s", what, stderr.Bytes())
		}
		return nil
	}
	send([]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`))
	next("initialize")
	send([]byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`))
	// The session has the value in hand (cached by the broker) before
	// the malformed lines arrive.
	send([]byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"api_call","arguments":{"url":"` + up.URL + `/v1","injections":{"bearer":"KEY"}}}}`))
	if m := next("api_call"); m["result"] == nil {
		t.Fatalf("api_call: %v", m)
	}
	for i, c := range mcpWireCases(canary) {
		send(c.line)
		ping := 1000 + i
		send([]byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, ping)))
		m := next(c.name)
		if c.code != 0 {
			e, _ := m["error"].(map[string]any)
			if e == nil || e["code"] != c.code || m["id"] != c.id {
				t.Errorf("%s: answer %v, want error %v with id %v", c.name, m, c.code, c.id)
			} else {
				m = next(c.name + ", then ping")
			}
		}
		if m["id"] != float64(ping) || m["result"] == nil {
			t.Errorf("%s: ping after it answered %v", c.name, m)
		}
	}
	stdin.Close()
	for range lines {
		t.Errorf("unexpected output after the last ping")
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("mcp serve exited %v after stdin closed\nstderr: %s", err, stderr.Bytes())
	}
	assertNoLeak(t, "stdout", stdout.Bytes(), [][]byte{[]byte(canary)})
	assertNoLeak(t, "stderr", stderr.Bytes(), [][]byte{[]byte(canary)})
}

// TestMcpMalformedHTTP: the same messages POSTed to --http get a JSON-RPC
// error (400, or 413 past the size cap), and the server goes on serving.
func TestMcpMalformedHTTP(t *testing.T) {
	canary := string(newCanary(t, "wirehttp", "+/="))
	v := mcpVault(t, "file", nil, map[string]string{"KEY": canary})
	h := startMCPHTTP(t, v)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	var seen bytes.Buffer
	for _, c := range mcpWireCases(canary) {
		if c.code == 0 {
			continue
		}
		req, _ := http.NewRequest("POST", h.URL, bytes.NewReader(c.line))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+h.Token)
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		seen.Write(b)
		var m map[string]any
		json.Unmarshal(b, &m)
		e, _ := m["error"].(map[string]any)
		want := http.StatusBadRequest
		if len(c.line) > 4<<20 {
			want = http.StatusRequestEntityTooLarge
		}
		if resp.StatusCode != want || e == nil || e["code"] != c.code || m["jsonrpc"] != "2.0" {
			t.Errorf("%s: HTTP %d %.300s, want %d and JSON-RPC error %v", c.name, resp.StatusCode, b, want, c.code)
		}
	}
	cs := h.connect(t, "")
	callTool(t, cs, "status", nil).ok(t, "status")
	cs.Close()
	h.stop(t)
	assertNoLeak(t, "HTTP answers", seen.Bytes(), [][]byte{[]byte(canary)})
	assertNoLeak(t, "stderr", h.stderr.Bytes(), [][]byte{[]byte(canary)})
}

// TestMcpGenerateNeverReplaces: secrets_generate creates; it cannot
// replace a value a human stored, whether the agent asks for overwrite or
// not, and the conflict tells the human the command that would.
func TestMcpGenerateNeverReplaces(t *testing.T) {
	canary := newCanary(t, "human", "+/=")
	v := mcpVault(t, "file", nil, map[string]string{"HUMAN_KEY": string(canary)})
	listed := func() string {
		t.Helper()
		r := v.Run("secrets", "list")
		r.OK(t)
		return string(r.Stdout)
	}
	before := listed()
	s := startMCP(t, v, "", "")
	var out bytes.Buffer
	for _, c := range []struct {
		args map[string]any
		code string
		hint string
	}{
		{map[string]any{"name": "HUMAN_KEY"}, "conflict", "agentsecrets secrets generate HUMAN_KEY --overwrite"},
		{map[string]any{"name": "HUMAN_KEY", "length": 64, "charset": "hex"}, "conflict", "agentsecrets secrets generate HUMAN_KEY --overwrite"},
		{map[string]any{"name": "HUMAN_KEY", "overwrite": true}, "usage", "--overwrite"},
		{map[string]any{"name": "NEW_KEY", "overwrite": false}, "usage", "--overwrite"},
	} {
		r := callTool(t, s.session, "secrets_generate", c.args)
		out.WriteString(r.Text)
		r.code(t, fmt.Sprintf("secrets_generate %v", c.args), c.code)
		if hint, _ := r.Error["hint"].(string); !strings.Contains(hint, c.hint) {
			t.Errorf("secrets_generate %v: hint %q does not name %q", c.args, hint, c.hint)
		}
	}
	r := callTool(t, s.session, "secrets_generate", map[string]any{"name": "NEW_KEY"})
	out.WriteString(r.Text)
	r.ok(t, "secrets_generate NEW_KEY")
	after := listed()
	// HUMAN_KEY's entry (version, fingerprint) is unchanged: only NEW_KEY was added.
	var b, a struct {
		Secrets []map[string]any `json:"secrets"`
	}
	must(t, json.Unmarshal([]byte(before), &b))
	must(t, json.Unmarshal([]byte(after), &a))
	find := func(list []map[string]any, name string) map[string]any {
		for _, s := range list {
			if s["name"] == name {
				return s
			}
		}
		return nil
	}
	if hb, ha := find(b.Secrets, "HUMAN_KEY"), find(a.Secrets, "HUMAN_KEY"); hb == nil || ha == nil || hb["version"] != ha["version"] || hb["fingerprint"] != ha["fingerprint"] {
		t.Errorf("HUMAN_KEY changed: before %v, after %v", hb, ha)
	}
	if find(a.Secrets, "NEW_KEY") == nil {
		t.Errorf("NEW_KEY was not created: %s", after)
	}
	assertNoLeak(t, "tool results", out.Bytes(), [][]byte{canary})
	assertNoLeak(t, "stderr", s.stderr.Bytes(), [][]byte{canary})
}

// TestMcpFinalScan: an upstream that echoes the injected value with every
// character JSON-\u-escaped (a form a client decodes back to the value)
// gets nothing out: the result is either redacted or withheld as an
// internal error, and no form of the value is in what the client decodes.
func TestMcpFinalScan(t *testing.T) {
	canary := newCanary(t, "final", "+/=")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		var esc strings.Builder
		for _, c := range []byte(tok) {
			fmt.Fprintf(&esc, `\u%04x`, c)
		}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/nested":
			// JSON inside a JSON string, as httpbin's "data".
			fmt.Fprintf(w, `{"data":%q}`, `{"echo":"`+esc.String()+`"}`)
		default:
			fmt.Fprintf(w, `{"echo":"%s"}`, esc.String())
		}
	})
	v := mcpVault(t, "file", up, map[string]string{"KEY": string(canary)})
	s := startMCP(t, v, "", "")
	var seen bytes.Buffer
	for _, path := range []string{"/flat", "/nested"} {
		r := callTool(t, s.session, "api_call", map[string]any{"url": up.URL + path, "injections": map[string]string{"bearer": "KEY"}})
		if r.IsError {
			r.code(t, "api_call "+path, "internal")
		}
		seen.WriteString(r.Text + "\n")
		if dec, ok := jsonStrings([]byte(r.Text)); ok {
			seen.Write(dec)
			if dec2, ok := jsonStrings(dec); ok {
				seen.Write(dec2)
			}
		}
	}
	if n := len(up.requests()); n != 2 {
		t.Fatalf("upstream saw %d requests", n)
	}
	assertNoLeak(t, "api_call results, decoded", seen.Bytes(), [][]byte{canary})
	assertNoLeak(t, "stderr", s.stderr.Bytes(), [][]byte{canary})
}
