//go:build unix

package vault

import "os"

const isWindows = false

// syncDir makes a rename durable: the directory entry is data too.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
