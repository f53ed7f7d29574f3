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

// brokenPipeSignals: Windows has no SIGPIPE; a write to a closed pipe
// fails with an error.
func brokenPipeSignals() []os.Signal { return nil }
