package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestCallInterruptedAudited: SIGINT or SIGTERM on a `call` whose request
// has reached the upstream (the value went out) ends the process by that
// signal, with nothing printed, as before, but only once the request's
// record is in the log: decision error, reason interrupted. Before, the
// signal ended the process at once and the request had no record.
//
// The value is a random canary: neither the output, nor the log, nor any
// file under the home holds a form of it.
func TestCallInterruptedAudited(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[sig]
			t.Run(backend+"/"+name, func(t *testing.T) { testCallInterrupted(t, backend, sig) })
		}
	}
}

func testCallInterrupted(t *testing.T, backend string, sig syscall.Signal) {
	value := randomValue(t, "sk_interrupt_")
	up, arrived, cancelled := holdingUpstream(t)
	v := NewVault(t, backend)
	v.RunIn([]byte(value), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", v.AdminFile).OK(t)
	v.Run("secrets", "bind", "KEY", up.hostport(), "--surface", "header", "--header-name", "X-Api-Key", "--passphrase-file", v.AdminFile).OK(t)

	cmd := exec.Command(binary, "call", "--url", up.URL+"/slow", "--header", "X-Api-Key=KEY")
	cmd.Env, cmd.Dir = v.Env(), v.Dir
	out, errb := startUntil(t, cmd, arrived)
	interrupt(t, cmd, sig, out, errb)
	select {
	case <-cancelled:
	case <-time.After(20 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	if reqs := up.requests(); len(reqs) != 1 || reqs[0].Header.Get("X-Api-Key") != value {
		t.Fatalf("the upstream did not get the value: %d requests", len(reqs))
	}

	logs := v.Run("proxy", "logs", "--last", "0").OK(t)
	var got struct {
		Records []struct {
			FrontEnd string   `json:"front_end"`
			Path     string   `json:"path"`
			Secrets  []string `json:"secrets"`
			Decision string   `json:"decision"`
			Reason   string   `json:"reason"`
			Code     string   `json:"code"`
		} `json:"records"`
	}
	must(t, json.Unmarshal(logs.Stdout, &got))
	if len(got.Records) != 1 {
		t.Fatalf("%d audit records, want the interrupted call's: %s", len(got.Records), logs.Stdout)
	}
	r := got.Records[0]
	if r.FrontEnd != "call" || r.Path != "/slow" || strings.Join(r.Secrets, ",") != "KEY" || r.Decision != "error" || r.Reason != "interrupted" || r.Code != "unavailable" {
		t.Errorf("the interrupted call's record: %+v", r)
	}

	canaries := [][]byte{[]byte(value)}
	assertNoLeak(t, "the call's stdout and stderr", append(out.Bytes(), errb.Bytes()...), canaries)
	assertNoLeak(t, "proxy logs", logs.Stdout, canaries)
	scanTree(t, v.Home, canaries)
}

// TestMcpCallInterruptedAudited: an api_call that its MCP client cancels
// (notifications/cancelled) once the request has reached the upstream is
// recorded as interrupted, and the upstream request is cancelled; the
// server goes on.
func TestMcpCallInterruptedAudited(t *testing.T) {
	value := randomValue(t, "sk_mcp_interrupt_")
	up, arrived, cancelled := holdingUpstream(t)
	v := mcpVault(t, "file", up, map[string]string{"KEY": value})
	s := startMCP(t, v, "", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan error, 1)
	go func() {
		_, err := s.session.CallTool(ctx, &mcp.CallToolParams{Name: "api_call",
			Arguments: map[string]any{"url": up.URL + "/slow", "header": []string{"X-Api-Key=KEY"}}})
		answered <- err
	}()
	waitFor(t, arrived, "the api_call never reached the upstream")
	cancel()
	waitFor(t, cancelled, "the upstream request was not cancelled")
	if err := <-answered; err == nil {
		t.Error("the cancelled api_call was answered")
	}

	var recs []map[string]any
	for deadline := time.Now().Add(20 * time.Second); len(recs) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no audit record of the cancelled api_call")
		}
		var got struct{ Records []map[string]any }
		must(t, json.Unmarshal(v.Run("proxy", "logs", "--last", "0").OK(t).Stdout, &got))
		recs = got.Records
	}
	if r := recs[0]; len(recs) != 1 || r["front_end"] != "mcp" || r["path"] != "/slow" || r["decision"] != "error" || r["reason"] != "interrupted" {
		t.Errorf("audit records %v, want the api_call's, interrupted", recs)
	}
	// The server goes on: the next call is answered.
	callTool(t, s.session, "api_call", map[string]any{"url": up.URL + "/after", "header": []string{"X-Api-Key=KEY"}}).ok(t, "api_call")
	assertNoLeak(t, "mcp serve's stderr", s.stderr.Bytes(), [][]byte{[]byte(value)})
	scanTree(t, v.Home, [][]byte{[]byte(value)})
}

func waitFor(t *testing.T, c <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(20 * time.Second):
		t.Fatal(failure)
	}
}

// holdingUpstream is an upstream whose /slow never answers: it says when
// a request has arrived (the value is out), then when that request was
// cancelled. Any other path answers {}.
func holdingUpstream(t *testing.T) (up *upstream, arrived, cancelled chan struct{}) {
	arrived, cancelled = make(chan struct{}, 1), make(chan struct{}, 1)
	up = newUpstream(t, func(w http.ResponseWriter, r *http.Request, _ string) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-r.Context().Done()
			cancelled <- struct{}{}
			return
		}
		fmt.Fprint(w, "{}")
	})
	return up, arrived, cancelled
}

// startUntil starts cmd with its output in buffers and returns once
// arrived says its request reached the upstream.
func startUntil(t *testing.T, cmd *exec.Cmd, arrived <-chan struct{}) (out, errb *bytes.Buffer) {
	t.Helper()
	out, errb = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	must(t, cmd.Start())
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the call never reached the upstream")
	}
	return out, errb
}

// interrupt sends sig to the running cmd, and checks that it ends by sig,
// as a local command ends at Ctrl-C, with nothing printed.
func interrupt(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, out, errb *bytes.Buffer) {
	t.Helper()
	must(t, cmd.Process.Signal(sig))
	cmd.Wait()
	if !endedBy(cmd.ProcessState, sig) {
		t.Errorf("the interrupted call did not end by %v: %v", sig, cmd.ProcessState)
	}
	if out.Len() != 0 || errb.Len() != 0 {
		t.Errorf("the interrupted call printed: stdout %q stderr %q", out.Bytes(), errb.Bytes())
	}
}

// endedBy reports whether a process ended by sig, or exited with the
// status a shell gives a death by sig: a shell outlived it, or it was
// started with sig ignored (a background job of a script), so that ending
// itself by sig could only exit with that status.
func endedBy(ps *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return false
	}
	return ws.Signaled() && ws.Signal() == sig || ws.Exited() && ws.ExitStatus() == 128+int(sig)
}
