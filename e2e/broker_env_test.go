package e2e

// `env -- CMD` with a broker daemon (issue 12): the daemon checks the
// release flags and the approval of --no-masking and writes the audit
// record; the child starts on the client's side, as the client's user, in
// its directory, with its environment, its output masked there. The daemon
// (`broker run` as this same user, on a temp --state and --socket) starts
// no process at all.

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// brokerEnvVault is envVault through a daemon: the client's home holds no
// vault; KEY (approved for env release) and OTHER (not approved) live in
// the daemon's. The returned value is KEY's.
func brokerEnvVault(t *testing.T, key []byte) (*Vault, *brokerDaemon) {
	t.Helper()
	d := startBrokerDaemon(t, "")
	v := d.client(t)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	v.RunIn(key, "secrets", "set", "KEY", "--from-stdin").OK(t)
	v.RunIn([]byte(randomValue(t, "sk_other_")), "secrets", "set", "OTHER", "--from-stdin").OK(t)
	v.Run("secrets", "bind", "KEY", "--release", "env", "--passphrase-file", v.AdminFile).OK(t)
	if _, err := os.Stat(filepath.Join(v.Home, "vault.enc")); err == nil {
		t.Fatal("the client's home has a vault: the commands did not go through the daemon")
	}
	return v, d
}

// envRecords are the audit records of env runs of KEY, read through the
// daemon.
func envRecords(t *testing.T, v *Vault) []map[string]any {
	t.Helper()
	logs := v.Run("proxy", "logs", "--secret", "KEY").OK(t)
	var res struct {
		Records []map[string]any `json:"records"`
	}
	must(t, json.Unmarshal(logs.Stdout, &res))
	var out []map[string]any
	for _, rec := range res.Records {
		if rec["front_end"] == "env" {
			out = append(out, rec)
		}
	}
	return out
}

// TestBrokerEnvChildOnClientSide: the child is the client's: its parent is
// the client process, it runs in the client's directory with a variable
// only the client's environment has, the daemon has no child meanwhile,
// and the audit record names the client's uid and pid.
func TestBrokerEnvChildOnClientSide(t *testing.T) {
	key := randomValue(t, "sk_benv_")
	v, d := brokerEnvVault(t, []byte(key))
	// The child compares what it got (masking would hide the value from
	// the test), reading the expected value from a file.
	must(t, os.WriteFile(filepath.Join(v.Dir, "want"), []byte(key), 0o600))
	script := filepath.Join(v.Dir, "check.sh")
	must(t, os.WriteFile(script, []byte(`#!/bin/sh
echo "ppid=$PPID"
echo "cwd=$(pwd -P)"
echo "only=$CLIENT_ONLY"
echo "daemon-children=$(cat /proc/$DAEMON_PID/task/*/children 2>/dev/null | tr -d ' \n')"
[ "$KEY" = "$(cat want)" ] && [ "$MAPPED" = "$KEY" ] && [ -z "$OTHER" ] && echo injected
exit 7
`), 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "CLIENT_ONLY=from-the-client", "DAEMON_PID="+strconv.Itoa(d.cmd.Process.Pid))
	cmd := v.envCommand("--only", "KEY,MAPPED=KEY", "--", script)
	r := capture(t, cmd, cmd.Args)
	client := cmd.Process.Pid
	cwd, err := filepath.EvalSymlinks(v.Dir)
	must(t, err)
	want := "ppid=" + strconv.Itoa(client) + "\ncwd=" + cwd + "\nonly=from-the-client\ndaemon-children=\ninjected\n"
	if r.Code != 7 || string(r.Stdout) != want {
		t.Fatalf("exit %d (want 7)\nstdout %q\nwant   %q\nstderr %s\ndaemon log %s", r.Code, r.Stdout, want, r.Stderr, d.log())
	}
	noValue(t, "env stdout", r.Stdout, key)

	recs := envRecords(t, v)
	if len(recs) != 1 {
		t.Fatalf("want 1 env record, got %d: %v", len(recs), recs)
	}
	rec := recs[0]
	if rec["decision"] != "allowed" || rec["command"] != "check.sh" || rec["exit_code"] != 7.0 ||
		rec["client_uid"] != strconv.Itoa(os.Getuid()) || rec["client_pid"] != float64(client) {
		t.Fatalf("env record %v, want allowed, check.sh, exit 7, client uid %d pid %d", rec, os.Getuid(), client)
	}

	// Unapproved and unknown secrets are refused by the daemon before
	// anything starts.
	for _, tc := range []struct {
		only, code string
		exit       int
	}{{"OTHER", "approval_required", 5}, {"MISSING", "not_found", 3}} {
		marker := filepath.Join(v.Dir, "started-"+tc.code)
		v.Run("env", "--only", tc.only, "--", "sh", "-c", "touch "+marker).ErrorCode(t, tc.code, tc.exit)
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("--only %s: the command ran", tc.only)
		}
	}
	v.Run("env", "--only", "KEY", "--", "no-such-program-anywhere").ErrorCode(t, "not_found", 3)
}

