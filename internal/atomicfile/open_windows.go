package atomicfile

import "os"

// Windows has neither O_NOFOLLOW nor FIFOs at a path: OpenRegular checks
// with Lstat instead (see there).
const (
	noFollow = 0
	nonBlock = 0
)

func isSymlinkErr(error) bool { return false }

func clearNonBlock(*os.File) error { return nil }

// CheckPrivate: Windows protects files by ACLs, which the profile
// directory sets; mode bits say nothing there.
func CheckPrivate(os.FileInfo) error { return nil }
