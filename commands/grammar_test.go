package commands

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

func TestCommandField(t *testing.T) {
	index := func(name string) int {
		f, ok := reflect.TypeFor[CLI]().FieldByName(name)
		if !ok {
			t.Fatalf("no CLI field %s", name)
		}
		return f.Index[0]
	}
	cases := []struct {
		args  []string
		field int
		ok    bool
	}{
		{[]string{"call", "--url", "https://x"}, index("Call"), true},
		{[]string{"--format", "text", "secrets", "list"}, index("Secrets"), true},
		{[]string{"--format=text", "--json", "status"}, index("Status"), true},
		{[]string{"--select", "status", "doctor"}, index("Doctor"), true},
		{[]string{"--input", "-", "secrets", "set"}, index("Secrets"), true},
		{[]string{"--vault-passphrase-file", "call", "openclaw", "resolve"}, index("Openclaw"), true},
		{[]string{"--version"}, -1, true},
		{[]string{"version"}, index("Version"), true},
		{[]string{"--json", "version", "--select", "version"}, index("Version"), true},
		{[]string{"schema", "call"}, 0, false},
		{[]string{"mcp", "serve"}, 0, false},
		{[]string{"--help"}, 0, false},
		{[]string{"call", "-h"}, 0, false},
		{[]string{"env", "--", "sh", "-h"}, index("Env"), true},
		{[]string{"secret", "list"}, 0, false},
		{[]string{"--", "status"}, 0, false},
		{nil, -1, false},
	}
	for _, c := range cases {
		field, ok := commandField(c.args)
		if ok != c.ok || ok && field != c.field {
			t.Errorf("commandField(%q) = %d, %v; want %d, %v", c.args, field, ok, c.field, c.ok)
		}
	}
}

