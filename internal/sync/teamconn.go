package sync

// The team operations of a signed-in device: invite, join, complete,
// list members and verify one in person.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TeamNotes are what the automatic completion of invites reports inside
// the result of an unrelated command (a pull, a push, a diff): the
// invites it completed, and why it could not complete others.
type TeamNotes struct {
	Completed []InviteInfo `json:"completed_invites,omitempty"`
	Warnings  []string     `json:"warnings,omitempty"`
}

// WarningList implements the commands' Warner.
func (n TeamNotes) WarningList() []string { return n.Warnings }

// InviteInfo is one invite as the commands show it.
type InviteInfo struct {
	ID          string    `json:"id"`
	Workspace   string    `json:"workspace"`
	WorkspaceID string    `json:"workspace_id"`
	Email       string    `json:"email"`
	Role        string    `json:"role"`
	State       string    `json:"state"`
	InvitedBy   string    `json:"invited_by"`
	CreatedAt   time.Time `json:"created_at"`
	// CodeHere is true when this device holds the invite's code, so it
	// completes the invite once it is accepted.
	CodeHere bool `json:"code_here,omitempty"`
	// Fingerprint is the invitee's account fingerprint as the server lists
	// it, once accepted (AccountFingerprint).
	Fingerprint string `json:"fingerprint,omitempty"`
}

func inviteInfo(inv syncapi.Invite, held bool) InviteInfo {
	i := InviteInfo{ID: inv.ID, Workspace: inv.WorkspaceName, WorkspaceID: inv.WorkspaceID, Email: inv.Email, Role: inv.Role,
		State: inv.State, InvitedBy: inv.InvitedByEmail, CreatedAt: inv.CreatedAt, CodeHere: held}
	if inv.PublicKeys != nil && validKeys(*inv.PublicKeys) {
		i.Fingerprint = AccountFingerprint(*inv.PublicKeys)
	}
	return i
}

