//go:build unix

package commands

import "syscall"

// execServer replaces this process with the server; it returns only if the
// exec failed.
func execServer(path string, args, environ []string) (int, error) {
	return 0, syscall.Exec(path, append([]string{path}, args...), environ)
}
