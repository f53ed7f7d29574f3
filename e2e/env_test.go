package e2e

// `env -- CMD`, value mode, driven through the built binary: only approved
// secrets are injected, nothing starts with a value in argv, the child's
// output is masked however it writes it, signals reach the child, and its
// exit status and stdin pass through.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envVault is a file-backend vault with KEY (approved for env release) and
// OTHER (not approved).
func envVault(t *testing.T) (v *Vault, key, other string) {
	t.Helper()
	v = NewVault(t, "file")
	key, other = randomValue(t, "sk_env_"), randomValue(t, "sk_other_")
	v.RunIn([]byte(key), "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.RunIn([]byte(other), "secrets", "set", "OTHER", "--from-stdin").OK(t)
	v.Run("secrets", "bind", "KEY", "--release", "env", "--passphrase-file", v.AdminFile).OK(t)
	return v, key, other
}

// envCommand is `agentsecrets env ARGS...` as an unstarted process.
func (v *Vault) envCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"env"}, args...)...)
	cmd.Env = v.Env()
	cmd.Dir = v.Dir
	return cmd
}

func TestEnvInjectsOnlyApproved(t *testing.T) {
	v, key, other := envVault(t)
	// The child compares what it got (masking would hide the value from
	// the test too), reading the expected value from a file: in its argv
	// the value would make agentsecrets refuse to start it.
	script := filepath.Join(v.Dir, "check.sh")
	must(t, os.WriteFile(script, []byte("#!/bin/sh\n[ \"$KEY\" = \"$(cat want)\" ] && [ \"$MAPPED\" = \"$KEY\" ] && [ -z \"$OTHER\" ] && echo injected\n"), 0o700))
	must(t, os.WriteFile(filepath.Join(v.Dir, "want"), []byte(key), 0o600))
	r := v.Run("env", "--only", "KEY,MAPPED=KEY", "--", script).OK(t)
	if string(r.Stdout) != "injected\n" {
		t.Fatalf("stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	noValue(t, "env stdout", r.Stdout, key)

	for _, tc := range []struct {
		only, code string
		exit       int
	}{
		{"OTHER", "approval_required", 5},
		{"KEY,OTHER", "approval_required", 5},
		{"MISSING", "not_found", 3},
	} {
		marker := filepath.Join(v.Dir, "started-"+tc.code)
		r := v.Run("env", "--only", tc.only, "--", "sh", "-c", "touch "+marker)
		e := r.ErrorCode(t, tc.code, tc.exit)
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("--only %s: the command ran", tc.only)
		}
		if tc.code == "approval_required" && !strings.Contains(e["hint"].(string), "agentsecrets secrets bind OTHER --release env") {
			t.Errorf("hint does not say what a human runs: %v", e["hint"])
		}
		noValue(t, "env error", r.Stdout, other)
	}
	// Withdrawing the release stops injection at once, without approval.
	v.Run("secrets", "unbind", "KEY", "--release", "env").OK(t)
	v.Run("env", "--only", "KEY", "--", "true").ErrorCode(t, "approval_required", 5)
}

func TestEnvRefusesValueInArgv(t *testing.T) {
	v, key, _ := envVault(t)
	for name, form := range encodings(key) {
		marker := filepath.Join(v.Dir, "started")
		r := v.Run("env", "--only", "KEY", "--", "sh", "-c", "touch "+marker, "sh", "--token="+form)
		r.ErrorCode(t, "denied", 4)
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%s form in argv: the command ran", name)
		}
		for _, out := range [][]byte{r.Stdout, r.Stderr} {
			noValue(t, "argv refusal", out, key)
		}
	}
}

// maskChild writes every encoding of $KEY to stdout and stderr a few bytes
// at a time, flushing each piece, so echoes straddle the reads of the pipe.
const maskChild = `
import base64, binascii, json, os, sys, time, urllib.parse
v = os.environ["KEY"].encode()
forms = [v, base64.b64encode(v), base64.b64encode(v).rstrip(b"="), base64.urlsafe_b64encode(v),
         base64.urlsafe_b64encode(v).rstrip(b"="), binascii.hexlify(v), binascii.hexlify(v).upper(),
         urllib.parse.quote(v, safe="").encode(), json.dumps(v.decode())[1:-1].encode()]
for out in (sys.stdout.buffer, sys.stderr.buffer):
    for f in forms:
        out.write(b"<")
        for i in range(0, len(f), 3):
            out.write(f[i:i+3]); out.flush(); time.sleep(0.002)
        out.write(b">\n"); out.flush()
`