// TestBrokerEnvCanary: the child prints the value in every encoding, on
// stdout and stderr, split across writes; the client's masking replaces
// all of it, and no output, daemon log line, audit record or file (the
// client's home and directory, the daemon's state) holds the value in any
// encoding. --no-masking needs the approval, which the daemon checks.
func TestBrokerEnvCanary(t *testing.T) {
	c := &canaryRun{t: t}
	val := c.canary("benv", `+/=<&>"\ é`)
	v, d := brokerEnvVault(t, val)
	c.v, c.root = v, filepath.Dir(v.Home)

	var forms bytes.Buffer
	for _, e := range canaryEncodings(val) {
		forms.WriteString(e.name + ": " + string(e.data) + "\n")
	}
	c.inputFile("forms.txt", forms.Bytes())
	// A program named by a relative path is found where the client is.
	c.inputFile("leak.sh", []byte("#!/bin/sh\nprintf '%s\\n' \"$KEY\"; cat \"$1\"; cat \"$1\" >&2; env\n"))
	must(t, os.Chmod(filepath.Join(v.Dir, "leak.sh"), 0o700))
	r := c.run("env", "--only", "KEY", "--", "./leak.sh", "forms.txt")
	if r.Code != 0 || !bytes.Contains(r.Stdout, []byte("[REDACTED]")) || !bytes.Contains(r.Stderr, []byte("[REDACTED]")) {
		t.Errorf("masked run: exit %d\nstdout %.300s\nstderr %.300s", r.Code, r.Stdout, r.Stderr)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		r := c.run("env", "--only", "KEY", "--", py, "-c", maskChild)
		want := strings.Repeat("<[REDACTED]>\n", 9)
		if r.Code != 0 || string(r.Stdout) != want || string(r.Stderr) != want {
			t.Errorf("split echoes: exit %d\nstdout %s\nstderr %s", r.Code, r.Stdout, r.Stderr)
		}
	}
	// A value in argv is refused by the daemon, in every encoding.
	for _, e := range canaryEncodings(val) {
		c.expectErr(c.run("env", "--only", "KEY", "--", "sh", "-c", "true", "sh", "--x="+string(e.data)), "denied", 4)
	}

	// Unmasked output: refused without the approval (nothing starts),
	// run with it.
	marker := filepath.Join(v.Dir, "started-unmasked")
	c.expectErr(c.run("env", "--only", "KEY", "--no-masking", "--", "sh", "-c", "touch "+marker), "approval_required", 5)
	if _, err := os.Stat(marker); err == nil {
		t.Error("--no-masking without approval: the command ran")
	}
	r = c.run("env", "--only", "KEY", "--no-masking", "--passphrase-file", v.AdminFile, "--", "sh", "-c", `printf %s "$KEY" | wc -c`)
	if r.Code != 0 || strings.TrimSpace(string(r.Stdout)) != strconv.Itoa(len(val)) {
		t.Errorf("approved unmasked run: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	c.expectOK(c.run("proxy", "logs", "--last", "0"))
	c.expectOK(c.run("audit", "verify"))
	c.removeInputs()
	for _, r := range c.outputs {
		c.scan("stdout of "+c.describe(r.Args), r.Stdout)
		c.scan("stderr of "+c.describe(r.Args), r.Stderr)
	}
	c.scan("the daemon's log", d.log())
	// Every file under the test's root: the client's home and directory,
	// the daemon's state (audit.log, index.json, vault.enc: ciphertext).
	seen := map[string]bool{}
	for _, root := range []string{c.root, filepath.Dir(d.State)} {
		must(t, filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil || !de.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			seen[filepath.ToSlash(rel)] = true
			c.scan("file "+rel, b)
			return nil
		}))
	}
	for _, w := range []string{"state/audit.log", "state/index.json", "state/vault.enc"} {
		if !seen[w] {
			t.Errorf("the file scan did not see %s (saw %v)", w, seen)
		}
	}
}

// TestBrokerEnvApprovalOnTerminal: the approval of an unmasked run is
// typed on the client's terminal, which says what is being approved, and
// checked by the daemon; a wrong passphrase starts nothing.
func TestBrokerEnvApprovalOnTerminal(t *testing.T) {
	key := randomValue(t, "sk_benv_")
	v, _ := brokerEnvVault(t, []byte(key))
	marker := filepath.Join(v.Dir, "started")
	r, _ := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", "not the admin passphrase"}},
		"env", "--only", "KEY", "--no-masking", "--", "sh", "-c", "touch "+marker)
	r.ErrorCode(t, "denied", 4)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a wrong passphrase: the command ran")
	}
	// The program is named relative to the client's directory: it runs
	// there, not in the daemon.
	must(t, os.WriteFile(filepath.Join(v.Dir, "count.sh"), []byte("#!/bin/sh\nprintf %s \"$KEY\" | wc -c\n"), 0o700))
	r, tty := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Admin passphrase:", adminPassphrase}},
		"env", "--only", "KEY", "--no-masking", "--", "./count.sh")
	if r.Code != 0 || strings.TrimSpace(string(r.Stdout)) != strconv.Itoa(len(key)) {
		t.Fatalf("unmasked run: exit %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(tty, "UNMASKED") {
		t.Errorf("the terminal does not say the output is unmasked: %q", tty)
	}
	noValue(t, "terminal", []byte(tty), key)
}