// nodeSummary is everything of a node that parsing or help reads.
func nodeSummary(n *kong.Node) string {
	var b strings.Builder
	var walk func(n *kong.Node, depth int)
	walk = func(n *kong.Node, depth int) {
		fmt.Fprintf(&b, "%*s%s %q %q %v\n", depth, "", n.Name, n.Help, n.Detail, n.Hidden)
		for _, f := range n.Flags {
			fmt.Fprintf(&b, "%*s --%s %q def=%q enum=%q req=%v hidden=%v ph=%q env=%q short=%q\n", depth, "",
				f.Name, f.Help, f.Default, f.Enum, f.Required, f.Hidden, f.PlaceHolder, f.Envs, f.Short)
		}
		for _, p := range n.Positional {
			fmt.Fprintf(&b, "%*s <%s> %q req=%v def=%q\n", depth, "", p.Name, p.Help, p.Required, p.Default)
		}
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	walk(n, 0)
	return b.String()
}

// TestPrunedGrammarMatches: the parser built for one command has exactly
// that command's subtree and the global flags of the whole grammar (of a
// group named with one of its subcommands, that subcommand's subtree), and
// a command line parses to the same command, values and errors with either.
func TestPrunedGrammarMatches(t *testing.T) {
	io, _, _, _ := TestIO()
	env := &Env{IO: io}
	exited := -1
	full, err := newParser(&CLI{}, env, &exited)
	if err != nil {
		t.Fatal(err)
	}
	for _, top := range full.Model.Children {
		if wholeGrammar(top.Name) {
			continue
		}
		pruned, err := newParserFor(&CLI{}, env, &exited, []string{top.Name})
		if err != nil {
			t.Fatal(err)
		}
		if len(pruned.Model.Children) != 1 {
			t.Fatalf("%s: pruned grammar has %d commands", top.Name, len(pruned.Model.Children))
		}
		if got, want := nodeSummary(pruned.Model.Children[0]), nodeSummary(top); got != want {
			t.Errorf("%s: pruned subtree differs:\n%s\nwant\n%s", top.Name, got, want)
		}
		var gotFlags, wantFlags []string
		for _, f := range pruned.Model.Flags {
			gotFlags = append(gotFlags, f.Name)
		}
		for _, f := range full.Model.Flags {
			wantFlags = append(wantFlags, f.Name)
		}
		if !reflect.DeepEqual(gotFlags, wantFlags) {
			t.Errorf("%s: global flags %v, want %v", top.Name, gotFlags, wantFlags)
		}
		for _, sub := range top.Children {
			pruned, err := newParserFor(&CLI{}, env, &exited, []string{"--json", top.Name, sub.Name, "x"})
			if err != nil {
				t.Fatal(err)
			}
			group := pruned.Model.Children[0]
			if len(group.Children) != 1 || group.Name != top.Name || group.Help != top.Help {
				t.Fatalf("%s %s: pruned group %q has %d subcommands", top.Name, sub.Name, group.Name, len(group.Children))
			}
			if got, want := nodeSummary(group.Children[0]), nodeSummary(sub); got != want {
				t.Errorf("%s %s: pruned subtree differs:\n%s\nwant\n%s", top.Name, sub.Name, got, want)
			}
		}
	}

	lines := [][]string{
		{"call", "--url", "https://api.example.com/v1", "--bearer", "KEY", "--select", "id"},
		{"--format", "text", "secrets", "list", "--project", "p"},
		{"--json", "status", "--check"},
		{"secrets", "set", "K", "--from-stdin"},
		{"workspace", "allowlist", "add", "api.example.com"},
		{"env", "--", "sh", "-c", "true"},
		{"secrets", "lst"},
		{"call"},
		{"status", "--bogus"},
		{"proxy", "logs", "--last", "x"},
		{"proxy", "--json", "logs", "--last", "5"},
		{"secrets", "list", "--bogus"},
		{"workspace", "allowlist"},
		{"--select", "secrets", "secrets", "diff", "A"},
	}
	for _, line := range lines {
		parse := func(pruned bool) (string, string) {
			cli := &CLI{}
			ex := -1
			var p *kong.Kong
			var err error
			if pruned {
				p, err = newParserFor(cli, env, &ex, line)
			} else {
				p, err = newParser(cli, env, &ex)
			}
			if err != nil {
				t.Fatal(err)
			}
			p.Stderr = discard{}
			kctx, err := p.Parse(line)
			// What runs is the selected node's target, with the globals:
			// commands not selected are not read.
			cmd, target := "", ""
			if kctx != nil {
				cmd = kctx.Command()
				if n := kctx.Selected(); n != nil {
					target = fmt.Sprintf("%T %+v", n.Target.Addr().Interface(), n.Target)
				}
			}
			return fmt.Sprintf("%s %+v %s", cmd, cli.Globals, target), fmt.Sprint(err)
		}
		gotVal, gotErr := parse(true)
		wantVal, wantErr := parse(false)
		if gotVal != wantVal || gotErr != wantErr {
			t.Errorf("%q:\npruned %s / %s\nwhole  %s / %s", line, gotVal, gotErr, wantVal, wantErr)
		}
	}
}

// TestWarmKeychain: the commands that always read a value open the store
// (and so start the keychain's connection) before parsing; no other
// command does, and the broker daemon never does.
func TestWarmKeychain(t *testing.T) {
	root, _ := fileVault(t)
	for _, c := range []struct {
		args   []string
		daemon bool
		warm   bool
	}{
		{[]string{"call", "--url", "https://api.example.com/", "--bearer", "KEY"}, false, true},
		{[]string{"--format", "json", "call", "--url", "https://api.example.com/"}, false, true},
		{[]string{"env", "--only", "KEY", "--", "true"}, false, true},
		{[]string{"secrets", "list"}, false, false},
		{[]string{"status"}, false, false},
		{[]string{"--version"}, false, false},
		{[]string{"call", "--help"}, false, false},
		{[]string{"call", "--url", "https://api.example.com/", "--bearer", "KEY"}, true, false},
	} {
		env, _, _ := testEnvErr(t, root)
		env.daemon = c.daemon
		warmKeychain(c.args, env)
		if got := env.store != nil; got != c.warm {
			t.Errorf("%q (daemon %v): store opened %v, want %v", c.args, c.daemon, got, c.warm)
		}
	}
}
