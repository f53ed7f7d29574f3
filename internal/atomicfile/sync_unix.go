//go:build unix

package atomicfile

import "os"

// syncDir makes a rename durable: the directory entry is data too.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
