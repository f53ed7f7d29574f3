package commands

import (
	"fmt"
	"io"
)

func (r *BrokerReceiveResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Received %s:\n", plural(len(r.Secrets), "secret"))
	for _, s := range r.Secrets {
		fmt.Fprintf(w, "  %s/%s/%s (%s)\n", s.Workspace, s.Project, s.Name, s.Action)
	}
	fmt.Fprintf(w, "Policy added: %s, %s, %s (%s).\n", plural(r.AllowlistAdded, "allowlist entry"), plural(r.BindingsAdded, "binding"),
		plural(r.ReleasesAdded, "value release"), approvedWord(r.Approved))
	return nil
}
