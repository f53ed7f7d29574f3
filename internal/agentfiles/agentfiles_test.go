package agentfiles

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	f := file{rel: "AGENTS.md", block: "B\n"}
	blk := Begin + "\nB\n" + End + "\n"
	cases := []struct {
		name, cur string
		exists    bool
		want      string
		action    string
		fail      bool
	}{
		{name: "new", want: blk, action: Created},
		{name: "empty file", exists: true, cur: "", want: blk, action: Added},
		{name: "append", exists: true, cur: "# T\n", want: "# T\n\n" + blk, action: Added},
		{name: "append no newline", exists: true, cur: "# T", want: "# T\n\n" + blk, action: Added},
		{name: "same", exists: true, cur: "a\n" + blk + "b\n", want: "a\n" + blk + "b\n", action: Unchanged},
		{name: "stale", exists: true, cur: "a\n" + Begin + "\nold\n" + End + "\nb\n", want: "a\n" + blk + "b\n", action: Updated},
		{name: "stale at end without newline", exists: true, cur: Begin + "\nold\n" + End, want: blk, action: Updated},
		{name: "begin only", exists: true, cur: Begin + "\n", fail: true},
		{name: "end before begin", exists: true, cur: End + "\n" + Begin + "\n", fail: true},
		{name: "two blocks", exists: true, cur: blk + blk, fail: true},
	}
	for _, tc := range cases {
		out, action, err := render(f, []byte(tc.cur), tc.exists)
		if tc.fail {
			if err == nil {
				t.Errorf("%s: accepted", tc.name)
			}
			continue
		}
		if err != nil || string(out) != tc.want || action != tc.action {
			t.Errorf("%s: %q %s %v, want %q %s", tc.name, out, action, err, tc.want, tc.action)
		}
	}
}

func TestClaudeImport(t *testing.T) {
	for cur, skip := range map[string]bool{
		"@AGENTS.md\n":                 true,
		"# x\n  @AGENTS.md  \n":        true,
		"see @AGENTS.md for rules\n":   false,
		Begin + "\n@AGENTS.md\n" + End: false,
		"nothing here\n":               false,
	} {
		if got := importsAgents([]byte(cur)); got != skip {
			t.Errorf("%q: %v", cur, got)
		}
	}
	if !strings.Contains(Instructions, "agentsecrets secrets bind") {
		t.Error("the instructions do not say what to ask a human for")
	}
}