func TestEnvMasksOutput(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 writes the encoded echoes; not installed")
	}
	v, key, _ := envVault(t)
	r := v.Run("env", "--only", "KEY", "--", py, "-c", maskChild)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
	}
	want := strings.Repeat("<[REDACTED]>\n", 9)
	if string(r.Stdout) != want || string(r.Stderr) != want {
		t.Fatalf("masked output:\nstdout %s\nstderr %s", r.Stdout, r.Stderr)
	}
	for _, out := range [][]byte{r.Stdout, r.Stderr} {
		noValue(t, "masked env output", out, key)
	}

	// Unmasked output needs the admin passphrase.
	r = v.Run("env", "--only", "KEY", "--no-masking", "--", py, "-c", maskChild)
	r.ErrorCode(t, "approval_required", 5)
	r = v.Run("env", "--only", "KEY", "--no-masking", "--passphrase-file", v.AdminFile, "--", "sh", "-c", `printf %s "$KEY" | wc -c`).OK(t)
	if strings.TrimSpace(string(r.Stdout)) != strconv.Itoa(len(key)) {
		t.Fatalf("unmasked run: %q", r.Stdout)
	}
}

// TestEnvInteractiveOutputFlows: masking must not hold back output that
// cannot be part of an echo, so a prompt shows before the child reads.
func TestEnvInteractiveOutputFlows(t *testing.T) {
	v, _, _ := envVault(t)
	cmd := v.envCommand("--only", "KEY", "--", "sh", "-c", `printf 'name? '; read name; echo "hello $name"`)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	defer cmd.Process.Kill()
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := stdout.Read(buf)
		got <- string(buf[:n])
	}()
	select {
	case s := <-got:
		if s != "name? " {
			t.Fatalf("first output %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the prompt was held back")
	}
	stdin.Write([]byte("world\n"))
	stdin.Close()
	rest := new(bytes.Buffer)
	rest.ReadFrom(stdout)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if rest.String() != "hello world\n" {
		t.Fatalf("after stdin: %q", rest)
	}
}

func TestEnvExitCodesAndStdin(t *testing.T) {
	v, _, _ := envVault(t)
	for _, tc := range []struct {
		script string
		exit   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"exit 255", 255},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	} {
		r := v.Run("env", "--only", "KEY", "--", "sh", "-c", tc.script)
		if r.Code != tc.exit || len(r.Stdout) != 0 {
			t.Errorf("%s: exit %d (want %d), stdout %q", tc.script, r.Code, tc.exit, r.Stdout)
		}
	}
	in := bytes.Repeat([]byte("stdin passes through\n"), 10000)
	r := v.RunIn(in, "env", "--only", "KEY", "--", "cat").OK(t)
	if !bytes.Equal(r.Stdout, in) {
		t.Fatalf("cat got %d bytes back of %d", len(r.Stdout), len(in))
	}
}

func TestEnvForwardsSignals(t *testing.T) {
	v, _, _ := envVault(t)
	for i, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2} {
		name := strings.TrimPrefix(strings.ToUpper(sigName(sig)), "SIG")
		cmd := v.envCommand("--only", "KEY", "--", "sh", "-c",
			`trap 'echo got-`+name+`; exit `+strconv.Itoa(10+i)+`' `+name+`; echo ready; while :; do sleep 0.05; done`)
		stdout, _ := cmd.StdoutPipe()
		must(t, cmd.Start())
		br := bufio.NewReader(stdout)
		if line, err := br.ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Process.Kill()
			t.Fatalf("%s: child did not start: %q %v", name, line, err)
		}
		must(t, cmd.Process.Signal(sig))
		line, _ := br.ReadString('\n')
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if line != "got-"+name+"\n" || code != 10+i {
			t.Errorf("%s: child said %q, agentsecrets exited %d (%v); want the child's trap and exit %d", name, line, code, err, 10+i)
		}
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGQUIT:
		return "QUIT"
	case syscall.SIGUSR1:
		return "USR1"
	}
	return "USR2"
}