// verifyRoster verifies a workspace's members against this device's pins
// and pins the members seen for the first time.
func (c *Conn) verifyRoster(ctx context.Context, ix *vault.Index, detail syncapi.WorkspaceDetail, id Identity) (*Roster, error) {
	wsID, kv := detail.Workspace.ID, max(detail.KeyVersion, 1)
	var pins map[string]*vault.Pin
	seen := 0
	if t := ix.Teams[wsID]; t != nil {
		pins, seen = t.Pins, t.KeyVersion
	}
	if kv < seen {
		return nil, hiddenRemoval(wsID, kv, seen)
	}
	r, err := VerifyRoster(detail, pins, Party{AccountID: c.Account.ID, Keys: id.Public()}, c.now())
	if err != nil {
		return nil, err
	}
	if kv > seen {
		err := c.Store.Update(ctx, func(ix *vault.Index) error {
			t := ix.Team(wsID, c.Account.Server)
			if kv < t.KeyVersion {
				return hiddenRemoval(wsID, kv, t.KeyVersion)
			}
			t.KeyVersion = kv
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(r.NewPins) > 0 {
		if err := c.pin(ctx, detail.Workspace.ID, r.NewPins); err != nil {
			return nil, err
		}
	}
	if len(r.AdminMarks) > 0 {
		err := c.Store.Update(ctx, func(ix *vault.Index) error {
			t := ix.Team(detail.Workspace.ID, c.Account.Server)
			for id, admin := range r.AdminMarks {
				if p := t.Pins[id]; p != nil {
					p.Admin = admin
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// hiddenRemoval refuses a workspace whose key version went back: every
// removal moves it forward, so an older one is a server replaying the
// workspace as it was before someone was removed. Sealing anything under
// those keys would hand it to the removed member.
func hiddenRemoval(wsID string, shown, seen int) error {
	return refuse("the members of workspace "+wsID, CheckRollback,
		fmt.Sprintf("the server shows workspace key version %d, but this device already verified version %d (a removal hidden from it)", shown, seen))
}

// pin records new pins. A pin another process recorded meanwhile with
// other keys is a conflict, never overwritten.
func (c *Conn) pin(ctx context.Context, wsID string, pins map[string]*vault.Pin) error {
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		t := ix.Team(wsID, c.Account.Server)
		for id, p := range pins {
			if old := t.Pins[id]; old != nil {
				if !sameKeys(syncapi.PublicKeys{Seal: old.SealPublic, Sign: old.SignPublic}, syncapi.PublicKeys{Seal: p.SealPublic, Sign: p.SignPublic}) {
					return pinMismatch(MembershipRecord{Email: old.Email, WorkspaceID: wsID})
				}
				old.Admin = old.Admin || p.Admin
				continue
			}
			t.Pins[id] = p
		}
		return nil
	})
}

// adminKeys opens a remote workspace's keys for an action only its admins
// may take (what: "invite", …); the caller wipes them.
func (c *Conn) adminKeys(ctx context.Context, wsName, what string) (*vault.RemoteWorkspace, *Keys, error) {
	remote, err := c.remoteWorkspace(wsName)
	if err != nil {
		return nil, nil, err
	}
	k, err := c.workspaceKeys(ctx, remote.ID)
	if err != nil {
		return nil, nil, err
	}
	if k.roster.Role(c.Account.ID) != RoleAdmin {
		k.Wipe()
		return nil, nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "only an admin of workspace %s can %s", wsName, what), "ask a workspace admin")
	}
	return remote, k, nil
}

// rosterOf fetches a remote workspace and verifies its roster, completing
// the invites this device holds codes for on the way. The keys are wiped:
// the caller wants the roster and the listing, not the keys.
func (c *Conn) rosterOf(ctx context.Context, wsName string) (*vault.RemoteWorkspace, *Keys, error) {
	remote, err := c.remoteWorkspace(wsName)
	if err != nil {
		return nil, nil, err
	}
	k, err := c.workspaceKeys(ctx, remote.ID)
	if err != nil {
		return nil, nil, err
	}
	k.Wipe()
	return remote, k, nil
}

// remoteWorkspace resolves a local workspace name to its remote copy.
func (c *Conn) remoteWorkspace(wsName string) (*vault.RemoteWorkspace, error) {
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	w, err := ix.Workspace(wsName)
	if err != nil {
		return nil, err
	}
	if w.Remote == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "workspace %s is local only", wsName),
			"run `agentsecrets workspace publish "+wsName+"` first")
	}
	if err := c.checkServer(w.Remote); err != nil {
		return nil, err
	}
	return w.Remote, nil
}

// InviteResult reports `workspace invite`. Code is shown once: this
// device keeps it (in the vault backend) to complete the invite.
type InviteResult struct {
	Workspace   string `json:"workspace"`
	WorkspaceID string `json:"workspace_id"`
	Email       string `json:"email"`
	Role        string `json:"role"`
	InviteID    string `json:"invite_id"`
	Code        string `json:"code"`
	State       string `json:"state"`
	TeamNotes
}

// NormEmail lowercases and trims an email, as the server keys accounts.
func NormEmail(e string) (string, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	at := strings.IndexByte(e, '@')
	if len(e) > 254 || at < 1 || at == len(e)-1 || strings.ContainsAny(e, " \t\r\n") {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "the email is not a valid address"), "pass an address like bob@example.com")
	}
	return e, nil
}

