package commands

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/alecthomas/kong"
)

// TestEveryCommandHasText walks the grammar: every command whose result
// is printed must have a text form, or a person on a terminal gets raw
// JSON. Results that own stdout (passthrough) print nothing of their own.
func TestEveryCommandHasText(t *testing.T) {
	io, _, _, _ := TestIO()
	exited := -1
	parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
	if err != nil {
		t.Fatal(err)
	}
	textWriter := reflect.TypeOf((*TextWriter)(nil)).Elem()
	passes := reflect.TypeOf((*passthrough)(nil)).Elem()
	var missing []string
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, c := range n.Children {
			walk(c)
		}
		if n.Type != kong.CommandNode {
			return
		}
		run := n.Target.Addr().MethodByName("Run")
		if !run.IsValid() {
			return
		}
		out := run.Type().Out(0)
		if !out.Implements(textWriter) && !out.Implements(passes) {
			missing = append(missing, commandWords(n.Path())+" ("+out.String()+")")
		}
	}
	walk(parser.Model.Node)
	if len(missing) > 0 {
		t.Errorf("results with no WriteText fall back to indented JSON on a terminal:\n%s", strings.Join(missing, "\n"))
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		word string
		want string
	}{
		{0, "workspace", "0 workspaces"},
		{1, "workspace", "1 workspace"},
		{2, "project", "2 projects"},
		{1, "allowlist entry", "1 allowlist entry"},
		{3, "allowlist entry", "3 allowlist entries"},
		{2, "key", "2 keys"},
		{2, "pass", "2 passes"},
	} {
		if got := plural(c.n, c.word); got != c.want {
			t.Errorf("plural(%d, %q) = %q, want %q", c.n, c.word, got, c.want)
		}
	}
}

func TestDecideColours(t *testing.T) {
	for _, c := range []struct {
		name           string
		out, err       bool
		env            map[string]string
		wantOut, wantE bool
	}{
		{"terminals", true, true, nil, true, true},
		{"stdout piped", false, true, nil, false, true},
		{"stderr piped", true, false, nil, true, false},
		{"NO_COLOR", true, true, map[string]string{"NO_COLOR": "1"}, false, false},
		{"NO_COLOR any value", true, true, map[string]string{"NO_COLOR": "false"}, false, false},
		{"CLICOLOR_FORCE", false, false, map[string]string{"CLICOLOR_FORCE": "1"}, true, true},
		{"CLICOLOR_FORCE=0", false, true, map[string]string{"CLICOLOR_FORCE": "0"}, false, true},
		{"NO_COLOR beats CLICOLOR_FORCE", true, true, map[string]string{"NO_COLOR": "1", "CLICOLOR_FORCE": "1"}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DecideColours(c.out, c.err, func(k string) string { return c.env[k] })
			if got != (Colours{Out: c.wantOut, Err: c.wantE}) {
				t.Errorf("got %+v, want out=%v err=%v", got, c.wantOut, c.wantE)
			}
		})
	}
}

// TestColourOnlyMarksAndOnlyInText: with colour on, the warning prefix and
// a blocked log line are styled, an allowed line is not, nothing a result
// holds can inject a style code, and JSON never carries one.
func TestColourOnlyMarksAndOnlyInText(t *testing.T) {
	res := func() *ProxyLogsResult {
		return &ProxyLogsResult{Records: []audit.Record{
			{Time: goldenTime, Method: "GET", Host: "api.example.com", Path: "/ok\x1b[0m", Decision: audit.DecisionAllowed, Status: 200},
			{Time: goldenTime, Method: "POST", Host: "evil.example", Path: "/x", Decision: audit.DecisionBlocked, Reason: "not_allowlisted"},
		}}
	}
	io, _, out, errb := TestIO()
	io.Colour = Colours{Out: true, Err: true}
	if err := render(io, formatText, "", false, res()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%q", out.String())
	}
	if strings.Contains(lines[0], "\x1b") || strings.Contains(lines[1], "\x1b") {
		t.Errorf("the header or an allowed line is styled, or a path injected a code:\n%q", out.String())
	}
	if !strings.HasPrefix(lines[2], "\x1b["+styleError+"m") || !strings.HasSuffix(lines[2], "\x1b[0m") || strings.Count(lines[2], "\x1b") != 2 {
		t.Errorf("the blocked line is not styled once, whole: %q", lines[2])
	}
	if errb.Len() != 0 {
		t.Errorf("stderr: %q", errb.String())
	}

	warned := &ProxyStatusResult{Notes: Notes{Warnings: []string{"careful\x1b[31m"}}}
	out.Reset()
	if err := render(io, formatText, "", false, warned); err != nil {
		t.Fatal(err)
	}
	if got, want := errb.String(), "\x1b["+styleWarn+"mwarning:\x1b[0m careful\\x1b[31m\n"; got != want {
		t.Errorf("warning: got %q, want %q", got, want)
	}

	for _, r := range []any{res(), warned} {
		out.Reset()
		errb.Reset()
		if err := render(io, formatJSON, "", false, r); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out.Bytes(), []byte("\x1b")) || errb.Len() != 0 {
			t.Errorf("JSON got colour or stderr: %q %q", out.String(), errb.String())
		}
	}
}

// TestErrorPrefixColour: the error prefix is styled on a colour stderr and
// plain otherwise; the JSON envelope never is.
func TestErrorPrefixColour(t *testing.T) {
	for _, c := range []struct {
		colour bool
		format string
		want   string
	}{
		{true, formatText, "agentsecrets: \x1b[" + styleError + "merror:\x1b[0m no such secret\n"},
		{false, formatText, "agentsecrets: error: no such secret\n"},
	} {
		env, _, errb := testEnvErr(t, t.TempDir())
		env.IO.Colour = Colours{Out: c.colour, Err: c.colour}
		reportError(env, c.format, errcode.New(errcode.NotFound, "no such secret"), nil)
		if got, _, _ := strings.Cut(errb.String(), "hint:"); got != c.want {
			t.Errorf("colour %v: got %q, want %q", c.colour, got, c.want)
		}
	}
	env, out, errb := testEnvErr(t, t.TempDir())
	env.IO.Colour = Colours{Out: true, Err: true}
	reportError(env, formatJSON, errcode.New(errcode.NotFound, "no such secret"), nil)
	if bytes.Contains(out.Bytes(), []byte("\x1b")) || errb.Len() != 0 {
		t.Errorf("JSON error got colour: %q %q", out.String(), errb.String())
	}
}

// TestWarningsPrintOnce: render prints a result's warnings to stderr, and
// no text renderer repeats them in its own output.
func TestWarningsPrintOnce(t *testing.T) {
	for name, result := range goldenResults() {
		w, ok := result.(Warner)
		if !ok || len(w.WarningList()) == 0 {
			continue
		}
		warnings := append([]string(nil), w.WarningList()...)
		env, out, errb := testEnvErr(t, t.TempDir())
		if err := renderGuarded(env, formatText, "", result); err != nil {
			t.Fatal(err)
		}
		all := out.String() + errb.String()
		for _, msg := range warnings {
			if n := strings.Count(all, termEscape(msg)); n != 1 {
				t.Errorf("%s: warning %q printed %d times:\n%s", name, msg, n, all)
			}
		}
	}
}
