package commands

import (
	"fmt"
	"io"
)

func (r *WorkspaceResult) WriteText(w io.Writer) error {
	ws := r.Workspace
	switch {
	case r.Created && ws.Current:
		fmt.Fprintf(w, "Created workspace %s and made it current.\n", ws.Name)
	case r.Created:
		fmt.Fprintf(w, "Created workspace %s.\n", ws.Name)
	case r.Fetched:
		fmt.Fprintf(w, "Fetched workspace %s from %s; it is now current.\n", ws.Name, ws.Server)
	default:
		fmt.Fprintf(w, "Switched to workspace %s.\n", ws.Name)
	}
	fmt.Fprintf(w, "  %s, %s, %s\n", ws.Location, plural(len(ws.Projects), "project"), plural(ws.Allowlist, "allowlisted host"))
	return nil
}

func (r *AllowlistResult) WriteText(w io.Writer) error {
	e := r.Entry
	flags := flagIf(e.AllowHTTP, " allow-http") + flagIf(e.AllowPrivate, " allow-private")
	switch r.Action {
	case "removed":
		fmt.Fprintf(w, "Removed %s from the allowlist of workspace %s.\n", e.Target(), r.Workspace)
	case "unchanged":
		fmt.Fprintf(w, "%s%s was already allowed in workspace %s; nothing changed.\n", e.Target(), flags, r.Workspace)
	case "updated":
		was := ""
		if b := r.Before; b != nil {
			was = ", was:" + orNone(flagIf(b.AllowHTTP, " allow-http")+flagIf(b.AllowPrivate, " allow-private"))
		}
		fmt.Fprintf(w, "Updated %s in the allowlist of workspace %s (%s), now:%s%s\n", e.Target(), r.Workspace, approvedWord(r.Approved), orNone(flags), was)
	default:
		fmt.Fprintf(w, "Allowed %s%s in workspace %s (%s).\n", e.Target(), flags, r.Workspace, approvedWord(r.Approved))
	}
	return nil
}

// orNone is a list of flags, or " no exemptions" when there are none.
func orNone(flags string) string {
	if flags == "" {
		return " no exemptions"
	}
	return flags
}
