package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// ReadyWait bounds how long a front end waits, before it reads or sends a
// secret, for the audit log's lock. No audit record means no request, and
// a request held for the lock's full wait (30 s) looks hung to an agent: a
// log that cannot be locked within 2 s is reported unavailable instead.
const ReadyWait = 2 * time.Second

// ErrUnavailable: the audit log cannot take a record, so nothing that
// would need one may happen.
var ErrUnavailable = errcode.New(errcode.Unavailable, "the audit log cannot be written")

// doctorHint is where a human finds out why.
const doctorHint = "run `agentsecrets doctor`: it checks the audit log in the state directory"

// Unavailable wraps why the log refused a record as ErrUnavailable, with
// the doctor hint. Invalid records (a bug in the caller) keep their code.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrInvalidRecord) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return errcode.WithHint(fmt.Errorf("%w: %w", ErrUnavailable, err), doctorHint)
}

// Ready checks, before a request, that a record could be appended now: the
// directory can be created, audit.log and audit.lock are regular files (not
// symlinks, directories or FIFOs) that open for writing, and the lock is
// free within ReadyWait. Nothing is written.
func (l *Log) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyWait)
	defer cancel()
	if err := l.acquire(ctx); err != nil {
		return Unavailable(err)
	}
	defer l.release()
	return Unavailable(l.readyLocked(ctx))
}

// readyLocked is Ready's work; the caller holds sem.
func (l *Log) readyLocked(ctx context.Context) error {
	return l.withFileLock(ctx, func() error {
		f, _, mustClose, err := l.activeFile()
		if err == nil && mustClose {
			f.Close()
		}
		return err
	})
}
