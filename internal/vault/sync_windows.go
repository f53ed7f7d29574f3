//go:build windows

package vault

const isWindows = true

// Windows has no directory fsync; rename is already durable on NTFS.
func syncDir(string) {}