// Invite invites email into a remote workspace with role. The device's
// account must be an admin of the verified roster. The code is made here,
// stored in the vault backend, and never sent: the server gets the
// statement MACed under it.
func (c *Conn) Invite(ctx context.Context, wsName, email, role string) (*InviteResult, error) {
	email, err := NormEmail(email)
	if err != nil {
		return nil, err
	}
	if err := ValidateRole(role); err != nil {
		return nil, err
	}
	remote, k, err := c.adminKeys(ctx, wsName, "invite")
	if err != nil {
		return nil, err
	}
	k.Wipe() // an invite seals nothing yet
	r := k.roster
	for _, m := range r.Members {
		if strings.EqualFold(m.Record.Email, email) {
			return nil, errcode.Errorf(errcode.Conflict, "%s is already a member of workspace %s", email, wsName)
		}
	}
	inviteID, err := newID()
	if err != nil {
		return nil, err
	}
	code, err := NewInviteCode()
	if err != nil {
		return nil, err
	}
	defer clear(code)
	now := c.now().UTC()
	creator := r.Members[r.CreatorID].Record
	st := InviteStatement{WorkspaceID: remote.ID, WorkspaceName: k.Detail.Workspace.Name, InviteID: inviteID, Email: email, Role: role,
		Inviter: Party{AccountID: c.Account.ID, Keys: k.id.Public()}, Creator: Party{AccountID: creator.AccountID, Keys: creator.PublicKeys},
		CreatedAt: now}
	stmt, err := SignInviteStatement(k.id, st, code)
	if err != nil {
		return nil, err
	}
	// The code is stored before the server hears of the invite: an
	// invite this device cannot complete would be a dead end.
	held := vault.HeldInvite{Email: email, Role: role, CreatedAt: now}
	if err := c.Store.PutInviteCode(ctx, remote.ID, c.Account.Server, inviteID, held, secret.New(code)); err != nil {
		return nil, err
	}
	inv, err := c.Client.CreateInvite(ctx, remote.ID, syncapi.CreateInviteRequest{ID: inviteID, Email: email, Role: role, Statement: stmt})
	if err != nil {
		if NotSent(err) || errcode.Classify(err).Code != errcode.Unavailable {
			// Refused or never sent: the code is of no use.
			_ = c.Store.DropInviteCode(ctx, inviteID)
		}
		return nil, err
	}
	state := inv.State
	if state == "" {
		state = syncapi.InviteOpen
	}
	return &InviteResult{Workspace: wsName, WorkspaceID: remote.ID, Email: email, Role: role, InviteID: inviteID,
		Code: FormatInviteCode(code), State: state, TeamNotes: c.notes}, nil
}

// InvitesResult reports `workspace invites`.
type InvitesResult struct {
	// Mine are the invites addressed to this account.
	Mine []InviteInfo `json:"mine"`
	// Sent are the open and accepted invites of the workspaces this
	// account administers.
	Sent []InviteInfo `json:"sent"`
	TeamNotes
}

// Invites lists the invites addressed to this account and, for every
// workspace it administers, the workspace's open and accepted invites,
// after completing the accepted ones this device holds the code of.
func (c *Conn) Invites(ctx context.Context) (*InvitesResult, error) {
	mine, err := c.Client.MyInvites(ctx)
	if err != nil {
		return nil, err
	}
	res := &InvitesResult{Mine: []InviteInfo{}, Sent: []InviteInfo{}}
	for _, inv := range mine.Invites {
		res.Mine = append(res.Mine, inviteInfo(inv, false))
	}
	list, err := c.RemoteWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	for _, w := range list {
		if w.Role != RoleAdmin {
			continue
		}
		k, err := c.workspaceKeys(ctx, w.ID)
		if err != nil {
			c.notes.Warnings = append(c.notes.Warnings, fmt.Sprintf("workspace %s: %s", w.Name, errcode.Classify(err).Message))
			continue
		}
		k.Wipe()
		sent, err := c.Client.WorkspaceInvites(ctx, w.ID)
		if err != nil {
			return nil, err
		}
		for _, inv := range sent.Invites {
			res.Sent = append(res.Sent, inviteInfo(inv, heldIn(ix, w.ID, inv.ID)))
		}
	}
	res.TeamNotes = c.notes
	return res, c.completeErr
}

// holdsInvites reports whether this device holds invite codes of wsID.
func holdsInvites(ix *vault.Index, wsID string) bool {
	t := ix.Teams[wsID]
	return t != nil && len(t.Invites) > 0
}

func heldIn(ix *vault.Index, wsID, inviteID string) bool {
	t := ix.Teams[wsID]
	return t != nil && t.Invites[inviteID] != nil
}

