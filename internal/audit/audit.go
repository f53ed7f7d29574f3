// Package audit owns the audit log: one JSON line per broker decision
// (allowed, blocked, redacted, error), appended by every front end (call,
// proxy, MCP), read by `proxy logs` and checked by `audit verify`.
//
// # Files
//
// A log lives in one directory: audit.log is the active file, audit.log.1,
// audit.log.2, ... are rotated files (1 is the oldest), and audit.lock is
// the cross-process lock (internal/filelock) every append holds. Files are
// 0600, the directory 0700.
//
// # No value in, no value out
//
// [Record] has no field that can hold a secret value: secret names,
// injection styles, method, host and URL path, status and timing. A test
// walks its fields and fails on any type that could carry arbitrary data.
// Append also normalises the strings it is given: a path loses its query and
// fragment, a host loses any userinfo, and a name, style, method or reason
// outside its syntax becomes [Invalid]. It does not reject such a record,
// because a request that was malformed must still be audited.
//
// # Why a hash chain
//
// Each record's Prev is the hex SHA-256 of the previous line's bytes
// (without its newline), across rotated files, so the log is one chain.
// [Log.Verify] recomputes it: editing a record changes its hash and breaks
// the next link; deleting, inserting, duplicating or reordering records
// breaks a link too; a missing rotated file shows as a gap in the numbering
// (or, for the newest rotated file, as a broken first link of the next one).
//
// What a chain cannot detect without an anchor kept somewhere else: a change
// to, or the removal of, the newest records, since no later record vouches
// for them; and a rewrite of the whole chain from some point on, by anyone
// who can write the files and recompute the hashes (any process of the same
// OS user). The chain makes accidents and careless edits evident; it is not
// a defence against a determined local attacker. Verification.Head is the
// hash of the newest line: recording it elsewhere (a ticket, a sync server)
// is the anchor that closes both gaps up to that point.
//
// # Concurrency and crashes
//
// Several processes append at once (`call` processes, a long-running proxy,
// the MCP server). Each append holds the file lock while it reads the hash
// of the last line (backwards from the end of the file), rotates if needed
// and writes the new line with one write call, so lines never interleave
// and the chain never forks.
//
// A long-running front end (the proxy) appends through a [Writer]
// instead: it queues records, lets a batch linger up to 1 ms for more, and
// writes each batch under one lock with one write call, keeping the lock
// file and the active file open between batches, by the same rules, so it
// shares the chain with `call` processes appending at the same time.
//
// Appends are not fsynced. A write that returned has reached the kernel and
// survives a crash of the process, which is what an audit of an agent's
// requests needs; fsync per request would cost milliseconds on every call
// and still not make the log tamper-proof. A crash of the whole machine may
// lose the newest lines or leave a torn one. (A Writer's queue is the one
// place a record waits in memory, normally for at most about 1 ms, so a
// crash of the process loses that much; Writer.Close writes it and
// fsyncs. See [Writer].)
//
// A torn line (a file that does not end in a newline, after a crash or a
// full disk) is never silently dropped or overwritten: the next Append
// terminates it with a newline and chains the new record from the hash of
// the torn bytes, so the chain stays intact and Verify reports the torn line
// (Kind "torn") for as long as the file exists.
package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
)

// maxKeptBuf bounds the encoding buffer a Log keeps between appends: a
// typical batch fits, a batch of long paths does not keep its memory.
const maxKeptBuf = 64 << 10

// DefaultMaxFileSize is the rotation threshold when Options leaves it zero.
const DefaultMaxFileSize = 10 << 20

const (
	activeName = "audit.log"
	lockName   = "audit.lock"
)

// Options configure a Log. The zero value is ready to use.
type Options struct {
	// MaxFileSize rotates the active file when appending a line would make
	// it larger than this many bytes. A file always takes at least one line,
	// however long. Zero or negative means DefaultMaxFileSize.
	MaxFileSize int64
	// Now stamps records that have no Time; nil means time.Now.
	Now func() time.Time
}

