// Package filelock provides the one cross-process lock agentsecrets uses:
// an advisory lock held by an open file, so a killed process releases it
// automatically. The vault index and the audit log both write under it.
package filelock

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// ErrLocked is returned when another agentsecrets process holds the lock for
// longer than Wait.
var ErrLocked = errcode.New(errcode.Conflict, "locked by another agentsecrets process")

// Wait bounds how long With waits for the lock.
const Wait = 30 * time.Second

// With runs fn holding an exclusive advisory lock on path. The lock is
// held by the open file, so a killed process releases it automatically.
// Nothing that waits on a human (a passphrase prompt) may run inside fn.
func With(ctx context.Context, path string, fn func() error) error {
	l, err := Open(path)
	if err != nil {
		return err
	}
	defer l.Close()
	return l.With(ctx, fn)
}

// File is a lock file kept open between locks, for a long-running process
// that takes the same lock for every batch of work (the proxy's audit
// writer): opening and closing the file costs more than the lock itself.
// A File is not for concurrent use; callers serialise their own goroutines
// (an flock held through one descriptor does not exclude a second locker
// using the same descriptor).
type File struct {
	f    *os.File
	path string
}

// Open opens (creating it 0600 if needed) the lock file at path.
func Open(path string) (*File, error) {
	// Not through a symlink or into a FIFO: a planted lock path must not
	// make a writer create or lock a file elsewhere, or block.
	f, err := atomicfile.OpenRegular(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	return &File{f: f, path: path}, nil
}

// With runs fn holding the lock, waiting as the package-level With does.
func (l *File) With(ctx context.Context, fn func() error) error {
	ok, err := tryLock(l.f)
	if err != nil {
		return fmt.Errorf("lock %s: %w", l.path, err)
	}
	if !ok {
		if err := l.wait(ctx); err != nil {
			return err
		}
	}
	defer unlock(l.f)
	return fn()
}

// wait polls until the lock is taken. The uncontended case never gets
// here, so it pays for no timer.
func (l *File) wait(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, Wait)
	defer cancel()
	delay := time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return errcode.WithHint(ErrLocked, "wait for the other agentsecrets command to finish, then retry")
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
		ok, err := tryLock(l.f)
		if err != nil {
			return fmt.Errorf("lock %s: %w", l.path, err)
		}
		if ok {
			return nil
		}
	}
}

// Stat describes the open lock file, so a holder can tell whether its path
// still names it (a lock on a file that was deleted or replaced excludes
// nobody who opens the path afresh).
func (l *File) Stat() (os.FileInfo, error) { return l.f.Stat() }

// Close closes the file, releasing the lock if it is held.
func (l *File) Close() error { return l.f.Close() }
