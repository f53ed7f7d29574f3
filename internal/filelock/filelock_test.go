package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// TestFileExcludesOtherOpeners: a lock taken through a kept-open File
// excludes every other descriptor of the same path (another process, or
// With), is released when fn returns, and can be taken again through the
// same File without reopening it.
func TestFileExcludesOtherOpeners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	kept, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	for round := range 3 {
		entered := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- kept.With(context.Background(), func() error {
				close(entered)
				<-release
				return nil
			})
		}()
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
		err := With(ctx, path, func() error { return errors.New("ran while the lock was held") })
		cancel()
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("round %d: With while a File holds the lock = %v, want ErrLocked", round, err)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		ran := false
		if err := With(context.Background(), path, func() error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("round %d: With after release = %v, ran %v", round, err, ran)
		}
	}
}

// TestFileWaitsForTheLock: With through a File waits for a holder to let
// go, rather than failing at once.
func TestFileWaitsForTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	kept, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	held := make(chan struct{})
	go With(context.Background(), path, func() error {
		close(held)
		time.Sleep(50 * time.Millisecond)
		return nil
	})
	<-held
	start := time.Now()
	if err := kept.With(context.Background(), func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("took the lock after %v while another holder had it", waited)
	}
}
