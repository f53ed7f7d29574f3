package commands

import (
	"fmt"
	"io"
)

func (r *ProxyStopResult) WriteText(w io.Writer) error {
	switch {
	case r.Stopped:
		fmt.Fprintf(w, "Stopped the proxy (pid %d).\n", r.PID)
	case r.PID != 0:
		fmt.Fprintf(w, "The proxy (pid %d) was not running; removed its leftover files.\n", r.PID)
	default:
		fmt.Fprintln(w, "The proxy was not running.")
	}
	return nil
}