// Log is the audit log in one directory. It is safe for concurrent use by
// goroutines and by processes that open the same directory.
type Log struct {
	dir     string
	maxSize int64
	now     func() time.Time
	// sem serialises appends within the process, so goroutines wait on a
	// channel (which honours ctx) instead of polling the file lock.
	sem chan struct{}
	// Guarded by sem: what this process last appended, so the next append
	// can skip re-reading the tail when nobody else wrote in between.
	dirReady bool
	tail     struct {
		file os.FileInfo
		size int64
		hash string
	}
	// kept, guarded by sem, is non-nil while a Writer runs: the lock file
	// and the active file stay open between batches instead of being
	// opened and closed for every record.
	kept *keptFiles
	// buf, guarded by sem, is the encoding buffer writeLocked reuses.
	buf []byte
}

// keptFiles are the descriptors a Writer keeps open. The active file is
// re-checked against its path under the lock before every use, so a file
// another process renamed (rotation) or someone deleted is never written.
//
// The lock file is re-checked less often, because nothing agentsecrets
// does replaces it: only someone deleting it (or the whole directory) by
// hand does. It is checked under the lock whenever the active file shows
// that another process wrote since our last append (the one way a
// replaced lock can matter to the chain: that process and we no longer
// exclude each other), and otherwise at least every lockRecheck. So a
// replaced lock file is noticed before the first batch that follows
// another process's append, and at most lockRecheck after the replacement
// in any case.
type keptFiles struct {
	lock       *filelock.File
	lockInfo   os.FileInfo
	active     *os.File
	activeInfo os.FileInfo
	// lockChecked is when the lock path was last seen naming lock;
	// lockFresh is true when that was during the current hold.
	lockChecked time.Time
	lockFresh   bool
}

// lockRecheck bounds the time between two checks of a kept lock file
// against its path when nothing else calls for one (see keptFiles). At
// most one stat per lockRecheck, instead of one per batch.
const lockRecheck = 100 * time.Millisecond

