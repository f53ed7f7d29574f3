//go:build !windows

package commands

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to the child of `env`: the ones a user or
// a supervisor sends to stop, reload or poke a program.
func forwardedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
}

// brokenPipeSignals are caught while `env` copies masked output.
func brokenPipeSignals() []os.Signal { return []os.Signal{syscall.SIGPIPE} }
