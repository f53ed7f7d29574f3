package commands

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// exampleArgv is the agentsecrets argv of an example's shell line: after a
// pipe, before a redirection, without sudo, quotes removed.
func exampleArgv(t *testing.T, line string) []string {
	t.Helper()
	if i := strings.LastIndex(line, " | "); i >= 0 {
		line = line[i+3:]
	}
	if i := strings.Index(line, " > "); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimPrefix(line, "sudo ")
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("example %q: unbalanced quote", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 || words[0] != "agentsecrets" {
		t.Fatalf("example %q does not run agentsecrets", line)
	}
	return words[1:]
}

func TestExamplesParse(t *testing.T) {
	for path, lines := range examples {
		for _, line := range lines {
			io, _, _, _ := TestIO()
			exited := -1
			parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
			if err != nil {
				t.Fatal(err)
			}
			args := exampleArgv(t, line)
			kctx, err := parser.Parse(args)
			if err != nil || exited >= 0 {
				t.Errorf("example %q: %v (exit %d)", line, err, exited)
				continue
			}
			got := ""
			if node := kctx.Selected(); node != nil {
				got = commandWords(node.Path())
			}
			if path != "" && got != path {
				t.Errorf("example %q of %q runs %q", line, path, got)
			}
		}
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	io, _, _, _ := TestIO()
	exited := -1
	parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if n.Type == kong.CommandNode && n.Target.Addr().MethodByName("Run").IsValid() && len(examples[commandWords(n.Path())]) == 0 {
			t.Errorf("command %q has no example in examples.go", commandWords(n.Path()))
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	for path := range examples {
		if path == "" {
			continue
		}
		if _, err := parser.Parse(strings.Fields(path)); err != nil && strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("examples names %q, which is no command", path)
		}
	}
}

func TestHelpShowsDefaultsAndExamples(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"secrets", "generate", "--help"}, []string{"(default: 32)", "(default: alnum)", "Examples:\n  agentsecrets secrets generate "}},
		{[]string{"proxy", "start", "--help"}, []string{"(default: 8765)", "Examples:\n  agentsecrets proxy start --background"}},
		{[]string{"--help"}, []string{"Examples:\n  agentsecrets init\n"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			io, _, out, _ := TestIO()
			env := &Env{IO: io, Getenv: func(string) string { return "" }}
			if code := Main(c.args, env); code != 0 {
				t.Fatalf("exit %d", code)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("help lacks %q:\n%s", w, out)
				}
			}
			if bytes.Contains(out.Bytes(), []byte("(default: false)")) {
				t.Errorf("help shows a boolean's default:\n%s", out)
			}
		})
	}
}
