package vault

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
)

// tmpPrefix marks temporary files so a later writer (holding the lock) can
// remove what a crashed writer left behind.
const tmpPrefix = ".tmp-"

// writeAtomic replaces path with data (0600) in one crash-safe step; its
// temp file carries tmpPrefix so that a later writer can clean up after
// one that crashed.
func writeAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600, tmpPrefix+filepath.Base(path)+"-", nil)
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
