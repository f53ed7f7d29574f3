package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Limits of a Writer's queue and batches.
const (
	// maxQueue bounds the records waiting in memory. Past it, Append
	// writes the record itself, so a writer that fell behind (a slow disk,
	// another process holding the lock) slows requests down rather than
	// growing without bound.
	maxQueue = 4096
	// maxBatch bounds the records written under one lock, so another
	// process waiting for the lock waits for at most one batch.
	maxBatch = 512
	// lingerDelay is how long a batch waits, from the arrival of its first
	// record, for more records before it is written. Under load, batches
	// grow to about the records of a millisecond, so the per-batch work
	// (lock, stat, write, unlock) is shared instead of paid per request;
	// at low load it delays each record by this much and costs nothing
	// else. It is also how long a record can wait in memory in the normal
	// case, which is the window a crash of the process loses (see Writer).
	// Flush and Close cut it short.
	lingerDelay = time.Millisecond
	// retryDelay is how long the writer waits after a failed batch before
	// trying it again.
	retryDelay = 200 * time.Millisecond
)

// Writer appends records for a long-running process (the proxy, the MCP
// server): Append queues the record and returns, and one goroutine writes
// whatever has queued up since its last write as one batch, taking the
// file lock once and writing once per batch, with the lock file and the
// active file kept open between batches.
//
// Nothing about the log changes for other readers and writers. Each batch
// is written under the same file lock as [Log.Append], after re-reading the
// tail when another process wrote in between, so `call` processes can keep
// appending to the same chain while a Writer runs; `audit verify` and
// `proxy logs` in other processes see whole lines, and rotation, the hash
// chain and torn-line handling are those of Log.Append, batch or not.
//
// A batch lingers: it is written lingerDelay (1 ms) after its first record
// arrived, or at once when it is full (maxBatch), a Flush waits for it, or
// the Writer closes. Under load a batch then holds a millisecond's records
// rather than whatever queued during the previous write.
//
// What a Writer adds is a window in which a record is accepted but not yet
// written: a crash of the process (SIGKILL included) loses the records of
// that window. Normally it is lingerDelay plus the time of one batch's
// write: a record accepted more than about 1 ms before the kill is in the
// file. While the log refuses writes or another process holds the lock,
// it lasts as long as that does (filelock.Wait at most per attempt), for
// at most maxQueue records; past those, Append writes directly. A crash
// mid-write leaves a torn line, which the next append terminates and
// Verify reports. Close (and so a proxy stopped by SIGINT or SIGTERM)
// writes everything queued and syncs the file.
type Writer struct {
	log *Log
	// lingered fires linger after the first record of a batch was queued:
	// Append arms it, rather than waking the goroutine to arm a timer of
	// its own, so the goroutine wakes once per batch, and not on the
	// path of the request that queued the record.
	lingered *time.Timer
	// hurry, capacity 1, cuts a linger short: a Flush is waiting or a
	// full batch is queued. A token left over from a batch already
	// written only makes the next batch skip its linger.
	hurry chan struct{}
	stop  chan struct{} // closed by Close
	done  chan struct{} // closed when the goroutine has exited
	// linger is lingerDelay; tests make it long to see what waits for it.
	linger time.Duration

	mu       sync.Mutex
	queue    []*Record
	inflight int       // records at the head of queue the goroutine is writing
	firstAt  time.Time // arrival of queue[inflight], the next batch's first record
	closing  bool
	accepted uint64 // records ever queued
	written  uint64 // records ever written, or given up at close
	lastErr  error  // why the last batch failed; nil after a success
	// proven is true once a batch or a Ready probe has written or opened
	// the log: until then Ready probes the log itself.
	proven   bool
	lost     int // records given up at close
	progress chan struct{}
}

// ErrAuditWrite: records could not be written to the audit log.
var ErrAuditWrite = errcode.New(errcode.Internal, "audit records could not be written")

// NewWriter starts a Writer on l. Until Close, l keeps its lock file and
// active file open, for the Writer and for l's own Append alike.
func (l *Log) NewWriter() *Writer { return l.newWriter(lingerDelay) }

func (l *Log) newWriter(linger time.Duration) *Writer {
	w := &Writer{log: l, linger: linger, lingered: time.NewTimer(linger), hurry: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), progress: make(chan struct{})}
	w.lingered.Stop()
	l.sem <- struct{}{}
	if l.kept == nil {
		l.kept = &keptFiles{}
	}
	l.release()
	go w.run()
	return w
}

// Append completes and normalises r as [Log.Append] does (ID and Time are
// set in r) and queues a copy of it; the copy's Prev is set when it is
// written. The error is about r itself ([ErrInvalidRecord]), or, when the
// queue is full or the Writer closed, from writing it directly: a record
// is never dropped without an error.
func (w *Writer) Append(ctx context.Context, r *Record) error {
	if err := r.normalise(w.log.now); err != nil {
		return err
	}
	c := *r
	w.mu.Lock()
	if w.closing || len(w.queue) >= maxQueue {
		w.mu.Unlock()
		err := Unavailable(w.log.appendNormalised(ctx, &c))
		if err != nil {
			// A front end that appends off the response path cannot act
			// on this error; Ready refuses the next requests instead.
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		}
		return err
	}
	if len(w.queue) == w.inflight {
		w.firstAt = time.Now()
		// Under mu, so the timer always counts from the firstAt the
		// goroutine reads; a Reset drops a fire not yet received.
		w.lingered.Reset(w.linger)
	}
	w.queue = append(w.queue, &c)
	w.accepted++
	full := len(w.queue)-w.inflight >= maxBatch
	w.mu.Unlock()
	if full {
		poke(w.hurry)
	}
	return nil
}

