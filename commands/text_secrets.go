package commands

import (
	"fmt"
	"io"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

func (r *SecretsBindResult) WriteText(w io.Writer) error {
	ref := r.Workspace + "/" + r.Project + "/" + r.Name
	if r.Binding == nil {
		if r.Action == "unchanged" {
			fmt.Fprintf(w, "The value of %s was already released to %s; nothing changed.\n", ref, r.Release)
		} else {
			fmt.Fprintf(w, "Released the value of %s to %s (%s).\n", ref, r.Release, approvedWord(r.Approved))
		}
		fmt.Fprintf(w, "Release modes: %s\n", listWords(r.Releases, "none"))
		return nil
	}
	b := *r.Binding
	switch r.Action {
	case "unchanged":
		fmt.Fprintf(w, "%s was already bound to %s; nothing changed.\n", ref, b.Target())
	case "updated":
		fmt.Fprintf(w, "Updated the binding of %s to %s (%s).\n", ref, b.Target(), approvedWord(r.Approved))
	default:
		fmt.Fprintf(w, "Bound %s to %s (%s).\n", ref, b.Target(), approvedWord(r.Approved))
	}
	fmt.Fprintf(w, "  %s\n", bindingSummary(b))
	return nil
}

func (r *SecretsUnbindResult) WriteText(w io.Writer) error {
	ref := r.Workspace + "/" + r.Project + "/" + r.Name
	switch {
	case len(r.Removed) > 0:
		fmt.Fprintf(w, "Unbound %s from %s:\n", ref, plural(len(r.Removed), "target"))
		for _, b := range r.Removed {
			fmt.Fprintf(w, "  %s\n", b.Target())
		}
	case len(r.RemovedReleases) > 0:
		fmt.Fprintf(w, "Withdrew the value release of %s to %s.\n", ref, listWords(r.RemovedReleases, ""))
	default:
		fmt.Fprintf(w, "%s had nothing to unbind; nothing changed.\n", ref)
	}
	if len(r.Releases) > 0 {
		fmt.Fprintf(w, "The value is still released to %s.\n", listWords(r.Releases, ""))
	}
	return nil
}

func (r *SecretsDeleteResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Deleted %s from %s/%s: %s\n", plural(len(r.Deleted), "secret"), r.Workspace, r.Project, listWords(r.Deleted, "none"))
	return nil
}

// bindingSummary is a binding's grant on one line: methods, surfaces, and
// the switches that widen it.
func bindingSummary(b policy.Binding) string {
	parts := []string{"methods: " + listWords(b.Methods, "any"), "surfaces: " + listWords(b.Surfaces, "none")}
	if len(b.HeaderNames) > 0 {
		parts = append(parts, "header names: "+strings.Join(b.HeaderNames, ", "))
	}
	if b.AllowRange {
		parts = append(parts, "Range allowed")
	}
	if b.AllowEcho {
		parts = append(parts, "echo tripwire off")
	}
	return strings.Join(parts, "; ")
}

// approvedWord says whether a policy change needed the admin passphrase.
func approvedWord(approved bool) string {
	if approved {
		return "approved"
	}
	return "no approval needed"
}
