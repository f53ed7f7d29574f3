//go:build unix

package mcpconfig

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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

// TestWriteAllIsAllOrNothing: several clients' files are written as one.
// A refusal found while staging (a file changed or swapped for a FIFO
// since the plan) writes nothing; one found at commit, after earlier
// files were written, restores those and removes their backups; a file
// that cannot be restored keeps its backup and the error names it.
func TestWriteAllIsAllOrNothing(t *testing.T) {
	const orig = "{\"a\": 1}\n"
	cases := []struct {
		name string
		// firstNew: the first client's file does not exist before.
		firstNew bool
		// afterPlan runs between the plan and WriteAll.
		afterPlan func(t *testing.T, first, second string)
		// atCommit runs just before the second file's commit.
		atCommit func(t *testing.T, first, second string)
		// want is what the error must say; wantFirst what the first
		// file must hold afterwards ("" for absent); keptBackup whether
		// the first file's backup must remain.
		want       string
		wantFirst  string
		keptBackup bool
	}{
		{name: "second changed before staging",
			afterPlan: func(t *testing.T, _, second string) { os.WriteFile(second, []byte("{\"b\": 2}\n"), 0o600) },
			want:      "changed", wantFirst: orig},
		{name: "second swapped for a FIFO before staging",
			afterPlan: func(t *testing.T, _, second string) {
				os.Remove(second)
				if err := syscall.Mkfifo(second, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: "not a regular file", wantFirst: orig},
		{name: "second changed at commit",
			atCommit: func(t *testing.T, _, second string) { os.WriteFile(second, []byte("{\"b\": 2}\n"), 0o600) },
			want:     "restored", wantFirst: orig},
		{name: "second changed at commit, first was new", firstNew: true,
			atCommit: func(t *testing.T, _, second string) { os.WriteFile(second, []byte("{\"b\": 2}\n"), 0o600) },
			want:     "restored", wantFirst: ""},
		{name: "first changed again before the rollback",
			atCommit: func(t *testing.T, first, second string) {
				os.WriteFile(first, []byte("{\"edited\": true}\n"), 0o600)
				os.WriteFile(second, []byte("{\"b\": 2}\n"), 0o600)
			},
			want: "could not restore", wantFirst: "{\"edited\": true}\n", keptBackup: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			first, second := filepath.Join(dir, "first.json"), filepath.Join(dir, "second.json")
			if !c.firstNew {
				os.WriteFile(first, []byte(orig), 0o600)
			}
			os.WriteFile(second, []byte(orig), 0o600)
			var changes []*Change
			for _, p := range []string{first, second} {
				ch, err := Lookup("cursor").PlanInstall(p, "/bin/agentsecrets", []string{"mcp", "serve"})
				if err != nil {
					t.Fatal(err)
				}
				changes = append(changes, ch)
			}
			if c.afterPlan != nil {
				c.afterPlan(t, first, second)
			}
			commit := (*Change).replace
			if c.atCommit != nil {
				commit = func(ch *Change) error {
					if ch == changes[1] {
						c.atCommit(t, first, second)
					}
					return ch.replace()
				}
			}
			var err error
			withDeadline(t, func() { _, err = writeAll(changes, time.Now(), commit) })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("WriteAll = %v, want an error saying %q", err, c.want)
			}
			got, readErr := os.ReadFile(first)
			if c.wantFirst == "" && !errors.Is(readErr, fs.ErrNotExist) || c.wantFirst != "" && string(got) != c.wantFirst {
				t.Errorf("first file holds %q (%v), want %q", got, readErr, c.wantFirst)
			}
			if fi, err := os.Lstat(second); err == nil && fi.Mode().IsRegular() {
				if b, _ := os.ReadFile(second); strings.Contains(string(b), ServerName) {
					t.Errorf("second file was written: %q", b)
				}
			}
			backups, _ := filepath.Glob(filepath.Join(dir, "*.agentsecrets-*"))
			switch {
			case c.keptBackup && (len(backups) != 1 || !strings.Contains(err.Error(), backups[0])):
				t.Errorf("backups %v; the error must name the one kept: %v", backups, err)
			case !c.keptBackup && len(backups) > 0:
				t.Errorf("backups or temp files left: %v", backups)
			}
		})
	}
}
