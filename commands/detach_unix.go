//go:build unix

package commands

import (
	"os"
	"syscall"
)

// detached starts the background proxy in its own session, so it outlives
// the terminal and the shell that started it.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
