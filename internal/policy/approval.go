package policy

import (
	"errors"
	"fmt"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Approval is the stored form of the admin passphrase: a salted Argon2id
// hash, never the passphrase.
type Approval struct {
	KDF  crypto.KDFParams `json:"kdf"`
	Hash []byte           `json:"hash"`
}

// ReasonApprovalDenied is the audit reason of a wrong admin passphrase.
const ReasonApprovalDenied = "approval_denied"

// MinPassphraseLen is the shortest admin or vault passphrase accepted.
const MinPassphraseLen = 8

var (
	// ErrApprovalRequired: the change widens policy and no passphrase was
	// given. Callers surface code approval_required with a hint a human runs.
	ErrApprovalRequired = errcode.New(errcode.ApprovalRequired, "this change widens what a secret can reach and needs the admin passphrase")
	// ErrApprovalDenied: a passphrase was given and it is wrong.
	ErrApprovalDenied = errcode.NewReason(errcode.Denied, ReasonApprovalDenied, "wrong admin passphrase")
	// ErrWeakPassphrase: shorter than MinPassphraseLen.
	ErrWeakPassphrase = errcode.New(errcode.Usage, fmt.Sprintf("passphrase must be at least %d characters", MinPassphraseLen))
)

// NewApproval hashes passphrase with a fresh salt.
func NewApproval(passphrase []byte) (Approval, error) {
	if len(passphrase) < MinPassphraseLen {
		return Approval{}, ErrWeakPassphrase
	}
	p, err := crypto.DefaultKDF()
	if err != nil {
		return Approval{}, err
	}
	h, err := crypto.DeriveKey(passphrase, p)
	if err != nil {
		return Approval{}, err
	}
	return Approval{KDF: p, Hash: h}, nil
}

// Verify checks passphrase against the stored hash.
func (a Approval) Verify(passphrase []byte) error {
	if len(a.Hash) == 0 {
		return errors.New("no admin passphrase is configured; run `agentsecrets init`")
	}
	ok, err := crypto.VerifyDerived(passphrase, a.KDF, a.Hash)
	if err != nil {
		return fmt.Errorf("verify approval: %w", err)
	}
	if !ok {
		return ErrApprovalDenied
	}
	return nil
}