// completeHeld completes each accepted invite of k's workspace whose code
// this device holds: the invitee's proof is checked against the keys the
// server lists (a mismatch seals nothing, leaves the invite as it is and
// sets completeErr), then the workspace key is sealed to those keys, the
// record signed, the invite completed, the invitee pinned and the code
// forgotten. Other failures become warnings: they must not break the
// command that triggered the completion. It returns how many it completed.
func (c *Conn) completeHeld(ctx context.Context, k *Keys) int {
	if !k.held {
		return 0
	}
	ix, err := c.Store.Index()
	if err != nil {
		c.warn(err)
		return 0
	}
	t := ix.Teams[k.WorkspaceID]
	if t == nil {
		return 0
	}
	if k.roster.Role(c.Account.ID) != RoleAdmin {
		c.notes.Warnings = append(c.notes.Warnings, fmt.Sprintf("this device holds invite codes of workspace %s, but this account is no longer an admin there", k.Detail.Workspace.Name))
		return 0
	}
	list, err := c.Client.WorkspaceInvites(ctx, k.WorkspaceID)
	if err != nil {
		c.warn(err)
		return 0
	}
	listed := map[string]syncapi.Invite{}
	for _, inv := range list.Invites {
		listed[inv.ID] = inv
	}
	done := 0
	for _, inviteID := range vault.SortedKeys(t.Invites) {
		held := t.Invites[inviteID]
		inv, ok := listed[inviteID]
		if !ok {
			// Completed, canceled or expired: the code is of no use.
			if err := c.Store.DropInviteCode(ctx, inviteID); err != nil {
				c.warn(err)
			}
			continue
		}
		if inv.State != syncapi.InviteAccepted {
			continue
		}
		info, err := c.complete(ctx, k, inviteID, held, inv)
		if err != nil {
			if CheckOf(err) == CheckInviteCode || CheckOf(err) == CheckPin {
				if c.completeErr == nil {
					c.completeErr = err
				}
			}
			c.warn(err)
			continue
		}
		c.notes.Completed = append(c.notes.Completed, info)
		done++
	}
	return done
}

func (c *Conn) warn(err error) {
	c.notes.Warnings = append(c.notes.Warnings, "completing invites: "+errcode.Classify(err).Message)
}

// complete completes one accepted invite (see completeHeld).
func (c *Conn) complete(ctx context.Context, k *Keys, inviteID string, held *vault.HeldInvite, inv syncapi.Invite) (InviteInfo, error) {
	code, err := c.Store.InviteCode(ctx, inviteID)
	if err != nil {
		return InviteInfo{}, err
	}
	defer code.Wipe()
	if inv.PublicKeys == nil || inv.AccountID == "" {
		return InviteInfo{}, refuse("the acceptance of the invite of "+held.Email, CheckFormat, "the server lists no account or keys for it")
	}
	keys := *inv.PublicKeys
	if err := CheckInviteProof(code.Reveal(), k.WorkspaceID, inviteID, held.Email, inv.AccountID, keys, inv.Proof); err != nil {
		return InviteInfo{}, err
	}
	if k.roster.Members[inv.AccountID] != nil {
		return InviteInfo{}, errcode.Errorf(errcode.Conflict, "account %s (%s) is already a member of workspace %s", inv.AccountID, held.Email, k.Detail.Workspace.Name)
	}
	self := k.roster.Members[c.Account.ID].Record
	sealed, err := SealWorkspaceKey(keys, k.Workspace)
	if err != nil {
		return InviteInfo{}, err
	}
	now := c.now().UTC()
	rec, err := SignMembership(k.id, MembershipRecord{WorkspaceID: k.WorkspaceID, AccountID: inv.AccountID, Email: held.Email, Role: held.Role,
		PublicKeys: keys, KeyVersion: self.KeyVersion, AddedBy: c.Account.ID, AddedAt: now}, sealed)
	if err != nil {
		return InviteInfo{}, err
	}
	// Pinned before the server adds the member: from now on this device
	// trusts these keys for that account only.
	pin := &vault.Pin{Email: held.Email, SealPublic: keys.Seal, SignPublic: keys.Sign, FirstSeen: now}
	if err := c.pin(ctx, k.WorkspaceID, map[string]*vault.Pin{inv.AccountID: pin}); err != nil {
		return InviteInfo{}, err
	}
	if _, err := c.Client.CompleteInvite(ctx, k.WorkspaceID, inviteID, syncapi.CompleteInviteRequest{Record: rec, SealedKey: sealed}); err != nil {
		return InviteInfo{}, err
	}
	if err := c.Store.DropInviteCode(ctx, inviteID); err != nil {
		c.warn(err)
	}
	info := inviteInfo(inv, false)
	info.State = syncapi.InviteCompleted
	return info, nil
}

