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
// Appends are not fsynced. A write that returned has reached the kernel and
// survives a crash of the process, which is what an audit of an agent's
// requests needs; fsync per request would cost milliseconds on every call
// and still not make the log tamper-proof. A crash of the whole machine may
// lose the newest lines or leave a torn one.
//
// A torn line (a file that does not end in a newline, after a crash or a
// full disk) is never silently dropped or overwritten: the next Append
// terminates it with a newline and chains the new record from the hash of
// the torn bytes, so the chain stays intact and Verify reports the torn line
// (Kind "torn") for as long as the file exists.
package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
)

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
}

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
	select {
	case l.sem <- struct{}{}:
	default:
		select {
		case l.sem <- struct{}{}:
		case <-ctx.Done():
			return errcode.Errorf(errcode.Timeout, "audit log: waiting for another append: %w", ctx.Err())
		}
	}
	defer func() { <-l.sem }()

	if !l.dirReady {
		if err := os.MkdirAll(l.dir, 0o700); err != nil {
			return ioError("create the audit directory", err)
		}
		l.dirReady = true
	}
	err := filelock.With(ctx, l.path(lockName), func() error { return l.appendLocked(r) })
	if err != nil {
		l.dirReady, l.tail.file = false, nil
	}
	return err
}

// appendLocked does the work of Append; the caller holds the file lock.
func (l *Log) appendLocked(r *Record) error {
	active := l.path(activeName)
	f, err := os.OpenFile(active, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return ioError("open the audit log", err)
	}
	defer func() { f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return ioError("stat the audit log", err)
	}
	size := st.Size()

	if size > 0 && l.tail.file != nil && os.SameFile(st, l.tail.file) && size == l.tail.size {
		// Same file, same size as after our own last append: no other
		// writer came in between, so its last line is the one we wrote.
		r.Prev = l.tail.hash
	} else if size > 0 {
		last, terminated, err := lastLine(f, size)
		if err != nil {
			return ioError("read the audit log", err)
		}
		r.Prev = lineHash(last)
		if !terminated {
			// A torn line: keep it, end it, chain from its bytes. Verify
			// reports it; nothing here pretends it was not there.
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return ioError("terminate a torn line in the audit log", err)
			}
			size++
		}
	} else {
		// The active file is new (first record, or the last append rotated
		// it away, or crashed right after rotating): continue from the
		// newest rotated file.
		if r.Prev, err = l.rotatedTail(); err != nil {
			return err
		}
	}

	line, err := marshalLine(r)
	if err != nil {
		return err
	}

	if size > 0 && size+int64(len(line)) > l.maxSize {
		f.Close()
		renamed, err := l.rotate()
		if err != nil {
			return err
		}
		if f, err = os.OpenFile(active, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return ioError("open the audit log", err)
		}
		if renamed {
			size = 0
		}
	}

	if _, err := f.Write(line); err != nil {
		// Undo a partial write (a full disk) while we still hold the lock,
		// so the file does not keep a torn line for a record nobody saw.
		f.Truncate(size)
		return ioError("write the audit log", err)
	}
	l.tail.file, l.tail.hash, l.tail.size = nil, "", 0
	if st, err := f.Stat(); err == nil {
		l.tail.file, l.tail.size, l.tail.hash = st, st.Size(), lineHash(line[:len(line)-1])
	}
	return nil
}

// rotate renames the (closed) active file to the next rotated name. It
// reports false, not an error, when the rename fails: a reader on Windows
// may hold the file open, and writing past MaxFileSize until the next
// append is better than losing a record.
func (l *Log) rotate() (bool, error) {
	nums, err := l.rotatedNumbers()
	if err != nil {
		return false, err
	}
	next := 1
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	return os.Rename(l.path(activeName), l.path(rotatedName(next))) == nil, nil
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
	f, err := os.Open(path)
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

// marshalLine encodes r as one line ending in "\n". The encoder does not
// escape <, > and &, so `proxy logs` shows paths as they were; it does
// escape newlines and U+2028/U+2029, so a record is always one line.
func marshalLine(r *Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encode audit record: %w", err)
	}
	return buf.Bytes(), nil // Encode ends the value with exactly one "\n"
}

// lineHash is the chain hash of one line's bytes, without its newline.
func lineHash(line []byte) string {
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:])
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
