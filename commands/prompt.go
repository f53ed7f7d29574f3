package commands

import (
	"crypto/subtle"
	"fmt"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// newSecretTries is how many times a new passphrase or password is asked
// for before the command gives up.
const newSecretTries = 3

// errEntriesDiffer: the confirmation is not what was typed first.
var errEntriesDiffer = errcode.New(errcode.Usage, "the two entries differ")

// newSecret is a new passphrase or password to ask for on the terminal.
type newSecret struct {
	// intro, if set, is shown once before the first prompt: what the
	// entry is for and how to supply it without a terminal.
	intro  string
	prompt string
	// check refuses a weak entry before the confirmation is asked, so a
	// refused entry is never typed twice.
	check func([]byte) error
	// rerun is the command to run again once every try failed.
	rerun string
	// noTerminal is the error when no prompt can be shown: the caller says
	// how to supply the entry without a terminal.
	noTerminal func(error) error
}

// askNew asks for n and its confirmation. A refused or mismatched entry is
// asked again, up to newSecretTries times, each time saying why on the
// terminal. The person is at a terminal by then, so the final error's hint
// says to run the command again, not to find a terminal.
func (e *Env) askNew(n newSecret) ([]byte, error) {
	if n.intro != "" {
		if err := e.IO.Show(n.intro); err != nil {
			return nil, n.noTerminal(err)
		}
	}
	var last error
	for try := 1; try <= newSecretTries; try++ {
		p, err := e.IO.Prompt(n.prompt)
		if err != nil {
			return nil, n.noTerminal(err)
		}
		if last = n.check(p); last == nil {
			again, err := e.IO.Prompt("Repeat to confirm: ")
			if err != nil {
				clear(p)
				return nil, n.noTerminal(err)
			}
			same := subtle.ConstantTimeCompare(p, again) == 1
			clear(again)
			if same {
				return p, nil
			}
			last = errEntriesDiffer
		}
		clear(p)
		if try < newSecretTries {
			// The reason is a courtesy: should it fail to show, the
			// prompt that follows still asks again.
			_ = e.IO.Show(errcode.Classify(last).Message + "; try again.\n")
		}
	}
	hint := "run `" + n.rerun + "` again and type the same entry at both prompts"
	if last != errEntriesDiffer {
		hint = errcode.Classify(last).Hint + "; then run `" + n.rerun + "` again"
	}
	return nil, errcode.WithHint(fmt.Errorf("%w (%d tries)", last, newSecretTries), hint)
}

// checkNewPassphrase is what an admin or vault passphrase must meet, the
// rule vault.Init and policy.NewApproval enforce on any passphrase.
func checkNewPassphrase(p []byte) error {
	if len(p) < policy.MinPassphraseLen {
		return errcode.WithHint(policy.ErrWeakPassphrase, "a passphrase of several words works well")
	}
	return nil
}