// JoinResult reports `workspace join`.
type JoinResult struct {
	Workspace   string `json:"workspace"`
	WorkspaceID string `json:"workspace_id"`
	InviteID    string `json:"invite_id,omitempty"`
	Role        string `json:"role,omitempty"`
	InvitedBy   string `json:"invited_by,omitempty"`
	// State is accepted (waiting for the inviting admin's device to
	// complete the invite) or joined (a member; the workspace is known
	// here now).
	State string `json:"state" jsonschema:"enum=accepted,enum=joined"`
	Next  string `json:"next,omitempty"`
}

// Join states.
const (
	JoinAccepted = "accepted"
	JoinJoined   = "joined"
)

// Join accepts the invite to workspace name (or with that invite id)
// addressed to this account: the statement must verify under the code,
// the inviter's and creator's keys are pinned from it, and the proof of
// this account's keys is sent. If the inviting admin's device completed
// the invite already, the workspace is adopted here.
func (c *Conn) Join(ctx context.Context, name, codeText string) (*JoinResult, error) {
	code, err := ParseInviteCode(codeText)
	if err != nil {
		return nil, err
	}
	defer clear(code)
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	mine, err := c.Client.MyInvites(ctx)
	if err != nil {
		return nil, err
	}
	var found []syncapi.Invite
	for _, inv := range mine.Invites {
		if inv.WorkspaceName == name || inv.ID == name {
			found = append(found, inv)
		}
	}
	switch len(found) {
	case 0:
		// Completed meanwhile (a completed invite is not listed): a
		// member already, so the workspace is fetched.
		res, err := c.joined(ctx, name, "")
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, errNotMember) {
			return nil, err
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "no invite to workspace %s for %s", name, c.Account.Email),
			"run `agentsecrets workspace invites`, or ask an admin of the workspace to run `agentsecrets workspace invite "+c.Account.Email+"`")
	case 1:
	default:
		ids := make([]string, len(found))
		for i, inv := range found {
			ids[i] = inv.ID
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%d invites name workspace %s: %s", len(found), name, strings.Join(ids, ", ")),
			"run `agentsecrets workspace join INVITE_ID --code CODE` with one of those ids")
	}
	inv := found[0]
	st, err := OpenInviteStatement(inv.Statement, code)
	if err != nil {
		if CheckOf(err) == CheckInviteCode {
			return nil, errcode.WithHint(err, "check the code with "+inv.InvitedByEmail+" (in person); if it is right, the server changed the invite: do not join")
		}
		return nil, err
	}
	subject := "the invite statement"
	switch {
	case st.InviteID != inv.ID || st.WorkspaceID != inv.WorkspaceID || st.WorkspaceName != inv.WorkspaceName:
		return nil, refuse(subject, CheckRetarget, "it names another invite or workspace than the server lists")
	case !strings.EqualFold(st.Email, c.Account.Email):
		return nil, refuse(subject, CheckRetarget, "it invites another email than this account's")
	case st.Role != inv.Role || st.Inviter.AccountID != inv.InvitedBy:
		return nil, refuse(subject, CheckMetadata, "the server's listing differs from the signed statement")
	}
	now := c.now().UTC()
	pins := map[string]*vault.Pin{
		st.Inviter.AccountID: {Email: inv.InvitedByEmail, SealPublic: st.Inviter.Keys.Seal, SignPublic: st.Inviter.Keys.Sign, FirstSeen: now, Admin: true},
	}
	if st.Creator.AccountID != st.Inviter.AccountID {
		// The creator's email is not in the statement; the first verified
		// roster names it.
		pins[st.Creator.AccountID] = &vault.Pin{SealPublic: st.Creator.Keys.Seal, SignPublic: st.Creator.Keys.Sign, FirstSeen: now, Admin: true}
	} else if !sameKeys(st.Creator.Keys, st.Inviter.Keys) {
		return nil, refuse(subject, CheckKeys, "it names two sets of keys for one account")
	}
	if err := c.pin(ctx, st.WorkspaceID, pins); err != nil {
		return nil, err
	}
	proof, err := InviteProof(code, st.WorkspaceID, st.InviteID, st.Email, c.Account.ID, id.Public())
	if err != nil {
		return nil, err
	}
	if _, err := c.Client.AcceptInvite(ctx, inv.ID, syncapi.AcceptInviteRequest{Proof: proof}); err != nil {
		return nil, err
	}
	res, err := c.joined(ctx, inv.WorkspaceName, inv.WorkspaceID)
	if err == nil {
		res.InviteID, res.Role, res.InvitedBy = inv.ID, inv.Role, inv.InvitedByEmail
		return res, nil
	}
	if !errors.Is(err, errNotMember) {
		return nil, errcode.WithHint(err, "the invite is accepted; once this is fixed, run `agentsecrets workspace join "+inv.WorkspaceName+" --code CODE` again")
	}
	return &JoinResult{Workspace: inv.WorkspaceName, WorkspaceID: inv.WorkspaceID, InviteID: inv.ID, Role: inv.Role, InvitedBy: inv.InvitedByEmail,
		State: JoinAccepted, Next: "waiting for " + inv.InvitedByEmail + " to complete the invite: it happens on their device the next time they run a workspace command (e.g. `agentsecrets workspace members`); then run `agentsecrets workspace switch " + inv.WorkspaceName + "`"}, nil
}

