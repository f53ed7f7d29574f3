//go:build windows

package commands

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
)

// execServer runs the server as a child with this process's console and
// returns its exit status: Windows has no exec. Ctrl-C reaches both
// processes; the server stops on it, and this one waits for that.
func execServer(path string, args, environ []string) (int, error) {
	signal.Ignore(os.Interrupt)
	defer signal.Reset(os.Interrupt)
	cmd := exec.Command(path, args...)
	cmd.Env = environ
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}
