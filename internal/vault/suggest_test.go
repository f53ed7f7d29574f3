package vault

import (
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestSuggest(t *testing.T) {
	names := []string{"STRIPE_KEY", "STRIPE_KEYS", "STRIPE_SECRET", "GITHUB_TOKEN", "DB", "OPENAI_API_KEY"}
	tests := []struct {
		name string
		want []string
	}{
		{"STRIPE_KY", []string{"STRIPE_KEY", "STRIPE_KEYS"}},
		{"stripe_key", []string{"STRIPE_KEY", "STRIPE_KEYS"}}, // names are exact; another case is a typo
		{"STIRPE_KEY", []string{"STRIPE_KEY", "STRIPE_KEYS"}},
		{"GITHUB_TOKN", []string{"GITHUB_TOKEN"}},
		{"DV", []string{"DB"}},
		{"OPENAI_KEY", nil},
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", nil},
		{"X", nil},
	}
	for _, tt := range tests {
		got := Suggest(tt.name, names)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Suggest(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
	many := []string{"KEY_A", "KEY_B", "KEY_C", "KEY_D", "KEY_E"}
	if got := Suggest("KEY_", many); len(got) != maxSuggestions {
		t.Errorf("Suggest offers %v, want at most %d", got, maxSuggestions)
	}
	if got := DidYouMean("STRIPE_KY", names); got != "did you mean STRIPE_KEY or STRIPE_KEYS? " {
		t.Errorf("DidYouMean = %q", got)
	}
}

func TestNotFoundSuggests(t *testing.T) {
	ix := &Index{Workspaces: map[string]*Workspace{
		"default": {Projects: map[string]*Project{
			"my-app": {Secrets: map[string]*Secret{"STRIPE_KEY": {Version: 1}, "GITHUB_TOKEN": {Version: 1}}},
		}},
		"staging": {Projects: map[string]*Project{}},
	}}
	sel := Selection{Workspace: "default", Project: "my-app"}
	tests := []struct {
		what string
		err  error
		hint string
	}{
		{"secret", second(ix.Secret(sel, "STRIPE_KYE")), "did you mean STRIPE_KEY? run `agentsecrets secrets list`"},
		{"secret far from any", second(ix.Secret(sel, "AWS_ACCESS")), "run `agentsecrets secrets list`"},
		{"project", second(ix.Project(Selection{Workspace: "default", Project: "my-ap"})), "did you mean my-app? run `agentsecrets project list`"},
		{"workspace", second(ix.Workspace("stagign")), "did you mean staging? run `agentsecrets workspace list`"},
	}
	for _, tt := range tests {
		rep := errcode.Classify(tt.err)
		if rep.Code != errcode.NotFound || !strings.HasPrefix(rep.Hint, tt.hint) {
			t.Errorf("%s: got %+v, want hint starting %q", tt.what, rep, tt.hint)
		}
	}
}

func second[T any](_ T, err error) error { return err }
