package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"unicode"
)

// ErrNotRegular: a path that must name a regular file names something else
// (a symlink, a directory, a FIFO, a device). Writing through a planted
// symlink would write wherever it points; reading a FIFO or a device blocks
// or never ends.
var ErrNotRegular = errors.New("not a regular file")

// OpenRegular opens path with flag (os.O_RDONLY, or os.O_WRONLY|os.O_APPEND|
// os.O_CREATE, ...) without following a symlink in the last component and
// without blocking on a FIFO, and fails with ErrNotRegular unless the file
// opened is a regular file. Every file agentsecrets appends to, or reads a
// passphrase from, is opened through it.
//
// On Unix O_NOFOLLOW makes the open itself fail on a symlink, so there is
// no window between a check and the open. Windows has no O_NOFOLLOW: there
// the path is Lstat'ed first and the opened file compared with it.
func OpenRegular(path string, flag int, perm fs.FileMode) (*os.File, error) {
	var before fs.FileInfo
	if noFollow == 0 {
		st, err := os.Lstat(path)
		switch {
		case err == nil && !st.Mode().IsRegular():
			return nil, NotRegular(st.Mode())
		case err == nil:
			before = st
		case !errors.Is(err, fs.ErrNotExist) || flag&os.O_CREATE == 0:
			return nil, err
		}
	}
	f, err := os.OpenFile(path, flag|noFollow|nonBlock, perm)
	if err != nil {
		if isSymlinkErr(err) {
			return nil, fmt.Errorf("%w (symlink)", ErrNotRegular)
		}
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() || before != nil && !os.SameFile(before, st) {
		f.Close()
		return nil, NotRegular(st.Mode())
	}
	if nonBlock != 0 {
		// Regular files ignore O_NONBLOCK, but clear it so that nothing
		// downstream sees a descriptor in an unusual state.
		if err := clearNonBlock(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// CheckRegular reports, without opening it, whether path (not followed if
// a symlink) is a regular file: nil, ErrNotRegular, or the Lstat error.
func CheckRegular(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return NotRegular(st.Mode())
	}
	return nil
}

// NotRegular is ErrNotRegular naming the file type m.
func NotRegular(m fs.FileMode) error { return fmt.Errorf("%w (%s)", ErrNotRegular, KindOf(m)) }

// KindOf names a file type for an error message.
func KindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	case m.IsRegular():
		return "regular file"
	}
	return "special file"
}

// ShowPath is how an error quotes a path the user gave. A value typed or
// pasted where a path belongs ("correct horse battery staple 42") must not
// be echoed into an error an agent reads: the path is shown only when it
// exists, or when it looks like a path (a separator in it, or a leading
// '.' or '~', no whitespace, at most 200 bytes); otherwise only its length.
func ShowPath(p string) string {
	if _, err := os.Lstat(p); err == nil && len(p) <= 4096 {
		return p
	}
	looksLike := len(p) > 0 && len(p) <= 200 &&
		(strings.ContainsAny(p, `/\`) || p[0] == '.' || p[0] == '~') &&
		!strings.ContainsFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	if looksLike {
		return p
	}
	return fmt.Sprintf("<%d bytes>", len(p))
}