// Open returns the log kept in dir. It touches no file: the directory is
// created by the first Append, and reading a log that does not exist yet
// finds no records.
func Open(dir string, opts Options) *Log {
	l := &Log{dir: dir, maxSize: opts.MaxFileSize, now: opts.Now, sem: make(chan struct{}, 1)}
	if l.maxSize <= 0 {
		l.maxSize = DefaultMaxFileSize
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// Dir is the directory holding the log's files.
func (l *Log) Dir() string { return l.dir }

// Append completes r (ID, Time, Prev; see [Record]), normalises its other
// fields (see the package comment) and writes it as the newest line of the
// log. r is modified in place, so the caller sees exactly what was written.
// The only record it refuses is one without a known front end or decision
// ([ErrInvalidRecord]): both come from code, so that is a bug.
//
// Pass a context that outlives the request being audited (for example
// context.WithoutCancel): it bounds only the wait for the lock, and a
// client that hangs up must not be able to skip its audit record.
func (l *Log) Append(ctx context.Context, r *Record) error {
	if err := r.normalise(l.now); err != nil {
		return err
	}
	return Unavailable(l.appendNormalised(ctx, r))
}

func (l *Log) appendNormalised(ctx context.Context, r *Record) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	_, err := l.appendRecords(ctx, []*Record{r})
	return err
}

// acquire takes sem, waiting no longer than ctx allows.
func (l *Log) acquire(ctx context.Context) error {
	select {
	case l.sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case l.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return errcode.Errorf(errcode.Timeout, "audit log: waiting for another append: %w", ctx.Err())
	}
}

func (l *Log) release() { <-l.sem }

// appendRecords writes recs, already normalised, as the newest lines, in
// order, under the file lock; the caller holds sem. It reports how many
// were written: a failure after a rotation leaves the records before it
// in the log, and the caller must not write those twice.
func (l *Log) appendRecords(ctx context.Context, recs []*Record) (written int, err error) {
	err = l.withFileLock(ctx, func() error {
		var err error
		written, err = l.writeLocked(recs)
		return err
	})
	return written, err
}

// withFileLock creates the directory if needed and runs fn under the file
// lock (through the kept lock file while a Writer runs); the caller holds
// sem. A failure forgets the cached state, so the next call starts afresh.
func (l *Log) withFileLock(ctx context.Context, fn func() error) (err error) {
	if !l.dirReady {
		if err := os.MkdirAll(l.dir, 0o700); err != nil {
			return ioError("create the audit directory", err)
		}
		l.dirReady = true
	}
	if l.kept != nil {
		err = l.withKeptLock(ctx, fn)
	} else {
		err = filelock.With(ctx, l.path(lockName), fn)
	}
	if err != nil {
		l.dirReady, l.tail.file = false, nil
		l.closeKeptActive()
	}
	return err
}

// errStaleLock: the kept lock file is no longer the file at its path.
var errStaleLock = errors.New("the audit lock file was replaced")

// withKeptLock runs fn under the lock held through the kept lock file. Once
// the lock is held, when a check is due (see keptFiles), it checks that the
// path still names that file, and reopens it otherwise: a lock on a
// deleted or replaced file would exclude nobody. fn may ask for the check
// too (checkKeptLock) before it writes anything. Checking before locking
// would leave a window for the swap.
func (l *Log) withKeptLock(ctx context.Context, fn func() error) error {
	k := l.kept
	path := l.path(lockName)
	for attempt := 0; ; attempt++ {
		if k.lock == nil {
			lf, err := filelock.Open(path)
			if err != nil {
				return ioError("open the audit lock", err)
			}
			st, err := lf.Stat()
			if err != nil {
				lf.Close()
				return ioError("stat the audit lock", err)
			}
			// Checked at its first hold: the path may have changed
			// between the open and the lock.
			k.lock, k.lockInfo, k.lockChecked = lf, st, time.Time{}
		}
		err := k.lock.With(ctx, func() error {
			k.lockFresh = false
			if time.Since(k.lockChecked) >= lockRecheck {
				if err := l.checkKeptLock(); err != nil {
					return err
				}
			}
			return fn()
		})
		if !errors.Is(err, errStaleLock) {
			return err
		}
		k.lock.Close()
		k.lock = nil
		if attempt > 0 {
			return ioError("lock the audit log", err)
		}
	}
}

// checkKeptLock returns errStaleLock unless the lock path still names the
// kept lock file; the caller holds the lock through it. One check per hold
// is enough: the caller holds the lock, so nobody else's check is racing it.
func (l *Log) checkKeptLock() error {
	k := l.kept
	if k.lockFresh {
		return nil
	}
	if st, err := os.Stat(l.path(lockName)); err != nil || !os.SameFile(st, k.lockInfo) {
		return errStaleLock
	}
	k.lockFresh, k.lockChecked = true, time.Now()
	return nil
}

// activeFile returns the active file, open for appending, and its state.
// A kept descriptor is used only while the path still names its file;
// otherwise (a rotation by another process, or none kept) it opens the
// path. close is true when the caller must close the file after use.
func (l *Log) activeFile() (f *os.File, st os.FileInfo, close bool, err error) {
	path := l.path(activeName)
	if k := l.kept; k != nil && k.active != nil {
		if st, err := os.Stat(path); err == nil && os.SameFile(st, k.activeInfo) {
			return k.active, st, false, nil
		}
		l.closeKeptActive()
	}
	// Never through a symlink, never into a directory or a FIFO: a planted
	// audit.log must not redirect records elsewhere or swallow them.
	f, err = atomicfile.OpenRegular(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, false, ioError("open the audit log", err)
	}
	if st, err = f.Stat(); err != nil {
		f.Close()
		return nil, nil, false, ioError("stat the audit log", err)
	}
	if l.kept != nil {
		l.kept.active, l.kept.activeInfo = f, st
		return f, st, false, nil
	}
	return f, st, true, nil
}

func (l *Log) closeKeptActive() {
	if k := l.kept; k != nil && k.active != nil {
		k.active.Close()
		k.active, k.activeInfo = nil, nil
	}
}

// writeLocked does the work of appendRecords; the caller holds the file
// lock. Lines are collected and written with one write call per file, so
// a batch costs one write however many records it holds, and lines of
// different processes never interleave.
func (l *Log) writeLocked(recs []*Record) (written int, err error) {
	f, st, mustClose, err := l.activeFile()
	if err != nil {
		return 0, err
	}
	defer func() {
		if mustClose {
			f.Close()
		}
	}()
	size := st.Size()

	var prev string
	ours := size > 0 && l.tail.file != nil && os.SameFile(st, l.tail.file) && size == l.tail.size
	if !ours && l.kept != nil {
		// Someone else may have written since our last append: make sure
		// they and we take the same lock before writing anything.
		if err := l.checkKeptLock(); err != nil {
			return 0, err
		}
	}
	if ours {
		// Same file, same size as after our own last append: no other
		// writer came in between, so its last line is the one we wrote.
		prev = l.tail.hash
	} else if size > 0 {
		last, terminated, err := lastLine(f, size)
		if err != nil {
			return 0, ioError("read the audit log", err)
		}
		prev = lineHash(last)
		if !terminated {
			// A torn line: keep it, end it, chain from its bytes. Verify
			// reports it; nothing here pretends it was not there.
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return 0, ioError("terminate a torn line in the audit log", err)
			}
			size++
		}
	} else {
		// The active file is new (first record, or the last append rotated
		// it away, or crashed right after rotating): continue from the
		// newest rotated file.
		if prev, err = l.rotatedTail(); err != nil {
			return 0, err
		}
	}

	// buf holds the lines not yet written, for records recs[written:pending],
	// in a buffer kept between calls so a batch costs no allocation for its
	// bytes; one grown by an unusually large batch is let go.
	buf := l.buf[:0]
	defer func() {
		if cap(buf) <= maxKeptBuf {
			l.buf = buf[:0]
		}
	}()
	pending := 0
	// flush writes the first n bytes of buf and keeps the rest.
	flush := func(n int) error {
		if n == 0 {
			return nil
		}
		if _, err := f.Write(buf[:n]); err != nil {
			// Undo a partial write (a full disk) while we still hold the
			// lock, so the file does not keep a torn line for a record
			// nobody saw.
			f.Truncate(size)
			return ioError("write the audit log", err)
		}
		size += int64(n)
		buf = buf[:copy(buf, buf[n:])]
		written = pending
		return nil
	}
	for i, r := range recs {
		r.Prev = prev
		start := len(buf)
		if buf, err = appendLine(buf, r); err != nil {
			return written, errors.Join(flush(start), err)
		}
		if cur := size + int64(start); cur > 0 && size+int64(len(buf)) > l.maxSize {
			if err := flush(start); err != nil {
				return written, err
			}
			start = 0
			if mustClose {
				f.Close()
			}
			l.closeKeptActive()
			mustClose = false
			// A failed rename (see rotate) keeps writing to the same file.
			if err := l.rotate(); err != nil {
				return written, err
			}
			if f, st, mustClose, err = l.activeFile(); err != nil {
				return written, err
			}
			size = st.Size()
		}
		pending = i + 1
		prev = lineHash(buf[start : len(buf)-1])
	}
	if err := flush(len(buf)); err != nil {
		return written, err
	}
	l.tail.file, l.tail.size, l.tail.hash = st, size, prev
	return written, nil
}