// errNotMember: the account is not (yet) a member of the workspace.
var errNotMember = errors.New("not a member yet")

// joined adopts workspace name (id wsID, "" for any) if this account is a
// member of it; errNotMember if not.
func (c *Conn) joined(ctx context.Context, name, wsID string) (*JoinResult, error) {
	list, err := c.RemoteWorkspaces(ctx)
	if err != nil {
		return nil, err
	}
	for _, w := range list {
		if w.Name != name || wsID != "" && w.ID != wsID {
			continue
		}
		ix, err := c.Store.Index()
		if err != nil {
			return nil, err
		}
		local := ""
		for n, lw := range ix.Workspaces {
			if lw.Remote != nil && lw.Remote.ID == w.ID {
				local = n
			}
		}
		if local == "" {
			if err := c.AdoptWorkspace(ctx, w.Name); err != nil {
				return nil, err
			}
			local = w.Name
		} else {
			// Known here already: verify the roster all the same.
			k, err := c.workspaceKeys(ctx, w.ID)
			if err != nil {
				return nil, err
			}
			k.Wipe()
		}
		return &JoinResult{Workspace: local, WorkspaceID: w.ID, State: JoinJoined, Next: "run `agentsecrets workspace switch " + local + "`"}, nil
	}
	return nil, errNotMember
}

// MemberInfo is one verified member.
type MemberInfo struct {
	Email       string    `json:"email"`
	AccountID   string    `json:"account_id"`
	Role        string    `json:"role"`
	Fingerprint string    `json:"fingerprint"`
	SealKey     string    `json:"seal_key_fingerprint"`
	SignKey     string    `json:"sign_key_fingerprint"`
	AddedBy     string    `json:"added_by"`
	AddedAt     time.Time `json:"added_at"`
	PinnedAt    time.Time `json:"pinned_at"`
	// VerifiedAt is when a human on this device checked the fingerprint
	// in person (`workspace members --verify`).
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	// Verification is self (this account), verified (checked in person)
	// or pinned (trusted since first seen).
	Verification string `json:"verification" jsonschema:"enum=self,enum=verified,enum=pinned"`
}

