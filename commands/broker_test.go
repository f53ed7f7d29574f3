package commands

import (
	"slices"
	"testing"
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
