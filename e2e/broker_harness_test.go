package e2e

import (
	"bytes"
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

// startDaemon runs `broker run` as this user with state as its home (so
// tests that look at a vault's files find them where they would be) and
// returns its socket once it accepts connections.
func startDaemon(t *testing.T, state, socket string) string {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(filepath.Dir(socket)), "broker.log")
	logf, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(binary, "broker", "run", "--state", state, "--socket", socket, "--user", strconv.Itoa(os.Getuid()))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(state), "AGENTSECRETS_BROKER=none"}
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("broker log:\n%s", bytes.TrimSpace(b))
		}
	})
	for range 500 {
		if fi, err := os.Stat(socket); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return socket
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("broker exited at start:\n%s", b)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("broker did not listen within 5 s")
	return ""
}
