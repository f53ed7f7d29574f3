// Package atomicfile replaces files in one step: a reader sees the old file
// or the new one, never a torn mix, even across a crash. The vault writes
// its own files with it; files that belong to the user (MCP client
// configs, AGENTS.md) are replaced only if nobody changed them meanwhile,
// and keep their permissions.
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ErrChanged means the file changed between being read and being
// replaced, so writing would discard someone else's edit.
var ErrChanged = errors.New("the file changed while it was being edited")

// Read returns a file's content and mode, following symlinks so that an
// edit replaces the target (a dotfiles link stays a link). A missing file
// reads as empty with exists false.
func Read(path string) (real string, data []byte, mode fs.FileMode, exists bool, err error) {
	real = path
	if r, err := filepath.EvalSymlinks(path); err == nil {
		real = r
	}
	data, err = os.ReadFile(real)
	if errors.Is(err, fs.ErrNotExist) {
		return real, nil, 0, false, nil
	}
	if err != nil {
		return real, nil, 0, false, err
	}
	st, err := os.Stat(real)
	if err != nil {
		return real, nil, 0, false, err
	}
	return real, data, st.Mode().Perm(), true, nil
}

// Replace writes data to path via a temp file in the same directory and a
// rename, with mode perm. expect and existed are what Read returned: just
// before the rename the file must still hold expect (or still be absent),
// otherwise ErrChanged and nothing is written.
func Replace(path string, data []byte, perm fs.FileMode, expect []byte, existed bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Last check before the rename: another program (the client itself)
	// may have written the file since we read it.
	unchanged := func() error {
		cur, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if existed {
				return ErrChanged
			}
		case err != nil:
			return fmt.Errorf("re-read %s: %w", base, err)
		case !existed || !bytes.Equal(cur, expect):
			return ErrChanged
		}
		return nil
	}
	return Write(path, data, perm, "."+base+".agentsecrets-tmp-", unchanged)
}

// Write replaces path with data so that a reader sees either the old or the
// new file, never a mix, even across a crash: a temp file named
// tempPrefix+random in the same directory, written with mode perm and
// fsynced, renamed over path, then the directory fsynced. check, if not
// nil, runs just before the rename; its error aborts the write.
func Write(path string, data []byte, perm fs.FileMode, tempPrefix string, check func() error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// CreateTemp picks a random name and opens it O_CREATE|O_EXCL, which
	// fails on any existing entry, a symlink included: a name planted in
	// advance cannot redirect the write.
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("chmod temp file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temp file: %w", err)
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", base, err)
	}
	done = true
	syncDir(dir)
	return nil
}

// Create writes a new file that must not exist yet (a backup), with perm.
func Create(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
