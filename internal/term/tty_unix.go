//go:build !windows

package term

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func openTerminal() (in, out *os.File, err error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoTTY, err)
	}
	return f, f, nil
}

// endSignals are the signals whose default action ends the process, which
// a hidden read catches to restore the terminal first.
var endSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// EndBy ends the process by sig with its default action, so the parent
// sees a death by that signal (a shell reports 128+N and stops a script),
// as if this process had not caught it: a hidden prompt, or a command
// forwarded to the broker.
func EndBy(sig os.Signal) {
	s, ok := sig.(syscall.Signal)
	if !ok {
		s = syscall.SIGINT
	}
	signal.Reset(s)
	syscall.Kill(os.Getpid(), s)
	// Delivery to this process is immediate unless the signal is ignored
	// (nohup); then exit with the status a shell gives a signal death.
	os.Exit(128 + int(s))
}
