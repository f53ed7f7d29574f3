package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText prints the status line and the body: indented when it is
// JSON, as is when text, described when binary. Headers and the base64 of
// a binary body are in --json (or --select headers).
func (r *CallResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "HTTP %d  %.1f ms  audit %s\n", r.Status, r.DurationMS, r.AuditID)
	switch r.BodyEncoding {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r.Body); err != nil {
			return fmt.Errorf("encode response body: %w", err)
		}
	case "text":
		s, _ := r.Body.(string)
		fmt.Fprintln(w, s)
	case "base64":
		s, _ := r.Body.(string)
		n := len(s)/4*3 - strings.Count(s, "=")
		fmt.Fprintf(w, "(binary body, %s: --select body prints it base64-encoded)\n", plural(n, "byte"))
	default:
		fmt.Fprintln(w, "(empty body)")
	}
	return nil
}