func TestEnvAuditAndProxyVariables(t *testing.T) {
	v, key, _ := envVault(t)
	addr, _ := startProxy(t, v)
	r := v.Run("env", "--only", "KEY", "--", "sh", "-c", `echo "$AGENTSECRETS_PROXY_URL"; cat "$AGENTSECRETS_PROXY_TOKEN_FILE" >/dev/null && echo token-readable; exit 4`)
	if r.Code != 4 || string(r.Stdout) != "http://"+addr+"\ntoken-readable\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	v.Run("env", "--only", "OTHER", "--", "true").ErrorCode(t, "approval_required", 5)
	v.Run("env", "--only", "KEY", "--", "sh", "-c", "true", key).ErrorCode(t, "denied", 4)

	logs := v.Run("proxy", "logs", "--secret", "KEY").OK(t)
	noValue(t, "proxy logs", logs.Stdout, key)
	var res struct {
		Records []map[string]any `json:"records"`
	}
	must(t, json.Unmarshal(logs.Stdout, &res))
	var envRecs []map[string]any
	for _, rec := range res.Records {
		if rec["front_end"] == "env" {
			envRecs = append(envRecs, rec)
		}
	}
	if len(envRecs) != 2 {
		t.Fatalf("want 2 env records for KEY, got %d: %s", len(envRecs), logs.Stdout)
	}
	if r := envRecs[0]; r["decision"] != "allowed" || r["command"] != "sh" || r["exit_code"] != 4.0 {
		t.Errorf("run record: %v", r)
	}
	if r := envRecs[1]; r["decision"] != "blocked" || r["reason"] != "value_in_argv" || r["command"] != nil {
		t.Errorf("argv refusal record: %v", r)
	}
	blocked := v.Run("proxy", "logs", "--secret", "OTHER", "--decision", "blocked").OK(t)
	if !strings.Contains(string(blocked.Stdout), `"reason":"not_released"`) {
		t.Errorf("unapproved env run not audited: %s", blocked.Stdout)
	}
	v.Run("audit", "verify").OK(t)
}

// TestPTYReleaseApproval: the release and an unmasked run are approved by
// the passphrase typed on the controlling terminal, which says what is
// being approved; a wrong one changes nothing.
func TestPTYReleaseApproval(t *testing.T) {
	v := NewVault(t, "file")
	key := randomValue(t, "sk_pty_")
	v.RunIn([]byte(key), "secrets", "set", "KEY", "--from-stdin").OK(t)

	r, _ := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", "not the admin passphrase"}},
		"secrets", "bind", "KEY", "--release", "env")
	r.ErrorCode(t, "denied", 4)
	v.Run("env", "--only", "KEY", "--", "true").ErrorCode(t, "approval_required", 5)

	r, tty := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", adminPassphrase}},
		"secrets", "bind", "KEY", "--release", "env")
	if m := r.OK(t).JSON(t); m["approved"] != true || m["action"] != "added" {
		t.Errorf("release with the right passphrase: %s", r.Stdout)
	}
	if !strings.Contains(tty, "approve releasing the VALUE of default/default/KEY") {
		t.Errorf("the terminal does not say what is being approved: %q", tty)
	}

	r, tty = ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", adminPassphrase}},
		"env", "--only", "KEY", "--no-masking", "--", "sh", "-c", `printf %s "$KEY" | wc -c`)
	if r.Code != 0 || strings.TrimSpace(string(r.Stdout)) != strconv.Itoa(len(key)) {
		t.Fatalf("unmasked run: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(tty, "UNMASKED") {
		t.Errorf("the terminal does not say the output is unmasked: %q", tty)
	}
	noValue(t, "terminal", []byte(tty), key)
}

// TestEnvClosedStdout: with its stdout closed (`| head`), agentsecrets
// neither dies unaudited nor leaves the child blocked: the child gets the
// broken pipe it would get without masking in between.
func TestEnvClosedStdout(t *testing.T) {
	v, _, _ := envVault(t)
	cmd := v.envCommand("--only", "KEY", "--", "sh", "-c", "while :; do echo yes; done")
	stdout, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	buf := make([]byte, 16)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}
	stdout.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 128+int(syscall.SIGPIPE) {
			t.Fatalf("exit: %v, want %d (the child's SIGPIPE passed through)", err, 128+int(syscall.SIGPIPE))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child kept running with nobody reading its output")
	}
	logs := v.Run("proxy", "logs", "--secret", "KEY", "--last", "1").OK(t)
	if !strings.Contains(string(logs.Stdout), `"command":"sh","exit_code":141`) {
		t.Fatalf("the run was not audited: %s", logs.Stdout)
	}
}
