package commands

import (
	"slices"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestWithoutInput: --input was expanded by the client, so the daemon
// gets the command line without it (it would read the file, or stdin,
// again); words after -- are the child's and stay.
func TestWithoutInput(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"call", "--input", "-"}, []string{"call"}},
		{[]string{"call", "--input=f.json", "--url", "u"}, []string{"call", "--url", "u"}},
		{[]string{"--input", "f.json", "secrets", "list"}, []string{"secrets", "list"}},
		{[]string{"env", "--only", "K", "--", "cmd", "--input", "x"}, []string{"env", "--only", "K", "--", "cmd", "--input", "x"}},
		{[]string{"status"}, []string{"status"}},
	}
	for _, tt := range tests {
		if got := withoutInput(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("withoutInput(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestRunsInDaemon pins where commands run with a broker: everything that
// reads or changes the vault, policy or audit log in the daemon; the
// user's own listeners, configs and the daemon's operation on the client.
func TestRunsInDaemon(t *testing.T) {
	daemon := []string{"init", "status", "doctor", "secrets set", "secrets list", "call", "workspace allowlist add", "project use",
		"proxy logs", "audit verify", "mcp serve", "openclaw resolve", "env", "login", "broker token create", "broker whoami"}
	client := []string{"schema", "proxy start", "proxy stop", "proxy status", "mcp install", "server", "broker run",
		"broker install", "broker status", "broker migrate"}
	for _, c := range daemon {
		if !runsInDaemon(c) {
			t.Errorf("%s should run in the daemon", c)
		}
	}
	for _, c := range client {
		if runsInDaemon(c) {
			t.Errorf("%s should run on the client", c)
		}
	}
}

// TestParseClient covers --user of `broker run`: a name or uid, with or
// without grants, and what is refused.
func TestParseClient(t *testing.T) {
	tests := []struct {
		in     string
		uid    uint32
		grants string
		err    bool
	}{
		{in: "0", uid: 0, grants: "nothing"},
		{in: "root", uid: 0, grants: "nothing"},
		{in: "1001=acme", uid: 1001, grants: "acme"},
		{in: "root=acme/web,default", uid: 0, grants: "acme/web, default"},
		{in: "no-such-user-here", err: true},
		{in: "root=", err: true},
		{in: "root=acme/", err: true},
		{in: "root=a b", err: true},
		{in: "=acme", err: true},
	}
	for _, tt := range tests {
		spec, err := parseClient(tt.in)
		if tt.err {
			if err == nil {
				t.Errorf("parseClient(%q) = %+v, want an error", tt.in, spec)
			}
			continue
		}
		if err != nil || spec.UID != tt.uid || (&limits{grants: spec.Grants}).list() != tt.grants {
			t.Errorf("parseClient(%q) = %+v, %v; want uid %d grants %s", tt.in, spec, err, tt.uid, tt.grants)
		}
	}
}

// TestLimits: a project grant covers that project only, a workspace grant
// every project and the workspace-wide commands; a token narrows and
// never widens.
func TestLimits(t *testing.T) {
	sel := func(ws, p string) vault.Selection { return vault.Selection{Workspace: ws, Project: p} }
	user := &limits{who: "uid 1001", grants: []grant{{Workspace: "acme", Project: "web"}, {Workspace: "lab"}}}
	for _, tt := range []struct {
		l    *limits
		sel  vault.Selection
		want bool
	}{
		{nil, sel("any", "thing"), true},
		{user, sel("acme", "web"), true},
		{user, sel("acme", "api"), false},
		{user, sel("acme", ""), false},
		{user, sel("lab", "x"), true},
		{user, sel("lab", ""), true},
		{user.narrow("token ci", []grant{{Workspace: "lab", Project: "x"}}), sel("lab", "x"), true},
		{user.narrow("token ci", []grant{{Workspace: "lab", Project: "x"}}), sel("lab", "y"), false},
		{user.narrow("token ci", []grant{{Workspace: "acme"}}), sel("acme", "web"), true},
		{user.narrow("token ci", []grant{{Workspace: "acme"}}), sel("acme", "api"), false},
		{user.narrow("token ci", []grant{{Workspace: "other"}}), sel("other", "x"), false},
		{(*limits)(nil).narrow("token ci", []grant{{Workspace: "acme"}}), sel("acme", "x"), true},
		{(*limits)(nil).narrow("token ci", []grant{{Workspace: "acme"}}), sel("lab", "x"), false},
	} {
		err := tt.l.allow(tt.sel)
		if (err == nil) != tt.want {
			t.Errorf("%v.allow(%v) = %v, want allowed=%v", tt.l, tt.sel, err, tt.want)
		}
	}
}
