//go:build !linux

package e2e

import "testing"

// ptyStep and ptyRun: the pseudo-terminal tests open the terminal the way
// Linux does (pty_test.go). Elsewhere a test that needs one is skipped,
// and every other test of its file still runs.
type ptyStep struct{ prompt, line string }

func ptyRun(t *testing.T, _ []string, _ string, _ []ptyStep, _ ...string) (*Result, string) {
	t.Helper()
	t.Skip("needs a Linux pseudo-terminal")
	return nil, ""
}
