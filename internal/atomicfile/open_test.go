//go:build unix

package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenRegular: symlinks (to anything), directories, FIFOs and devices
// are refused with ErrNotRegular, a FIFO without blocking; regular files,
// existing or created, open.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	os.WriteFile(reg, []byte("x"), 0o600)
	fifo := filepath.Join(dir, "fifo")
	syscall.Mkfifo(fifo, 0o600)
	os.Symlink(reg, filepath.Join(dir, "link-reg"))
	os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "link-missing"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	for _, tc := range []struct {
		name string
		flag int
		ok   bool
	}{
		{"reg", os.O_RDONLY, true},
		{"reg", os.O_WRONLY | os.O_APPEND, true},
		{"new", os.O_WRONLY | os.O_CREATE, true},
		{"link-reg", os.O_RDONLY, false},
		{"link-missing", os.O_WRONLY | os.O_CREATE, false},
		{"sub", os.O_RDONLY, false},
		{"fifo", os.O_RDONLY, false},
		{"/dev/null", os.O_RDONLY, false},
	} {
		p := tc.name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		done := make(chan error, 1)
		go func() {
			f, err := OpenRegular(p, tc.flag, 0o600)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if tc.ok != (err == nil) || !tc.ok && !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: %v", tc.name, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: blocked", tc.name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("created the target of a dangling symlink")
	}
}

// TestWriteIgnoresPlantedTempNames: Write's temp name is random, so a
// symlink planted at any predictable name is never written through.
func TestWriteIgnoresPlantedTempNames(t *testing.T) {
	dir, outside := t.TempDir(), filepath.Join(t.TempDir(), "target")
	os.WriteFile(outside, []byte("mine"), 0o600)
	path := filepath.Join(dir, "proxy.token")
	for _, n := range []string{"proxy.token.tmp", ".proxy.token.tmp-", ".proxy.token.tmp-0"} {
		os.Symlink(outside, filepath.Join(dir, n))
	}
	if err := Write(path, []byte("token"), 0o600, ".proxy.token.tmp-", nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "mine" {
		t.Fatalf("written through a symlink: %q", b)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("%v %v", fi, err)
	}
}

// TestShowPath: paths are shown when they exist or look like paths; a
// phrase, a long string or anything with whitespace is only its length.
func TestShowPath(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "a file with spaces")
	os.WriteFile(existing, nil, 0o600)
	for in, shown := range map[string]bool{
		existing:                           true,
		"./missing.json":                   true,
		"~/x.env":                          true,
		"dir/file":                         true,
		".env":                             true,
		"correct horse battery staple 42":  false,
		"sk_live_abcdef0123456789":         false,
		"/tmp/" + strings.Repeat("a", 300): false,
		"a/b c":                            false,
		"":                                 false,
	} {
		got := ShowPath(in)
		if shown != (got == in) {
			t.Errorf("ShowPath(%q) = %q", in, got)
		}
		if !shown && !strings.HasSuffix(got, " bytes>") {
			t.Errorf("ShowPath(%q) = %q, want <N bytes>", in, got)
		}
	}
}
