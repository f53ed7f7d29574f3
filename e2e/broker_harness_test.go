package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// viaBroker reports whether this run sends every vault's commands through
// a broker daemon (AGENTSECRETS_E2E_BROKER=1, a second pass of
// scripts/test): the same tests then check that the daemon's front end
// keeps the contract the in-process one does.
func viaBroker() bool { return os.Getenv("AGENTSECRETS_E2E_BROKER") == "1" }

// brokerDaemon is one real `broker run` process under this test's own
// user, with a temp state directory and socket.
type brokerDaemon struct {
	t      testing.TB
	State  string
	Socket string
	users  []string
	cmd    *exec.Cmd
	done   chan struct{}
	// runs counts starts; each run logs to its own file.
	runs   int
	logDir string
}

// newBrokerDaemon starts a daemon for users (NAME or UID, with optional
// =GRANTS) on state ("": a new temp dir) and stops it when the test ends.
// The socket lives in a short temp dir: a unix socket path has at most
// 107 bytes, and t.TempDir's can be longer.
func newBrokerDaemon(t testing.TB, state string, users ...string) *brokerDaemon {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "asb")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if state == "" {
		state = filepath.Join(t.TempDir(), "state")
	}
	d := &brokerDaemon{t: t, State: state, Socket: filepath.Join(sockDir, "broker.sock"), users: users, logDir: t.TempDir()}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			b, _ := os.ReadFile(d.logPath(d.runs))
			t.Logf("broker log:\n%s", bytes.TrimSpace(b))
		}
	})
	return d
}

// startBrokerDaemon runs the daemon for this user with grants (e.g.
// "=default/default"; "": everything).
func startBrokerDaemon(t testing.TB, grants string) *brokerDaemon {
	t.Helper()
	return newBrokerDaemon(t, "", strconv.Itoa(os.Getuid())+grants)
}

// startBroker runs the daemon for users (NAME[=GRANTS]).
func startBroker(t testing.TB, users ...string) *brokerDaemon {
	t.Helper()
	return newBrokerDaemon(t, "", users...)
}

func (d *brokerDaemon) start() {
	d.t.Helper()
	args := []string{"broker", "run", "--state", d.State, "--socket", d.Socket}
	for _, u := range d.users {
		args = append(args, "--user", u)
	}
	d.cmd = exec.Command(binary, args...)
	d.cmd.Env = []string{"AGENTSECRETS_BROKER=none", "PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(d.State)}
	d.runs++
	logf, err := os.Create(d.logPath(d.runs))
	must(d.t, err)
	defer logf.Close()
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	must(d.t, d.cmd.Start())
	done := make(chan struct{})
	d.done = done
	go func(cmd *exec.Cmd) { cmd.Wait(); close(done) }(d.cmd)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if c, err := net.Dial("unix", d.Socket); err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b, _ := os.ReadFile(d.logPath(d.runs))
			d.t.Fatalf("the broker exited at start:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("the broker did not listen on %s", d.Socket)
}

func (d *brokerDaemon) logPath(run int) string {
	return filepath.Join(d.logDir, fmt.Sprintf("daemon-%d.log", run))
}

// log is the current run's log.
func (d *brokerDaemon) log() []byte {
	b, _ := os.ReadFile(d.logPath(d.runs))
	return b
}

// logged reports whether the current run's log has a line containing s.
func (d *brokerDaemon) logged(s string) bool { return bytes.Contains(d.log(), []byte(s)) }

// stop ends the daemon as its service manager would and waits.
func (d *brokerDaemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	d.cmd = nil
}

// client is a Vault whose commands go to the daemon (its own home holds
// nothing of the broker's); nothing is initialised.
func (d *brokerDaemon) client(t *testing.T) *Vault {
	t.Helper()
	root := t.TempDir()
	v := &Vault{t: t, Home: filepath.Join(root, "home"), Dir: filepath.Join(root, "work"),
		AdminFile: filepath.Join(root, "admin.pass"), VaultFile: filepath.Join(root, "vault.pass"), Backend: "file",
		ExtraEnv: []string{"AGENTSECRETS_BROKER=unix:" + d.Socket}}
	must(t, os.MkdirAll(v.Dir, 0o755))
	must(t, os.WriteFile(v.AdminFile, []byte(adminPassphrase+"\n"), 0o600))
	must(t, os.WriteFile(v.VaultFile, []byte(vaultPassphrase+"\n"), 0o600))
	return v
}
