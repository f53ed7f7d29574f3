package audit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
)

// tailChunk is how much lastLine reads per step backwards; a var so tests
// can make lines span several chunks.
var tailChunk = 4096

// lastLine returns the last line of the first size bytes of f, without its
// newline, and whether those bytes end with a newline (false: a torn line).
// It reads backwards from the end, so its cost is the line's length, not
// the file's. size must be > 0.
func lastLine(f io.ReaderAt, size int64) (line []byte, terminated bool, err error) {
	var buf []byte // bytes [pos, size) of the file
	pos := size
	for pos > 0 {
		n := int64(tailChunk)
		if n > pos {
			n = pos
		}
		chunk := make([]byte, n, n+int64(len(buf)))
		if _, err := f.ReadAt(chunk, pos-n); err != nil {
			return nil, false, err
		}
		first := buf == nil
		buf = append(chunk, buf...)
		pos -= n
		if first {
			terminated = buf[len(buf)-1] == '\n'
		}
		content := buf
		if terminated {
			content = buf[:len(buf)-1]
		}
		// Only the new chunk can hold the newline before the last line.
		if i := bytes.LastIndexByte(content[:min(int(n), len(content))], '\n'); i >= 0 {
			return content[i+1:], terminated, nil
		}
		if pos == 0 {
			return content, terminated, nil
		}
	}
	return nil, true, nil
}

// rotatedName is the name of rotated file n (1 is the oldest).
func rotatedName(n int) string { return activeName + "." + strconv.Itoa(n) }

// rotatedNumbers lists the numbers of the rotated files present, ascending.
// Names that are not exactly audit.log.N with N ≥ 1 are not ours.
func (l *Log) rotatedNumbers() ([]int, error) {
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, ioError("list the audit directory", err)
	}
	var nums []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), activeName+".")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 || strconv.Itoa(n) != rest {
			continue
		}
		nums = append(nums, n)
	}
	sort.Ints(nums)
	return nums, nil
}

// segment is one file of a snapshot: open, with the size it had while the
// lock was held. Reading only that far gives whole lines even while other
// processes keep appending, and an open file is unaffected by a rotation.
type segment struct {
	name string // base name, as reported to users
	num  int    // rotation number; 0 for the active file
	f    *os.File
	size int64
}

// snapshot opens every file of the log, oldest first, under the lock. The
// lock is held only while opening, not while reading. When the lock itself
// cannot be taken for a reason other than contention (a read-only copy of
// the log), the files are opened without it.
func (l *Log) snapshot() ([]segment, error) {
	if _, err := os.Stat(l.dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var segs []segment
	open := func() error {
		closeAll(segs)
		segs = nil
		nums, err := l.rotatedNumbers()
		if err != nil {
			return err
		}
		names := make([]string, 0, len(nums)+1)
		for _, n := range nums {
			names = append(names, rotatedName(n))
		}
		names = append(names, activeName)
		for i, name := range names {
			f, err := atomicfile.OpenRegular(l.path(name), os.O_RDONLY, 0)
			if errors.Is(err, os.ErrNotExist) {
				continue // a gap Verify reports, or no active file yet
			}
			if err != nil {
				return ioError("open "+name, err)
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return ioError("stat "+name, err)
			}
			num := 0
			if i < len(nums) {
				num = nums[i]
			}
			segs = append(segs, segment{name: name, num: num, f: f, size: st.Size()})
		}
		return nil
	}
	ran := false
	err := filelock.With(context.Background(), l.path(lockName), func() error {
		ran = true
		return open()
	})
	if err != nil && !ran && !errors.Is(err, filelock.ErrLocked) {
		err = open()
	}
	if err != nil {
		closeAll(segs)
		return nil, err
	}
	return segs, nil
}

func closeAll(segs []segment) {
	for _, s := range segs {
		s.f.Close()
	}
}
