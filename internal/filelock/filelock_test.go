package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
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
// go, rather than failing at once. The order is asserted, not a duration:
// the waiter's fn must run after the holder has let go, however the
// scheduler interleaves the two.
func TestFileWaitsForTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	kept, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	held := make(chan struct{})
	release := make(chan struct{})
	var letGo atomic.Bool
	holder := make(chan error, 1)
	go func() {
		holder <- With(context.Background(), path, func() error {
			close(held)
			<-release
			letGo.Store(true)
			return nil
		})
	}()
	<-held
	waiter := make(chan error, 1)
	var ranWhileHeld atomic.Bool
	go func() {
		waiter <- kept.With(context.Background(), func() error {
			ranWhileHeld.Store(!letGo.Load())
			return nil
		})
	}()
	// The waiter must still be waiting while the holder holds: poll
	// briefly that it has not returned, then let the holder go.
	select {
	case err := <-waiter:
		t.Fatalf("took the lock while another holder had it (err %v)", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if err := <-holder; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waiter:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never took the lock after the holder let go")
	}
	if ranWhileHeld.Load() {
		t.Fatal("the waiter's fn ran before the holder let go")
	}
}
