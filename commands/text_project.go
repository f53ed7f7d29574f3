package commands

import (
	"fmt"
	"io"
)

func (r *ProjectResult) WriteText(w io.Writer) error {
	p := r.Project
	ref := p.Workspace + "/" + p.Name
	switch {
	case r.Created && p.Current:
		fmt.Fprintf(w, "Created project %s and made it current.\n", ref)
	case r.Created:
		fmt.Fprintf(w, "Created project %s.\n", ref)
	case r.LinkFile != "":
		fmt.Fprintf(w, "Linked this directory to project %s (%s).\n", ref, r.LinkFile)
	default:
		fmt.Fprintf(w, "Using project %s.\n", ref)
	}
	if r.Fetched {
		fmt.Fprintln(w, "  fetched from the sync server")
	}
	fmt.Fprintf(w, "  %s\n", plural(p.Secrets, "secret"))
	return nil
}

func (r *ProjectDeleteResult) WriteText(w io.Writer) error {
	if r.DeletedSecrets == 0 {
		fmt.Fprintf(w, "Deleted project %s/%s (it held no secrets).\n", r.Workspace, r.Project)
		return nil
	}
	fmt.Fprintf(w, "Deleted project %s/%s and its %s.\n", r.Workspace, r.Project, plural(r.DeletedSecrets, "secret"))
	return nil
}
