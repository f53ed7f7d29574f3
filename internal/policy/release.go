package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Release modes: the only ways a value may leave the broker for another
// process (DESIGN sections 1 and 6). Every other path hands out names, or
// sends the value to an upstream it is bound to.
const (
	// ReleaseEnv lets `env -- CMD` put the value in a child's environment.
	ReleaseEnv = "env"
	// ReleaseOpenClaw lets `openclaw resolve` answer OpenClaw with the value.
	ReleaseOpenClaw = "openclaw"
)

// ReleaseModes lists every valid mode, in the order status shows them.
var ReleaseModes = []string{ReleaseEnv, ReleaseOpenClaw}

// ReasonNotReleased is the audit reason of a release a human never approved.
const ReasonNotReleased = "not_released"

// ParseRelease accepts one mode name, case-insensitively.
func ParseRelease(s string) (string, error) {
	m := strings.ToLower(strings.TrimSpace(s))
	if !slices.Contains(ReleaseModes, m) {
		return "", errcode.Errorf(errcode.Usage, "invalid release mode %q (want one of %s)", shortWord(s), strings.Join(ReleaseModes, ", "))
	}
	return m, nil
}

// AddRelease returns releases with mode added, sorted and without
// duplicates, and whether that widened them. Adding a mode is always a
// widening change, so callers must have approval when added is true.
func AddRelease(releases []string, mode string) (out []string, added bool) {
	if slices.Contains(releases, mode) {
		return normaliseReleases(releases), false
	}
	return normaliseReleases(append(slices.Clone(releases), mode)), true
}

// RemoveRelease returns releases without mode, and whether it was there.
// Removing narrows, so it never needs approval.
func RemoveRelease(releases []string, mode string) (out []string, removed bool) {
	out = make([]string, 0, len(releases))
	for _, r := range releases {
		if r == mode {
			removed = true
			continue
		}
		out = append(out, r)
	}
	return normaliseReleases(out), removed
}

func normaliseReleases(rs []string) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// ErrNotReleased: the secret exists but no human approved releasing its
// value this way. Callers surface approval_required with the bind command
// as the hint (ReleaseError builds it).
var ErrNotReleased = errcode.NewReason(errcode.ApprovalRequired, ReasonNotReleased, "the secret's value may not be released to another process")

// CheckRelease decides, from names and stored flags only, whether the value
// of workspace/project/name may be released in mode. Both release front ends
// (env, openclaw resolve) call it before any value is read.
func CheckRelease(releases []string, mode, workspace, project, name string) error {
	if slices.Contains(releases, mode) {
		return nil
	}
	return errcode.WithHint(fmt.Errorf("%w: %s/%s/%s is not approved for %s release", ErrNotReleased, workspace, project, name, mode),
		"a human approves it on a terminal: "+ReleaseBindCommand(mode, workspace, project, name))
}

// ReleaseBindCommand is the command a human runs to approve a release.
func ReleaseBindCommand(mode, workspace, project, name string) string {
	return fmt.Sprintf("agentsecrets secrets bind %s --release %s --workspace %s --project %s", name, mode, workspace, project)
}