// poke sends on a channel of capacity 1 unless a token is already there.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Flush waits until every record queued before the call is written; the
// batch holding them does not linger. It returns early with the error of a
// failed batch (the writer keeps retrying it) or when ctx ends.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	target, pending := w.accepted, w.written < w.accepted
	w.mu.Unlock()
	if pending {
		poke(w.hurry)
	}
	for {
		w.mu.Lock()
		written, err, progress := w.written, w.lastErr, w.progress
		w.mu.Unlock()
		if written >= target {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return errcode.Errorf(errcode.Timeout, "audit log: waiting for queued records: %w", ctx.Err())
		}
	}
}

// Close writes every queued record, syncs the active file to disk and
// closes the kept files. Records that still cannot be written after one
// more attempt are reported in the error (ErrAuditWrite). Appends after
// Close write directly, as Log.Append does.
func (w *Writer) Close() error {
	w.mu.Lock()
	if !w.closing {
		w.closing = true
		close(w.stop)
	}
	w.mu.Unlock()
	<-w.done

	l := w.log
	l.sem <- struct{}{}
	defer l.release()
	var syncErr error
	if k := l.kept; k != nil {
		if k.active != nil {
			syncErr = k.active.Sync()
		}
		l.closeKeptActive()
		if k.lock != nil {
			k.lock.Close()
		}
		l.kept = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lost > 0 {
		return fmt.Errorf("%w: %d lost at shutdown: %w", ErrAuditWrite, w.lost, w.lastErr)
	}
	if syncErr != nil {
		return ioError("sync the audit log", syncErr)
	}
	return nil
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.done)
	defer w.lingered.Stop()
	var retry <-chan time.Time
	for {
		// hurried: woken by a Flush or a full batch, so the first batch
		// does not linger.
		hurried := false
		if retry != nil {
			// New records do not cut a retry delay short: a log that
			// refuses writes would otherwise be retried on every request.
			select {
			case <-retry:
			case <-w.stop:
			}
			retry = nil
		} else {
			select {
			case <-w.lingered.C:
			case <-w.hurry:
				hurried = true
			case <-w.stop:
			}
		}
		for {
			w.mu.Lock()
			pending, closing, first := len(w.queue), w.closing, w.firstAt
			w.mu.Unlock()
			if pending == 0 {
				if closing {
					return
				}
				break
			}
			// Unless hurried, a batch waits out its linger, on the timer its
			// first record armed: the goroutine may have woken for an
			// earlier batch, and these records queued during its write.
			if !hurried && time.Until(first.Add(w.linger)) > 0 && !closing && pending < maxBatch {
				select {
				case <-w.lingered.C:
				case <-w.hurry:
				case <-w.stop:
				}
			}
			hurried = false
			w.mu.Lock()
			n := min(len(w.queue), maxBatch)
			batch := w.queue[:n:n]
			w.inflight = n
			closing = w.closing
			w.mu.Unlock()
			written, err := w.write(batch)
			w.mu.Lock()
			w.inflight = 0
			w.queue = w.queue[written:]
			if len(w.queue) == 0 {
				w.queue = nil // let the backing array go
			}
			w.written += uint64(written)
			w.lastErr = err
			w.proven = w.proven || err == nil
			if err != nil && closing {
				// Shutting down and the log still refuses: give up on
				// what is left, and say so in Close's error.
				w.lost += len(w.queue)
				w.written += uint64(len(w.queue))
				w.queue = nil
			}
			close(w.progress)
			w.progress = make(chan struct{})
			w.mu.Unlock()
			if err != nil {
				if closing {
					return
				}
				retry = time.After(retryDelay)
				break
			}
		}
	}
}

// write appends batch under sem and the file lock. The lock wait is
// bounded by filelock.Wait, as for every other writer; no request is
// waiting on it.
func (w *Writer) write(batch []*Record) (int, error) {
	l := w.log
	l.sem <- struct{}{}
	defer l.release()
	return l.appendRecords(context.Background(), batch)
}

// Ready refuses new requests while the log refuses records: after a failed
// batch (which the writer keeps retrying every retryDelay) until a retry
// succeeds, and, before the first batch, when a probe of the log (see
// [Log.Ready]) fails. A request let through is then recorded unless the log
// breaks between this check and its batch; the next request is refused.
func (w *Writer) Ready(ctx context.Context) error {
	w.mu.Lock()
	err, proven := w.lastErr, w.proven
	w.mu.Unlock()
	if err != nil {
		return Unavailable(err)
	}
	if proven {
		return nil
	}
	if err := w.log.Ready(ctx); err != nil {
		return err
	}
	w.mu.Lock()
	w.proven = true
	w.mu.Unlock()
	return nil
}
