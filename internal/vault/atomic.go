package vault

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// tmpPrefix marks temporary files so a later writer (holding the lock) can
// remove what a crashed writer left behind.
const tmpPrefix = ".tmp-"

// writeAtomic replaces path with data so that a reader sees either the old
// or the new file, never a mix, even across a crash: write a temp file in the
// same directory, fsync it, rename it over path, fsync the directory.
func writeAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, tmpPrefix+base+"-*")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && !isWindows {
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
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", base, err)
	}
	ok = true
	syncDir(dir)
	return nil
}

// removeStaleTemps deletes temp files left by a writer that died between
// create and rename. Only call it while holding the lock: then no live
// writer can own one.
func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// StaleTemps lists leftover temp files, for doctor.
func StaleTemps(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}
