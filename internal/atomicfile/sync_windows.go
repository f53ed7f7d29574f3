//go:build windows

package atomicfile

// Windows has no directory fsync; rename is already durable on NTFS.
func syncDir(string) {}
