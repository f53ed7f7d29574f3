//go:build unix

package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestReadyAndAppendRefuseWhatCannotBeWritten: for every way the active
// file or the lock can be unusable, Ready fails with ErrUnavailable within
// ReadyWait, Append fails the same way, and nothing is written through a
// symlink.
func TestReadyAndAppendRefuseWhatCannotBeWritten(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, dir, outside string) (undo func())
	}{
		{"active is a directory", func(t *testing.T, dir, _ string) func() {
			os.Mkdir(filepath.Join(dir, activeName), 0o700)
			return func() {}
		}},
		{"active is a symlink", func(t *testing.T, dir, outside string) func() {
			os.Symlink(outside, filepath.Join(dir, activeName))
			return func() {}
		}},
		{"active is a FIFO", func(t *testing.T, dir, _ string) func() {
			syscall.Mkfifo(filepath.Join(dir, activeName), 0o600)
			return func() {}
		}},
		{"lock is a symlink", func(t *testing.T, dir, outside string) func() {
			os.Symlink(outside, filepath.Join(dir, lockName))
			return func() {}
		}},
		{"lock is held", func(t *testing.T, dir, _ string) func() {
			f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			// flock locks are per open file description: a second open in
			// this process contends like another process would.
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			return func() { f.Close() }
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(outside, []byte("mine\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			defer c.setup(t, dir, outside)()
			l := Open(dir, Options{Now: clock()})
			start := time.Now()
			if err := l.Ready(context.Background()); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Ready = %v, want ErrUnavailable", err)
			}
			if took := time.Since(start); took > ReadyWait+time.Second {
				t.Errorf("Ready took %s, want at most about %s", took, ReadyWait)
			}
			if c.name != "lock is held" {
				if err := l.Append(context.Background(), rec("r", 0)); !errors.Is(err, ErrUnavailable) {
					t.Fatalf("Append = %v, want ErrUnavailable", err)
				}
			}
			w := l.NewWriter()
			if err := w.Ready(context.Background()); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Writer.Ready = %v, want ErrUnavailable", err)
			}
			w.Close()
			if b, _ := os.ReadFile(outside); string(b) != "mine\n" {
				t.Errorf("written through the symlink: %q", b)
			}
		})
	}
}

// TestWriterRefusesAfterAFailedBatch: once a batch fails, the Writer's
// Ready refuses until a retry succeeds, then accepts again.
func TestWriterRefusesAfterAFailedBatch(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{Now: clock()})
	w := l.NewWriter()
	defer w.Close()
	ctx := context.Background()
	if err := w.Ready(ctx); err != nil {
		t.Fatalf("Ready on a fresh log: %v", err)
	}
	if err := w.Append(ctx, rec("a", 0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	active := filepath.Join(dir, activeName)
	if err := os.Rename(active, active+".keep"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(active, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ctx, rec("b", 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded with a directory at audit.log")
	}
	if err := w.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready after a failed batch = %v, want ErrUnavailable", err)
	}
	os.Remove(active)
	os.Rename(active+".keep", active)
	deadline := time.Now().Add(5 * time.Second)
	for w.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready still refuses after the log was repaired")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
