package commands

import (
	"strings"
	"testing"
)

func TestScrubTokens(t *testing.T) {
	grammar := map[string]bool{"secrets": true, "list": true, "set": true, "workspace": true, "allowlist": true, "--header": true, "header": true}
	const value = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
	tests := []struct {
		name     string
		msg      string
		args     []string
		keep, no []string
	}{
		{"a typo of a command word is shown", `unexpected argument secrts, did you mean "secrets"?`, []string{"secrts", "list"}, []string{"secrts"}, nil},
		{"a transposition", `unexpected argument lsit`, []string{"secrets", "lsit"}, []string{"lsit"}, nil},
		{"a value is not", `unexpected argument ` + value, []string{"secrets", "list", value}, nil, []string{value}},
		{"a value after a flag is not", `bad --data=` + value, []string{"call", "--data=" + value}, nil, []string{value}},
		{"a flag value near a command word is not", `bad --data=secrts`, []string{"call", "--data=secrts"}, nil, []string{"secrts"}},
		{"quoted forms go too", `unexpected argument "` + value + `\t"`, []string{value + "\t"}, nil, []string{value}},
	}
	for _, tt := range tests {
		got := scrubTokens(tt.msg, tt.args, grammar)
		for _, k := range tt.keep {
			if !strings.Contains(got, k) {
				t.Errorf("%s: %q lost %q", tt.name, got, k)
			}
		}
		for _, n := range tt.no {
			if strings.Contains(got, n) {
				t.Errorf("%s: %q still holds %q", tt.name, got, n)
			}
		}
	}
}
