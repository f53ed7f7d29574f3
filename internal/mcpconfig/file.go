package mcpconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// MaxConfigSize bounds a client config read: real ones are a few KiB.
// A larger file is refused, never read whole.
const MaxConfigSize = 8 << 20

// ErrNotRegular: a config path that is a directory, a named pipe, a
// device or a socket (or a symlink to one). Reading a FIFO blocks until
// someone writes; /dev/zero never ends. Only regular files are edited.
var ErrNotRegular = errcode.New(errcode.Conflict, "config path is not a regular file")

// ErrTooLarge: a config file past MaxConfigSize.
var ErrTooLarge = errcode.New(errcode.Conflict, fmt.Sprintf("config file is larger than %d MiB", MaxConfigSize>>20))

// readConfig returns a config file's content and mode, following symlinks
// so that an edit replaces the target (a dotfiles link stays a link). A
// missing file reads as empty with exists false. The file is opened
// non-blocking (a FIFO cannot hold the open), checked to be regular on
// the open descriptor (no swap between check and read) and read up to
// MaxConfigSize.
func readConfig(path string) (real string, data []byte, mode fs.FileMode, exists bool, err error) {
	real = path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	data, mode, exists, err = readRegular(real)
	return real, data, mode, exists, err
}

func readRegular(path string) (data []byte, mode fs.FileMode, exists bool, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, false, fmt.Errorf("%w (%s)", ErrNotRegular, atomicfile.KindOf(st.Mode()))
	}
	if st.Size() > MaxConfigSize {
		return nil, 0, false, ErrTooLarge
	}
	// The size may grow after the stat: the cap holds on what is read.
	data, err = io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, 0, false, err
	}
	if len(data) > MaxConfigSize {
		return nil, 0, false, ErrTooLarge
	}
	return data, st.Mode().Perm(), true, nil
}

// replaceConfig writes data to path (already symlink-resolved) via a temp
// file and a rename, with mode perm, if the file still holds expect (or
// is still absent): otherwise atomicfile.ErrChanged and nothing is
// written. The re-read is as bounded as the first read.
func replaceConfig(path string, data []byte, perm fs.FileMode, expect []byte, existed bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	unchanged := func() error { return holds(path, expect, existed) }
	return atomicfile.Write(path, data, perm, "."+base+".agentsecrets-tmp-", unchanged)
}

// holds checks that path still holds expect (or is still absent when
// existed is false): otherwise atomicfile.ErrChanged.
func holds(path string, expect []byte, existed bool) error {
	cur, _, exists, err := readRegular(path)
	switch {
	case err != nil:
		return err
	case exists != existed || !bytes.Equal(cur, expect):
		return atomicfile.ErrChanged
	}
	return nil
}
