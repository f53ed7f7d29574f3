package commands

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to the child of `env`; Windows delivers
// only these two to a console program.
func forwardedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM}
}
