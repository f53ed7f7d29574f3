package vault

import (
	"context"
	"errors"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Team is what this device knows of the members of one remote workspace.
// Public keys and names only: the invite codes themselves are backend
// items (inviteCodePrefix + invite id), like the account material.
type Team struct {
	Server string `json:"server"`
	// Pins are the public keys this device trusts for each member account
	// (by account id): pinned the first time a verified roster named the
	// member, or from a verified invite statement. A member whose keys
	// differ from its pin is refused, never re-trusted silently.
	Pins map[string]*Pin `json:"pins,omitempty"`
	// Invites are the invites this device made and holds the code of (by
	// invite id): only this device can complete them.
	Invites map[string]*HeldInvite `json:"invites,omitempty"`
	// Audit is how far this device uploaded its audit records of the
	// workspace to the team audit stream; nil before the first upload.
	Audit *AuditCursor `json:"audit,omitempty"`
	// KeyVersion is the newest workspace key version this device verified
	// a roster at: a server that later shows an older one hides a removal.
	KeyVersion int `json:"key_version,omitempty"`
}

// AuditCursor is the last audit record this device uploaded for a
// workspace: the next upload starts after it.
type AuditCursor struct {
	// Seq counts the records uploaded so far (the next batch's first
	// record is Seq+1).
	Seq int `json:"seq"`
	// LastID and LastTime are the last uploaded record's id and time; a
	// log rotated past LastID resumes after LastTime.
	LastID   string    `json:"last_id"`
	LastTime time.Time `json:"last_time"`
}

// Pin is one member's pinned public keys.
type Pin struct {
	Email      string    `json:"email"`
	SealPublic []byte    `json:"seal_public_key"`
	SignPublic []byte    `json:"sign_public_key"`
	FirstSeen  time.Time `json:"first_seen"`
	// VerifiedAt is when a human compared the member's fingerprint in
	// person (`workspace members --verify`); nil until then.
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// Admin: this device last verified the account as an admin of the
	// workspace (or an invite statement named it as the inviter or the
	// creator). After a removal the rotating admin signs its own record;
	// only a device that knew it as an admin trusts that (sync.VerifyRoster).
	Admin bool `json:"admin,omitempty"`
}

// HeldInvite names an invite whose code this device holds.
type HeldInvite struct {
	Email     string    `json:"email"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

// inviteCodePrefix starts the backend key of an invite code: two segments
// (meta/NAME), like every account item, so no secret's
// workspace/project/NAME key can equal one.
const inviteCodePrefix = "meta/sync-invite-"

func inviteCodeItem(inviteID string) string { return inviteCodePrefix + inviteID }

// Team returns the team state of workspace id wsID, creating it.
func (ix *Index) Team(wsID, server string) *Team {
	if ix.Teams == nil {
		ix.Teams = map[string]*Team{}
	}
	t := ix.Teams[wsID]
	if t == nil {
		t = &Team{Server: server}
		ix.Teams[wsID] = t
	}
	if t.Pins == nil {
		t.Pins = map[string]*Pin{}
	}
	if t.Invites == nil {
		t.Invites = map[string]*HeldInvite{}
	}
	return t
}

// heldInvite finds an invite this device holds the code of.
func (ix *Index) heldInvite(inviteID string) *HeldInvite {
	for _, t := range ix.Teams {
		if h := t.Invites[inviteID]; h != nil {
			return h
		}
	}
	return nil
}

// ErrNoInviteCode: this device does not hold the code of an invite.
var ErrNoInviteCode = errcode.New(errcode.NotFound, "this device does not hold the code of that invite")

// PutInviteCode stores the code of a new invite in the backend and names
// it in the index, journalled like a secret's value: a crash between the
// two leaves an item no index entry names, which the next write removes.
func (s *Store) PutInviteCode(ctx context.Context, wsID, server, inviteID string, held HeldInvite, code secret.Value) error {
	if code.Empty() || inviteID == "" || wsID == "" {
		return errcode.New(errcode.Internal, "invite code without an invite")
	}
	s.observe(code)
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	key := inviteCodeItem(inviteID)
	return s.lockedIndex(ctx, backend, func(*Index) error {
		if err := s.journal([]string{key}, nil); err != nil {
			return err
		}
		item := encodeBytes(code)
		defer item.Wipe()
		if err := backend.Put(ctx, map[string]secret.Value{key: item}); err != nil {
			return err
		}
		ix, err := s.Index()
		if err != nil {
			return err
		}
		h := held
		ix.Team(wsID, server).Invites[inviteID] = &h
		ix.Pending = without(ix.Pending, []string{key})
		return s.writeIndex(ix)
	})
}

// InviteCode reads the code of an invite this device made.
func (s *Store) InviteCode(ctx context.Context, inviteID string) (secret.Value, error) {
	ix, err := s.Index()
	if err != nil {
		return secret.Value{}, err
	}
	if ix.heldInvite(inviteID) == nil {
		return secret.Value{}, ErrNoInviteCode
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return secret.Value{}, err
	}
	v, err := b.Get(ctx, inviteCodeItem(inviteID))
	if errors.Is(err, ErrValueMissing) {
		return secret.Value{}, errcode.WithHint(ErrNoInviteCode, "cancel the invite and invite again")
	}
	if err != nil {
		return secret.Value{}, err
	}
	defer v.Wipe()
	code, err := decodeBytes(v)
	if err != nil {
		return secret.Value{}, err
	}
	s.observe(code)
	return code, nil
}

// DropInviteCode forgets an invite's code: the index entry first (the key
// journalled), then the backend item, then the journal entry.
func (s *Store) DropInviteCode(ctx context.Context, inviteID string) error {
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	key := inviteCodeItem(inviteID)
	return s.updateWith(ctx, backend, func(ix *Index) error {
		found := false
		for _, t := range ix.Teams {
			if t.Invites[inviteID] != nil {
				delete(t.Invites, inviteID)
				found = true
			}
		}
		if !found {
			return ErrUnchanged
		}
		ix.Pending = append(without(ix.Pending, []string{key}), key)
		return nil
	}, func() error {
		if err := backend.Delete(ctx, []string{key}); err != nil {
			return err
		}
		return s.journal(nil, []string{key})
	})
}
