package commands

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/term"
)

func TestAskNew(t *testing.T) {
	const good = "correct horse battery"
	tests := []struct {
		name    string
		answers []string // typed in order; "!" is a terminal that fails
		want    string   // the passphrase returned, "" for an error
		asked   []string // the prompts shown, in order
		shown   int      // how many "try again" messages
		hint    string   // in the error's hint
		code    errcode.Code
	}{
		{name: "match", answers: []string{good, good}, want: good,
			asked: []string{"New: ", "Repeat to confirm: "}},
		{name: "weak is refused before the confirmation", answers: []string{"short", good, good}, want: good,
			asked: []string{"New: ", "New: ", "Repeat to confirm: "}, shown: 1},
		{name: "mismatch is asked again", answers: []string{good, "other entry", good, good}, want: good,
			asked: []string{"New: ", "Repeat to confirm: ", "New: ", "Repeat to confirm: "}, shown: 1},
		{name: "three mismatches give up", answers: []string{good, "x1 entry", good, "x2 entry", good, "x3 entry"},
			asked: []string{"New: ", "Repeat to confirm: ", "New: ", "Repeat to confirm: ", "New: ", "Repeat to confirm: "},
			shown: 2, hint: "run `agentsecrets init` again and type the same entry", code: errcode.Usage},
		{name: "three weak entries give up", answers: []string{"a", "b", "c"},
			asked: []string{"New: ", "New: ", "New: "}, shown: 2, hint: "several words", code: errcode.Usage},
		{name: "no terminal", answers: []string{"!"}, asked: []string{"New: "}, hint: "no-terminal hint", code: errcode.Usage},
		{name: "terminal lost at the confirmation", answers: []string{good, "!"}, asked: []string{"New: ", "Repeat to confirm: "},
			hint: "no-terminal hint", code: errcode.Usage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := &Env{}
			env.IO, _, _, _ = TestIO()
			var asked, shown []string
			answers := slices.Clone(tc.answers)
			env.IO.Prompt = func(p string) ([]byte, error) {
				asked = append(asked, p)
				if len(answers) == 0 {
					t.Fatalf("asked %q with no answer left", p)
				}
				a := answers[0]
				answers = answers[1:]
				if a == "!" {
					return nil, term.ErrNoTerminal
				}
				return []byte(a), nil
			}
			env.IO.Show = func(s string) error { shown = append(shown, s); return nil }
			got, err := env.askNew(newSecret{prompt: "New: ", check: checkNewPassphrase, rerun: "agentsecrets init",
				noTerminal: func(err error) error { return errcode.WithHint(err, "no-terminal hint") }})
			if !slices.Equal(asked, tc.asked) {
				t.Errorf("asked %q, want %q", asked, tc.asked)
			}
			if len(shown) != tc.shown {
				t.Errorf("showed %q, want %d messages", shown, tc.shown)
			}
			for _, s := range shown {
				for _, a := range tc.answers {
					if len(a) > 1 && strings.Contains(s, a) {
						t.Errorf("message %q quotes a typed entry", s)
					}
				}
			}
			if tc.want != "" {
				if err != nil || string(got) != tc.want {
					t.Fatalf("got %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			r := errcode.Classify(err)
			if r.Code != tc.code || !strings.Contains(r.Hint, tc.hint) {
				t.Errorf("error %+v: want code %s and a hint with %q", r, tc.code, tc.hint)
			}
			if tc.hint != "no-terminal hint" && strings.Contains(r.Hint, "terminal") {
				t.Errorf("hint %q sends a person at a terminal to a terminal", r.Hint)
			}
			if tc.hint == "no-terminal hint" && !errors.Is(err, term.ErrNoTerminal) {
				t.Errorf("error %v does not keep its cause", err)
			}
		})
	}
}
