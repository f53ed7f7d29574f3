package policy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestParseRelease(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"env", ReleaseEnv, true},
		{" OpenClaw ", ReleaseOpenClaw, true},
		{"", "", false},
		{"shell", "", false},
		{"sk_live_0123456789abcdef", "", false},
	}
	for _, tt := range tests {
		got, err := ParseRelease(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseRelease(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("error echoes a value-like word: %v", err)
		}
	}
}

func TestAddRemoveRelease(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		add     string
		want    []string
		widened bool
	}{
		{"first", nil, ReleaseEnv, []string{"env"}, true},
		{"again", []string{"env"}, ReleaseEnv, []string{"env"}, false},
		{"second, sorted", []string{"openclaw"}, ReleaseEnv, []string{"env", "openclaw"}, true},
		{"duplicates in storage collapse", []string{"openclaw", "openclaw"}, ReleaseOpenClaw, []string{"openclaw"}, false},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.in)
		got, widened := AddRelease(in, tt.add)
		if !slices.Equal(got, tt.want) || widened != tt.widened {
			t.Errorf("%s: AddRelease = %v, %v; want %v, %v", tt.name, got, widened, tt.want, tt.widened)
		}
		if !slices.Equal(in, tt.in) {
			t.Errorf("%s: AddRelease modified its input", tt.name)
		}
	}
	got, removed := RemoveRelease([]string{"env", "openclaw"}, ReleaseEnv)
	if !removed || !slices.Equal(got, []string{"openclaw"}) {
		t.Errorf("RemoveRelease = %v, %v", got, removed)
	}
	got, removed = RemoveRelease([]string{"openclaw"}, ReleaseEnv)
	if removed || !slices.Equal(got, []string{"openclaw"}) {
		t.Errorf("RemoveRelease of an absent mode = %v, %v", got, removed)
	}
	if got, _ := RemoveRelease(nil, ReleaseEnv); got == nil {
		t.Error("RemoveRelease returned nil; the index and results want []")
	}
}

func TestCheckRelease(t *testing.T) {
	if err := CheckRelease([]string{"env"}, ReleaseEnv, "w", "p", "KEY"); err != nil {
		t.Fatal(err)
	}
	for _, rs := range [][]string{nil, {"openclaw"}} {
		err := CheckRelease(rs, ReleaseEnv, "w", "p", "KEY")
		if !errors.Is(err, ErrNotReleased) {
			t.Fatalf("releases %v: %v", rs, err)
		}
		rep := errcode.Classify(err)
		if rep.Code != errcode.ApprovalRequired || !strings.Contains(rep.Hint, "agentsecrets secrets bind KEY --release env --workspace w --project p") {
			t.Errorf("releases %v: %+v", rs, rep)
		}
	}
}
