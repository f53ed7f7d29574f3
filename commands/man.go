package commands

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"
)

// ManPage renders the man page (roff, section 1) from the kong model: every
// command with its arguments, flags, defaults and examples. `make man`
// writes it to docs/agentsecrets.1 and a test fails when that file is
// stale. It is generated here rather than with muesli/mango (or
// mango-kong): mango stamps the current date into the heading, which
// would make the committed page stale every day, and it folds text into
// one paragraph, which leaves no place for examples.
func ManPage() (string, error) {
	io, _, _, _ := TestIO()
	exited := -1
	parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
	if err != nil {
		return "", err
	}
	app := parser.Model
	var b strings.Builder
	b.WriteString(".TH AGENTSECRETS 1 \"\" \"agentsecrets\" \"User Commands\"\n")
	b.WriteString(".SH NAME\nagentsecrets \\- " + roffText(app.Help) + "\n")
	b.WriteString(".SH SYNOPSIS\n.B agentsecrets\n.I command\n[\n.I flags\n] [\n.I arguments\n]\n")
	b.WriteString(".SH DESCRIPTION\n" + roffText(app.Help) + "\n.PP\n" +
		"Output is one JSON value when stdout is not a terminal, and text on a terminal. " +
		"Errors are JSON with a code, a message and a hint naming the next command to run.\n")
	b.WriteString(".SH GLOBAL FLAGS\n")
	writeManFlags(&b, app.Node.Flags)
	b.WriteString(".SH COMMANDS\n")
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if n.Hidden {
			return
		}
		if n.Type == kong.CommandNode && n.Target.Addr().MethodByName("Run").IsValid() {
			writeManCommand(&b, n)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	if ex := examples[""]; len(ex) > 0 {
		b.WriteString(".SH EXAMPLES\n")
		writeManExamples(&b, ex)
	}
	b.WriteString(".SH ENVIRONMENT\n" +
		".TP\n.B AGENTSECRETS_HOME\nDirectory of the vault's config, index and audit log.\n" +
		".TP\n.B AGENTSECRETS_VAULT_PASSPHRASE_FILE\nFile holding the encrypted-file vault's passphrase.\n")
	b.WriteString(".SH SEE ALSO\n.BR agentsecrets\\ schema (1)\n" +
		"prints the JSON Schemas of every command's input and output.\n")
	return b.String(), nil
}

func writeManCommand(b *strings.Builder, n *kong.Node) {
	b.WriteString(".SS \"" + roffText(commandWords(n.Path())) + "\"\n")
	b.WriteString(".B agentsecrets " + roffText(n.Summary()) + "\n.PP\n")
	b.WriteString(roffText(n.Help) + "\n")
	if n.Detail != "" {
		b.WriteString(".PP\n" + roffText(n.Detail) + "\n")
	}
	for _, p := range n.Positional {
		b.WriteString(".TP\n.I " + roffText(p.Summary()) + "\n" + roffText(helpValue(p)) + "\n")
	}
	writeManFlags(b, n.Flags)
	if ex := examples[commandWords(n.Path())]; len(ex) > 0 {
		b.WriteString(".PP\nExamples:\n")
		writeManExamples(b, ex)
	}
}

func writeManFlags(b *strings.Builder, flags []*kong.Flag) {
	for _, f := range flags {
		if f.Hidden {
			continue
		}
		name := "--" + f.Name
		if f.Short != 0 {
			name = "-" + string(f.Short) + ", " + name
		}
		if !f.IsBool() {
			name += "=" + f.FormatPlaceHolder()
		}
		b.WriteString(".TP\n.B " + roffText(name) + "\n" + roffText(helpValue(f.Value)) + "\n")
	}
}

func writeManExamples(b *strings.Builder, lines []string) {
	b.WriteString(".PP\n.RS 4\n.nf\n")
	for _, l := range lines {
		b.WriteString(roffText(l) + "\n")
	}
	b.WriteString(".fi\n.RE\n")
}

// roffText escapes s for a roff text line: backslashes and hyphens, and a
// line that would otherwise start with a control character, and
// characters beyond ASCII as groff's \[uXXXX].
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var esc strings.Builder
	for _, r := range s {
		if r > 0x7e {
			fmt.Fprintf(&esc, `\[u%04X]`, r)
			continue
		}
		esc.WriteRune(r)
	}
	s = esc.String()
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
			lines[i] = `\&` + l
		}
	}
	return strings.Join(lines, "\n")
}
