//go:build unix

package mcpconfig

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// withDeadline fails the test if f blocks: the bug this guards against
// is a read that never returns.
func withDeadline(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked for 5s")
	}
}

func TestReadConfigRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.json")
	f, _ := os.Create(big)
	f.Truncate(MaxConfigSize + 1) // sparse: no 8 MiB written
	f.Close()
	exact := filepath.Join(dir, "exact.json")
	f, _ = os.Create(exact)
	f.Truncate(MaxConfigSize)
	f.Close()
	link := func(name, target string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	regular := filepath.Join(dir, "ok.json")
	os.WriteFile(regular, []byte("{}\n"), 0o640)
	for _, c := range []struct {
		name, path string
		want       error
		exists     bool
	}{
		{"fifo", fifo, ErrNotRegular, false},
		{"symlink to fifo", link("l-fifo", fifo), ErrNotRegular, false},
		{"/dev/zero", "/dev/zero", ErrNotRegular, false},
		{"symlink to /dev/zero", link("l-zero", "/dev/zero"), ErrNotRegular, false},
		{"directory", dir, ErrNotRegular, false},
		{"symlink to directory", link("l-dir", dir), ErrNotRegular, false},
		{"past the cap", big, ErrTooLarge, false},
		{"at the cap", exact, nil, true},
		{"regular", regular, nil, true},
		{"symlink to regular", link("l-ok", regular), nil, true},
		{"missing", filepath.Join(dir, "none.json"), nil, false},
		{"dangling symlink", link("l-none", filepath.Join(dir, "gone.json")), nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			withDeadline(t, func() {
				_, data, mode, exists, err := readConfig(c.path)
				if !errors.Is(err, c.want) || exists != c.exists {
					t.Errorf("err %v exists %v, want %v %v", err, exists, c.want, c.exists)
				}
				if c.name == "regular" && (string(data) != "{}\n" || mode != 0o640) {
					t.Errorf("read %q mode %v", data, mode)
				}
			})
		})
	}
}

// TestWriteRefusesSwappedFile: a config replaced by a FIFO between the
// plan and the write is refused at the write's re-read, without blocking
// and without writing.
func TestWriteRefusesSwappedFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mcp.json")
	os.WriteFile(cfg, []byte("{}\n"), 0o600)
	ch, err := Lookup("cursor").PlanInstall(cfg, "/bin/agentsecrets", []string{"mcp", "serve"})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(cfg)
	if err := syscall.Mkfifo(cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	withDeadline(t, func() {
		if _, err := ch.Write(time.Now()); !errors.Is(err, ErrNotRegular) {
			t.Errorf("write over a swapped-in FIFO: %v", err)
		}
	})
	if fi, err := os.Lstat(cfg); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v", err)
	}
	if m, _ := filepath.Glob(cfg + ".agentsecrets-backup-*"); len(m) > 0 {
		t.Errorf("backups left: %v", m)
	}
}
