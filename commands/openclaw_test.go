package commands

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/vault"
)

func TestParseOpenclawID(t *testing.T) {
	def := vault.Selection{Workspace: "w", Project: "p"}
	tests := []struct {
		id, want string // want: workspace/project/name, or "" for invalid
	}{
		{"KEY", "w/p/KEY"},
		{"team/api/STRIPE_KEY", "team/api/STRIPE_KEY"},
		{"STRIPE-KEY", "w/p/STRIPE_KEY"},
		{"my-team/api.v2/STRIPE-LIVE-KEY", "my-team/api.v2/STRIPE_LIVE_KEY"},
		{"-KEY", "w/p/_KEY"},
		{"api/KEY", ""},
		{"a/b/c/KEY", ""},
		{"x/../KEY", ""},
		{"KEY#field", ""},
		{"9KEY", ""},
		{"", ""},
	}
	for _, tt := range tests {
		ref, err := parseOpenclawID(tt.id, def)
		got := ""
		if err == nil {
			got = ref.String()
		}
		if got != tt.want {
			t.Errorf("parseOpenclawID(%q) = %q, %v; want %q", tt.id, got, err, tt.want)
		}
	}
}

func TestReadOpenclawRequest(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"protocolVersion":1,"provider":"as","ids":["A","B"]}`, true},
		{`{"protocolVersion":1,"provider":"as","ids":[],"extra":true}`, true},
		{`{"protocolVersion":1.0,"provider":"as","ids":[]}`, false},
		{`{"protocolVersion":2,"provider":"as","ids":[]}`, false},
		{`{"protocolVersion":"1","provider":"as","ids":[]}`, false},
		{`{"protocolVersion":1,"ids":[]}`, false},
		{`{"protocolVersion":1,"provider":"as"}`, false},
		{`{"protocolVersion":1,"provider":"as","ids":[1]}`, false},
		{`{"protocolVersion":1,"provider":"as","ids":[]} {}`, false},
		{`[]`, false},
		{``, false},
		{strings.Repeat(" ", openclawMaxRequest+1), false},
	}
	for _, tt := range tests {
		_, err := readOpenclawRequest(strings.NewReader(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("readOpenclawRequest(%.60q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

// TestOpenclawAuditFailsClosed: every id of a resolve whose audit record
// cannot be written is answered UNAVAILABLE, refused ids included (their
// refusal records used to be appended with the error dropped), and no
// value is written.
func TestOpenclawAuditFailsClosed(t *testing.T) {
	root, run := fileVault(t)
	const value = "openclaw-audit-value-0123456789"
	run(value+"\n", "secrets", "set", "KEY", "--from-stdin")
	run(value+"-other\n", "secrets", "set", "OTHER", "--from-stdin")
	run("", "secrets", "bind", "KEY", "--release", "openclaw", "--passphrase-file", filepath.Join(root, "admin.pass"))
	logPath := filepath.Join(root, "home", "audit.log")
	if err := os.Remove(logPath); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Mkdir(logPath, 0o700); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(`{"protocolVersion":1,"provider":"as","ids":["KEY","OTHER","MISSING"]}`, "openclaw", "resolve")
	if code != 0 || strings.Contains(out, value) {
		t.Fatalf("exit %d: %s", code, out)
	}
	var resp openclawResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, id := range []string{"KEY", "OTHER", "MISSING"} {
		if got := resp.Errors[id].Code; got != openclawUnavailable {
			t.Errorf("%s: %q, want %s: %s", id, got, openclawUnavailable, out)
		}
	}
	if len(resp.Values) != 0 {
		t.Errorf("values written without an audit record: %s", out)
	}
}
