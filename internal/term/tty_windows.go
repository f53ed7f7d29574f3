//go:build windows

package term

import (
	"fmt"
	"os"
	"syscall"
)

func openTerminal() (in, out *os.File, err error) {
	in, err = os.OpenFile("CONIN$", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoTTY, err)
	}
	out, err = os.OpenFile("CONOUT$", os.O_WRONLY, 0)
	if err != nil {
		in.Close()
		return nil, nil, fmt.Errorf("%w: %v", errNoTTY, err)
	}
	return in, out, nil
}

// endSignals are the console events that end the process, which a hidden
// read catches to restore the console mode first.
var endSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// EndBy ends the process after sig with the status a POSIX shell gives a
// death by SIGINT, which scripts test for.
func EndBy(os.Signal) {
	os.Exit(130)
}