// rotate renames the (closed) active file to the next rotated name. A
// failed rename is not an error: a reader on Windows may hold the file
// open, and writing past MaxFileSize until the next append is better than
// losing a record.
func (l *Log) rotate() error {
	nums, err := l.rotatedNumbers()
	if err != nil {
		return err
	}
	next := 1
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	os.Rename(l.path(activeName), l.path(rotatedName(next)))
	return nil
}

// rotatedTail is the hash of the last line of the newest non-empty rotated
// file, or "" when there is none (the very first record).
func (l *Log) rotatedTail() (string, error) {
	nums, err := l.rotatedNumbers()
	if err != nil {
		return "", err
	}
	for i := len(nums) - 1; i >= 0; i-- {
		hash, ok, err := fileTail(l.path(rotatedName(nums[i])))
		if err != nil {
			return "", ioError("read a rotated audit file", err)
		}
		if ok {
			return hash, nil
		}
	}
	return "", nil
}

// fileTail hashes the last line of the file at path; ok is false when the
// file is empty or gone.
func fileTail(path string) (hash string, ok bool, err error) {
	f, err := atomicfile.OpenRegular(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return "", false, err
	}
	last, _, err := lastLine(f, st.Size())
	if err != nil {
		return "", false, err
	}
	return lineHash(last), true, nil
}

// lineHash is the chain hash of one line's bytes, without its newline.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	// Into an array, not through EncodeToString: one allocation per
	// record, not two.
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], sum[:])
	return string(text[:])
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (l *Log) path(name string) string { return filepath.Join(l.dir, name) }

func ioError(what string, err error) error {
	return errcode.Errorf(errcode.Internal, "%s: %w", what, err)
}
