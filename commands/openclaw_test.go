package commands

import (
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
