package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMcpInstallHostilePaths: a client's config path that is a named pipe,
// a symlink to /dev/zero or to a pipe, a directory, or a file past the
// 8 MiB cap is refused quickly (never read, never opened blocking) with a
// conflict naming the path, by install and uninstall alike, and every
// other client's file is left as it was.
func TestMcpInstallHostilePaths(t *testing.T) {
	// The refused file may hold other servers' credentials: none of it
	// is ever echoed.
	canary := string(newCanary(t, "config", "+/="))
	for _, c := range []struct {
		name  string
		plant func(t *testing.T, root, cfg string)
		why   string
	}{
		{"named pipe", func(t *testing.T, _, cfg string) { must(t, syscall.Mkfifo(cfg, 0o600)) }, "named pipe"},
		{"symlink to /dev/zero", func(t *testing.T, _, cfg string) { must(t, os.Symlink("/dev/zero", cfg)) }, "device"},
		{"symlink to a named pipe", func(t *testing.T, root, cfg string) {
			fifo := filepath.Join(root, "fifo")
			must(t, syscall.Mkfifo(fifo, 0o600))
			must(t, os.Symlink(fifo, cfg))
		}, "named pipe"},
		{"directory", func(t *testing.T, _, cfg string) { must(t, os.Mkdir(cfg, 0o700)) }, "directory"},
		{"9 MiB file", func(t *testing.T, _, cfg string) {
			big := `{"mcpServers":{"other":{"command":"x","args":["` + canary + strings.Repeat("a", 9<<20) + `"]}}}`
			must(t, os.WriteFile(cfg, []byte(big), 0o600))
		}, "larger than 8 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newMCPHome(t)
			cfg := filepath.Join(h.home, ".cursor", "mcp.json")
			must(t, os.MkdirAll(filepath.Dir(cfg), 0o755))
			c.plant(t, h.root, cfg)
			other := filepath.Join(h.home, ".claude.json")
			otherData := []byte(`{"mcpServers":{"agentsecrets":{"command":"/old","args":[]}}}` + "\n")
			must(t, os.WriteFile(other, otherData, 0o600))
			var cfgBefore []byte
			if fi, err := os.Stat(cfg); err == nil && fi.Mode().IsRegular() {
				cfgBefore = readFile(t, cfg)
			}
			for _, args := range [][]string{
				{"mcp", "install", "--client", "claude-code", "--client", "cursor"},
				{"mcp", "install", "--all"},
				{"mcp", "uninstall", "--client", "claude-code", "--client", "cursor"},
				{"mcp", "uninstall", "--all"},
				{"mcp", "install", "--client", "cursor", "--print"},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				cmd := exec.CommandContext(ctx, h.bin, args...)
				cmd.Env = []string{"HOME=" + h.home, "AGENTSECRETS_HOME=" + filepath.Join(h.root, "as"), "PATH=" + os.Getenv("PATH")}
				cmd.Dir = h.work
				start := time.Now()
				r := capture(t, cmd, args)
				timedOut := ctx.Err() != nil
				cancel()
				if timedOut {
					t.Fatalf("%v did not return within 10s (killed)", args)
				}
				e := r.ErrorCode(t, "conflict", 6)
				msg, _ := e["message"].(string)
				if !strings.Contains(msg, cfg) || !strings.Contains(msg, c.why) {
					t.Errorf("%v: message %q does not name %s and %q", args, msg, cfg, c.why)
				}
				assertNoLeak(t, "stdout", r.Stdout, [][]byte{[]byte(canary)})
				assertNoLeak(t, "stderr", r.Stderr, [][]byte{[]byte(canary)})
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("%v took %v", args, d)
				}
				if got := readFile(t, other); string(got) != string(otherData) {
					t.Errorf("%v changed another client's file: %s", args, got)
				}
				if b := backups(t, other); len(b) > 0 {
					t.Errorf("%v left backups %v", args, b)
				}
				if b := backups(t, cfg); len(b) > 0 {
					t.Errorf("%v left backups %v", args, b)
				}
				if cfgBefore != nil && string(readFile(t, cfg)) != string(cfgBefore) {
					t.Errorf("%v changed the refused file", args)
				}
			}
		})
	}
}
