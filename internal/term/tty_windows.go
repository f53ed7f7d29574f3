//go:build windows

package term

import (
	"fmt"
	"os"
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
