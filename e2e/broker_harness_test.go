package e2e

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// viaBroker reports whether this run sends every vault's commands through
// a broker daemon (AGENTSECRETS_E2E_BROKER=1, a second pass of
// scripts/test): the same tests then check that the daemon's front end
// keeps the contract the in-process one does.
func viaBroker() bool { return os.Getenv("AGENTSECRETS_E2E_BROKER") == "1" }

// brokerDaemon is one real `agentsecrets broker run` process, started as
// a service manager would (no session bus, no home) and stopped when the
// test ends.
type brokerDaemon struct {
	t      testing.TB
	bin    string
	State  string
	Socket string
	// args follow --state and --socket: --user ..., --as ...
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	// Log is the current run's stderr; each start begins a new one.
	Log *lockedBuffer
}

// runBroker starts bin's daemon on state and socket with args and waits
// until it listens (or refuses this process by the socket's mode).
func runBroker(t testing.TB, bin, state, socket string, args ...string) *brokerDaemon {
	t.Helper()
	d := &brokerDaemon{t: t, bin: bin, State: state, Socket: socket, args: args}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("broker log:\n%s", bytes.TrimSpace(d.log()))
		}
	})
	return d
}

// newBrokerDaemon starts a daemon of this test's binary for users (NAME
// or UID, with optional =GRANTS) on state ("": a new temp dir). The socket
// lives in a short temp dir: a unix socket path has at most 107 bytes, and
// t.TempDir's can be longer.
func newBrokerDaemon(t testing.TB, state string, users ...string) *brokerDaemon {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "asb")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if state == "" {
		state = filepath.Join(t.TempDir(), "state")
	}
	var args []string
	for _, u := range users {
		args = append(args, "--user", u)
	}
	return runBroker(t, binary, state, filepath.Join(sockDir, "broker.sock"), args...)
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
	d.cmd = exec.Command(d.bin, append([]string{"broker", "run", "--state", d.State, "--socket", d.Socket}, d.args...)...)
	d.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "AGENTSECRETS_BROKER=none"}
	d.Log = &lockedBuffer{}
	d.cmd.Stdout, d.cmd.Stderr = d.Log, d.Log
	must(d.t, d.cmd.Start())
	done := make(chan struct{})
	d.done = done
	go func(cmd *exec.Cmd) { cmd.Wait(); close(done) }(d.cmd)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		c, err := net.Dial("unix", d.Socket)
		if err == nil {
			c.Close()
			return
		}
		if errors.Is(err, os.ErrPermission) {
			return // up, and refusing this process by the socket's mode
		}
		select {
		case <-done:
			d.t.Fatalf("the broker exited at start:\n%s", d.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
	d.t.Fatalf("the broker did not listen on %s:\n%s", d.Socket, d.log())
}

// log is the current run's log.
func (d *brokerDaemon) log() []byte { return d.Log.Bytes() }

// logged reports whether the current run's log has a line containing s.
func (d *brokerDaemon) logged(s string) bool { return bytes.Contains(d.log(), []byte(s)) }

// waitLog waits for a line of the log containing want, after the first
// skip bytes (the log before the event).
func (d *brokerDaemon) waitLog(t testing.TB, skip int, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if bytes.Contains(d.log()[skip:], []byte(want)) {
			return
		}
	}
	t.Fatalf("the broker's log has no %q: %s", want, d.log()[skip:])
}

// kill ends the daemon with SIGKILL: no chance to clean up.
func (d *brokerDaemon) kill() {
	d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	d.cmd = nil
}

// restart starts a stopped or killed daemon again on the same state and
// socket.
func (d *brokerDaemon) restart() { d.start() }

// stop ends the daemon as its service manager would and waits.
func (d *brokerDaemon) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
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
