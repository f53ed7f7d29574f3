package vault

import (
	"context"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Change is what an operation would do to the index, as a human approves
// it.
type Change struct {
	// Widens: the change lets a secret reach more than it can now (a new
	// target, a release, an allowlist entry), so it needs approval.
	Widens bool
	// Lines describe the change, one per line of the approval prompt. Two
	// decisions are the same change when their lines are equal.
	Lines []string
}

// ErrChangedDuringApproval: the index changed between the approval and the
// write, so what was approved is no longer what would be applied.
var ErrChangedDuringApproval = errcode.New(errcode.Conflict, "the policy changed while waiting for approval; nothing was applied")

// Widen makes a change that may widen policy, the one way every command
// does: decide on the current index; if the change widens, approve it
// outside the lock (a human may take minutes to type the admin passphrase,
// and holding the lock would stall every other writer meanwhile); then,
// under the lock, decide again on the index as it is now and apply only
// if the change is the one approved, or no longer widens. A change that
// widens and was not approved, or differs from what was approved, is a
// conflict, and nothing is applied.
//
// decide must only read the index; apply edits it, told whether the change
// was approved (ErrUnchanged skips the write). Widen reports whether
// approval was given.
func (s *Store) Widen(ctx context.Context, decide func(*Index) (Change, error), approve func(*Index, Change) error, apply func(ix *Index, approved bool) error) (approved bool, err error) {
	ix, err := s.Index()
	if err != nil {
		return false, err
	}
	asked, err := decide(ix)
	if err != nil {
		return false, err
	}
	if asked.Widens {
		if err := approve(ix, asked); err != nil {
			return false, err
		}
		approved = true
	}
	err = s.Update(ctx, func(ix *Index) error {
		now, err := decide(ix)
		if err != nil {
			return err
		}
		if now.Widens && (!approved || !slices.Equal(now.Lines, asked.Lines)) {
			return errcode.WithHint(ErrChangedDuringApproval, "run the command again, and approve the change it then shows")
		}
		return apply(ix, approved)
	})
	return approved, err
}
