//go:build windows

package commands

import (
	"os"
	"syscall"
)

const createNewProcessGroup = 0x00000200

func detached() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: createNewProcessGroup}
}

// Windows has no SIGTERM; the proxy's state files are removed by stop.
func terminate(p *os.Process) error { return p.Kill() }
