//go:build linux

package e2e

import (
	"strings"
	"testing"
)

// TestPTYDeleteConfirm: on a terminal, secrets delete names what goes and
// where, deletes on y and keeps everything on anything else.
func TestPTYDeleteConfirm(t *testing.T) {
	v := NewVault(t, "file")
	v.RunIn([]byte("x-value-one-12345"), "secrets", "set", "ONE", "--from-stdin").OK(t)
	v.RunIn([]byte("x-value-two-12345"), "secrets", "set", "TWO", "--from-stdin").OK(t)

	r, tty := ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Delete? [y/N]", "n"}}, "secrets", "delete", "ONE", "TWO")
	r.ErrorCode(t, "denied", 4)
	for _, want := range []string{"delete 2 secrets: ONE, TWO", "workspace:  default", "project:    default", "cannot be recovered"} {
		if !strings.Contains(tty, want) {
			t.Errorf("the question does not say %q: %q", want, tty)
		}
	}
	if got := rbSecrets(t, v.Run("secrets", "list").OK(t)); got["ONE"] != 1 || got["TWO"] != 1 {
		t.Fatalf("a declined delete deleted: %v", got)
	}

	r, _ = ptyRun(t, v.Env(), v.Dir, []ptyStep{{"Delete? [y/N]", "y"}}, "secrets", "delete", "ONE")
	if m := r.OK(t).JSON(t); len(m["deleted"].([]any)) != 1 {
		t.Errorf("delete on y: %s", r.Stdout)
	}
	if got := rbSecrets(t, v.Run("secrets", "list").OK(t)); got["ONE"] != 0 || got["TWO"] != 1 {
		t.Errorf("after y: %v", got)
	}

	// --yes on a terminal asks nothing.
	r, tty = ptyRun(t, v.Env(), v.Dir, nil, "secrets", "delete", "TWO", "--yes")
	r.OK(t)
	if strings.Contains(tty, "Delete?") {
		t.Errorf("--yes still asked: %q", tty)
	}
}