// MembersResult reports `workspace members`.
type MembersResult struct {
	Workspace   string       `json:"workspace"`
	WorkspaceID string       `json:"workspace_id"`
	Members     []MemberInfo `json:"members"`
	// Verified names the member marked verified by this run.
	Verified string `json:"verified,omitempty"`
	TeamNotes
}

// Members lists the verified roster of a remote workspace, after
// completing the accepted invites this device holds the code of.
func (c *Conn) Members(ctx context.Context, wsName string) (*MembersResult, error) {
	remote, k, err := c.rosterOf(ctx, wsName)
	if err != nil {
		return nil, err
	}
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	pins := ix.Team(remote.ID, c.Account.Server).Pins
	res := &MembersResult{Workspace: wsName, WorkspaceID: remote.ID, Members: []MemberInfo{}, TeamNotes: c.notes}
	for _, id := range vault.SortedKeys(k.roster.Members) {
		m := k.roster.Members[id]
		rec := m.Record
		mi := MemberInfo{Email: rec.Email, AccountID: id, Role: rec.Role, Fingerprint: AccountFingerprint(rec.PublicKeys),
			SealKey: crypto.KeyFingerprint(rec.PublicKeys.Seal), SignKey: crypto.KeyFingerprint(rec.PublicKeys.Sign),
			AddedBy: rec.AddedBy, AddedAt: rec.AddedAt, Verification: "pinned"}
		if by := k.roster.Members[rec.AddedBy]; by != nil {
			mi.AddedBy = by.Record.Email
		}
		if p := pins[id]; p != nil {
			mi.PinnedAt, mi.VerifiedAt = p.FirstSeen, p.VerifiedAt
			if p.VerifiedAt != nil {
				mi.Verification = "verified"
			}
		}
		if id == c.Account.ID {
			mi.Verification = "self"
		}
		res.Members = append(res.Members, mi)
	}
	return res, c.completeErr
}

// VerifyMember marks a member's pin verified, if fingerprint (as a human
// read it from the member's `agentsecrets account show`) is the account
// fingerprint of the keys this device pinned; else conflict.
func (c *Conn) VerifyMember(ctx context.Context, wsName, email, fingerprint string) (*MembersResult, error) {
	res, err := c.Members(ctx, wsName)
	if err != nil {
		return nil, err
	}
	var target *MemberInfo
	for i := range res.Members {
		if strings.EqualFold(res.Members[i].Email, strings.TrimSpace(email)) {
			target = &res.Members[i]
		}
	}
	if target == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s is not a member of workspace %s", email, wsName), "run `agentsecrets workspace members`")
	}
	if normFingerprint(fingerprint) != normFingerprint(target.Fingerprint) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "the fingerprint given for %s is not the one this device pinned", target.Email),
			"compare again in person (they run `agentsecrets account show`); if it still differs, the server gave this device other keys: do not share secrets with that member until it is explained")
	}
	now := c.now().UTC()
	err = c.Store.Update(ctx, func(ix *vault.Index) error {
		p := ix.Team(res.WorkspaceID, c.Account.Server).Pins[target.AccountID]
		if p == nil || AccountFingerprint(syncapi.PublicKeys{Seal: p.SealPublic, Sign: p.SignPublic}) != target.Fingerprint {
			return errcode.Errorf(errcode.Conflict, "the pin of %s changed meanwhile; retry", target.Email)
		}
		p.VerifiedAt = &now
		return nil
	})
	if err != nil {
		return nil, err
	}
	target.VerifiedAt = &now
	if target.Verification != "self" {
		target.Verification = "verified"
	}
	res.Verified = target.Email
	return res, nil
}
