// Package filelock provides the one cross-process lock agentsecrets uses:
// an advisory lock held by an open file, so a killed process releases it
// automatically. The vault index and the audit log both write under it.
package filelock

import (
	"context"
	"fmt"
	"os"
	"time"

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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, Wait)
	defer cancel()
	delay := time.Millisecond
	for {
		ok, err := tryLock(f)
		if err != nil {
			return fmt.Errorf("lock %s: %w", path, err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return errcode.WithHint(ErrLocked, "wait for the other agentsecrets command to finish, then retry")
		case <-time.After(delay):
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
	defer unlock(f)
	return fn()
}
