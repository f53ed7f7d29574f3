//go:build !windows

package term

import (
	"fmt"
	"os"
)

func openTerminal() (in, out *os.File, err error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errNoTTY, err)
	}
	return f, f, nil
}
