package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// serverExe is agentsecrets-server as the harness built it, beside binary.
func serverExe() string { return filepath.Join(filepath.Dir(binary), "agentsecrets-server") }

// runCmdIn runs exe with args, stdin and only the environment given; it
// returns the exit status and the JSON object on stdout.
func runCmdIn(t *testing.T, stdin, exe string, environ []string, args ...string) (int, map[string]any) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = environ
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", exe, args, err)
	}
	var m map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil {
		t.Fatalf("%s %v: exit %d, not JSON: %s %s", exe, args, code, out.Bytes(), errb.Bytes())
	}
	return code, m
}

func errorCode(m map[string]any) (code, hint string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	hint, _ = e["hint"].(string)
	return code, hint
}

// TestServerHandOff: `agentsecrets server` becomes agentsecrets-server
// (found beside the executable, through a symlink, or on PATH) with the
// command line as typed but the word "server", --input unread, and says how to install it when
// there is none; its help needs no server.
// The server's own checks answer: plain HTTP off loopback is its usage
// error, so it shows which executable ran.
func TestServerHandOff(t *testing.T) {
	home := t.TempDir()
	base := []string{"AGENTSECRETS_HOME=" + filepath.Join(home, "home"), "HOME=" + home}
	offLoopback := []string{"--json", "server", "--listen", "0.0.0.0:8787"}
	usage := errcode.Lookup(errcode.Usage).Exit

	alone := filepath.Join(t.TempDir(), "agentsecrets")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, data, 0o755); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(t.TempDir(), "agentsecrets")
	if err := os.Symlink(binary, linked); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name, exe string
		stdin     string
		environ   []string
		args      []string
		exit      int
		code      string
		hint      string
	}{
		{"beside", binary, "", base, offLoopback, usage, "usage", "--tls-cert"},
		{"through a symlink", linked, "", base, offLoopback, usage, "usage", "--tls-cert"},
		{"on PATH", alone, "", append([]string{"PATH=" + filepath.Dir(binary)}, base...), offLoopback, usage, "usage", "--tls-cert"},
		{"--input FILE", binary, "", base, []string{"server", "--input", writeJSON(t, `{"listen":"0.0.0.0:8787"}`)}, usage, "usage", "--tls-cert"},
		{"--input -", binary, `{"listen":"0.0.0.0:8787"}`, base, []string{"server", "--input", "-"}, usage, "usage", "--tls-cert"},
		{"a value that is the word server", binary, "", base, []string{"--json", "server", "--tls-cert", "server", "--listen", "0.0.0.0:8787"}, usage, "usage", "both"},
		{"directly", serverExe(), "", base, []string{"--json", "--listen", "0.0.0.0:8787"}, usage, "usage", "--tls-cert"},
		{"none", alone, "", append([]string{"PATH=/usr/bin:/bin"}, base...), offLoopback, errcode.Lookup(errcode.NotFound).Exit, "not_found",
			"go install github.com/agentsecrets/agentsecrets/cmd/agentsecrets-server@latest"},
	} {
		exit, m := runCmdIn(t, c.stdin, c.exe, c.environ, c.args...)
		code, hint := errorCode(m)
		if exit != c.exit || code != c.code || !strings.Contains(hint, c.hint) {
			t.Errorf("%s: exit %d, %v; want exit %d, %s with a hint naming %s", c.name, exit, m, c.exit, c.code, c.hint)
		}
	}
	// Help needs no server.
	help := exec.Command(alone, "server", "--help")
	help.Env = append([]string{"PATH=/usr/bin:/bin"}, base...)
	if out, err := help.Output(); err != nil || !strings.Contains(string(out), "--signup") {
		t.Errorf("server --help without agentsecrets-server: %v\n%s", err, out)
	}
}

func writeJSON(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "input.json")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestServerHandOffIsExec: the process `agentsecrets server` starts is the
// server itself (same PID, no parent left waiting), so a service manager's
// SIGTERM stops it gracefully and its result reaches stdout.
func TestServerHandOffIsExec(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	home := t.TempDir()
	cmd := exec.Command(binary, "server", "--json", "--listen", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(home, "s.db"))
	cmd.Env = []string{"AGENTSECRETS_HOME=" + filepath.Join(home, "home"), "HOME=" + home}
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"msg":"listening"`) {
				listening <- true
			}
		}
		close(listening)
	}()
	select {
	case ok := <-listening:
		if !ok {
			cmd.Wait()
			t.Fatalf("server ended before listening: %s", out.Bytes())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("server did not start")
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/exe")
	if err != nil || filepath.Base(exe) != "agentsecrets-server" {
		t.Errorf("process %d runs %q (%v), want agentsecrets-server", cmd.Process.Pid, exe, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("after SIGTERM: %v", err)
	}
	var res map[string]any
	if json.Unmarshal(out.Bytes(), &res) != nil || res["backend"] != "sqlite" || res["stopped_at"] == nil {
		t.Fatalf("result: %s", out.Bytes())
	}
}
