package sync

// Teams: invite codes, invite statements and proofs, and the verified
// roster of a workspace (docs/protocol.md, "Invites" and "Roster").
//
// The server holds every account's public keys, so it could hand an
// inviting admin its own key in place of the invitee's. An invite code,
// made by the inviting admin's client, shown once and given to the
// invitee out of band, never sent to the server, authenticates both
// directions: the admin's statement (who invites, the inviter's and the
// creator's keys) is MACed under it, and so is the invitee's proof of
// their keys, which the admin's client checks before sealing anything.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Invite code format.
const (
	// InviteCodeSize is the number of random bytes of an invite code.
	InviteCodeSize = 20
	// InviteCodePrefix starts the text form of a code.
	InviteCodePrefix = "asinv-"
	// inviteCodeKeyInfo is the HKDF info of the key a code MACs under.
	inviteCodeKeyInfo = "agentsecrets v1 invite code"
)

// inviteBase32 is lowercase base32 without padding: 20 bytes are exactly
// 32 characters, shown as eight groups of four.
var inviteBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewInviteCode makes a random invite code.
func NewInviteCode() ([]byte, error) { return crypto.Random(InviteCodeSize) }

// FormatInviteCode is the text form of a code: asinv-xxxx-xxxx-…
func FormatInviteCode(code []byte) string {
	s := inviteBase32.EncodeToString(code)
	groups := make([]string, 0, len(s)/4+1)
	for i := 0; i < len(s); i += 4 {
		groups = append(groups, s[i:min(i+4, len(s))])
	}
	return InviteCodePrefix + strings.Join(groups, "-")
}

// ParseInviteCode reverses FormatInviteCode. It ignores case, and '-' and
// spaces after the prefix, so a code read aloud and typed back parses.
// Errors never echo the input: it is a secret.
func ParseInviteCode(s string) ([]byte, error) {
	bad := func(why string) error {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "the invite code is not valid: %s", why),
			"pass the code exactly as the inviting admin gave it: asinv- followed by 32 letters and digits")
	}
	s = strings.ToLower(strings.TrimSpace(s))
	rest, ok := strings.CutPrefix(s, InviteCodePrefix)
	if !ok {
		return nil, bad("it does not start with " + InviteCodePrefix)
	}
	rest = strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, rest)
	if len(rest) != inviteBase32.EncodedLen(InviteCodeSize) {
		return nil, bad(fmt.Sprintf("it has %d characters after the prefix, not %d", len(rest), inviteBase32.EncodedLen(InviteCodeSize)))
	}
	code, err := inviteBase32.DecodeString(rest)
	if err != nil || len(code) != InviteCodeSize {
		return nil, bad("it holds characters outside a-z and 2-7")
	}
	return code, nil
}

// inviteCodeKey is HKDF-SHA-256(code, no salt, inviteCodeKeyInfo, 32).
func inviteCodeKey(code []byte) ([]byte, error) {
	if len(code) != InviteCodeSize {
		return nil, fmt.Errorf("invite code is %d bytes, want %d", len(code), InviteCodeSize)
	}
	return hkdf.Key(sha256.New, code, nil, inviteCodeKeyInfo, crypto.KeySize)
}

func codeMAC(code, msg []byte) ([]byte, error) {
	k, err := inviteCodeKey(code)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	m := hmac.New(sha256.New, k)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Party is an account with its public keys, as a statement names it.
type Party struct {
	AccountID string
	Keys      syncapi.PublicKeys
}

// InviteStatement is what an inviting admin tells the invitee, signed by
// the admin and authenticated under the invite code.
type InviteStatement struct {
	WorkspaceID   string
	WorkspaceName string
	InviteID      string
	Email         string
	Role          string
	Inviter       Party
	Creator       Party
	CreatedAt     time.Time
}

// statementFields: domain, 11 fields, created_at; then the signature and
// the MAC, each a field of its own.
const statementSigned = 13

func (s InviteStatement) signed() []byte {
	return crypto.Fields([]byte(domainStatement),
		[]byte(s.WorkspaceID), []byte(s.WorkspaceName), []byte(s.InviteID), []byte(s.Email), []byte(s.Role),
		[]byte(s.Inviter.AccountID), s.Inviter.Keys.Seal, s.Inviter.Keys.Sign,
		[]byte(s.Creator.AccountID), s.Creator.Keys.Seal, s.Creator.Keys.Sign,
		crypto.Uint64Field(uint64(s.CreatedAt.UnixNano())))
}

func validKeys(k syncapi.PublicKeys) bool {
	return len(k.Seal) == crypto.X25519KeySize && len(k.Sign) == ed25519.PublicKeySize
}

// SignInviteStatement signs s as inviter (whose public keys must be the
// statement's inviter keys) and MACs it under code.
func SignInviteStatement(inviter Identity, s InviteStatement, code []byte) ([]byte, error) {
	if s.WorkspaceID == "" || s.InviteID == "" || s.Email == "" || s.Inviter.AccountID == "" || s.Creator.AccountID == "" || s.CreatedAt.IsZero() {
		return nil, errors.New("invite statement needs a workspace, an invite id, an email, the inviter, the creator and a time")
	}
	if !checkRole(s.Role) || !validKeys(s.Inviter.Keys) || !validKeys(s.Creator.Keys) {
		return nil, errors.New("invite statement needs a valid role and the inviter's and creator's public keys")
	}
	pub := inviter.Public()
	if !bytes.Equal(pub.Seal, s.Inviter.Keys.Seal) || !bytes.Equal(pub.Sign, s.Inviter.Keys.Sign) {
		return nil, errors.New("invite statement names other inviter keys than the signer's")
	}
	signed := s.signed()
	sig, err := inviter.sign(signed)
	if err != nil {
		return nil, err
	}
	out := crypto.AppendField(signed, sig)
	mac, err := codeMAC(code, out)
	if err != nil {
		return nil, err
	}
	return crypto.AppendField(out, mac), nil
}

// OpenInviteStatement parses a statement strictly, checks its MAC under
// code (the server cannot forge it) and the inviter's signature with the
// inviter keys it names. The caller checks it names the invite it holds.
func OpenInviteStatement(b, code []byte) (InviteStatement, error) {
	const subject = "the invite statement"
	f, err := parseFields(b, statementSigned+2, domainStatement)
	if err != nil {
		return InviteStatement{}, refuse(subject, CheckFormat, err.Error())
	}
	withSig := b[:len(b)-4-len(f[statementSigned+1])]
	signed := withSig[:len(withSig)-4-len(f[statementSigned])]
	mac, err := codeMAC(code, withSig)
	if err != nil {
		return InviteStatement{}, refuse(subject, CheckFormat, err.Error())
	}
	if !hmac.Equal(mac, f[statementSigned+1]) {
		return InviteStatement{}, refuse(subject, CheckInviteCode, "it is not authenticated under this invite code (a wrong code, or a statement the server made or changed)")
	}
	at, err := parseTime(f[12])
	if err != nil {
		return InviteStatement{}, refuse(subject, CheckFormat, "malformed time")
	}
	s := InviteStatement{WorkspaceID: string(f[1]), WorkspaceName: string(f[2]), InviteID: string(f[3]), Email: string(f[4]), Role: string(f[5]),
		Inviter:   Party{AccountID: string(f[6]), Keys: syncapi.PublicKeys{Seal: f[7], Sign: f[8]}},
		Creator:   Party{AccountID: string(f[9]), Keys: syncapi.PublicKeys{Seal: f[10], Sign: f[11]}},
		CreatedAt: at}
	if !validKeys(s.Inviter.Keys) || !validKeys(s.Creator.Keys) || !checkRole(s.Role) {
		return InviteStatement{}, refuse(subject, CheckFormat, "malformed keys or role")
	}
	if !crypto.Verify(s.Inviter.Keys.Sign, signed, f[statementSigned]) {
		return InviteStatement{}, refuse(subject, CheckSignature, "the inviter's signature does not verify")
	}
	return s, nil
}

// parseFields splits exactly n length-prefixed fields, the first the
// domain, with no trailing bytes.
func parseFields(b []byte, n int, domain string) ([][]byte, error) {
	f, _, _, err := parseSigned(b, n, domain)
	return f, err
}

// InviteProof is the invitee's proof, under the code, that these are the
// account and keys the invite is for.
func InviteProof(code []byte, wsID, inviteID, email, accountID string, keys syncapi.PublicKeys) ([]byte, error) {
	return codeMAC(code, crypto.Fields([]byte(domainAcceptance), []byte(wsID), []byte(inviteID), []byte(email),
		[]byte(accountID), keys.Seal, keys.Sign))
}

// CheckInviteProof checks an invitee's proof against the account and keys
// the server lists for the accepted invite.
func CheckInviteProof(code []byte, wsID, inviteID, email, accountID string, keys syncapi.PublicKeys, proof []byte) error {
	want, err := InviteProof(code, wsID, inviteID, email, accountID, keys)
	if err != nil {
		return err
	}
	if !validKeys(keys) || !hmac.Equal(want, proof) {
		return refuse(fmt.Sprintf("the acceptance of the invite of %s", email), CheckInviteCode,
			fmt.Sprintf("the server's keys for %s are not the ones the invite code vouches for; nothing was sealed", email))
	}
	return nil
}

func checkRole(r string) bool { return r == RoleAdmin || r == RoleMember || r == RoleReader }

// ValidateRole validates a role name given by a person.
func ValidateRole(r string) error {
	if !checkRole(r) {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "role %q is not admin, member or reader", r), "pass --role admin, member or reader")
	}
	return nil
}

// AccountFingerprint is the one fingerprint people compare to check an
// account's two public keys in person: KeyFingerprint of seal ‖ sign (both
// fixed-size, so the concatenation is unambiguous).
func AccountFingerprint(k syncapi.PublicKeys) string {
	return crypto.KeyFingerprint(append(bytes.Clone(k.Seal), k.Sign...))
}

// normFingerprint drops spaces and dashes and lowercases, so a fingerprint
// read aloud and typed back compares.
func normFingerprint(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == ':' {
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

// RosterMember is one verified member.
type RosterMember struct {
	Record  MembershipRecord
	Listing syncapi.Member
}

// Roster is the verified membership of a workspace: every record signed,
// through a chain of admins, from the creator's, whose keys are anchored.
type Roster struct {
	WorkspaceID string
	CreatorID   string
	Members     map[string]*RosterMember
	// NewPins are valid members this device had no pin for.
	NewPins map[string]*vault.Pin
	// AdminMarks are the pinned accounts whose admin mark (vault.Pin.Admin)
	// changes: the verified role differs, or the account left.
	AdminMarks map[string]bool
}

// authorized reports whether a self-signed admin record p of account id
// is backed by its authority record: a record of the same account, as an
// admin with the same keys, signed by another admin already verified (or
// the creator). Not yet (false, nil) while the signer is unverified; a
// malformed or forged authority is a refusal. The authority's sealed-key
// hash names a key since rotated away, so only its signature counts.
func (r *Roster) authorized(id string, p parsedMembership, authority []byte, signers SignerLookup) (bool, error) {
	if len(authority) == 0 || p.rec.Role != RoleAdmin {
		return false, nil
	}
	a, err := parseMembership(authority)
	if err != nil {
		return false, err
	}
	by := a.rec.AddedBy
	switch {
	case a.rec.WorkspaceID != r.WorkspaceID || a.rec.AccountID != id || a.rec.Role != RoleAdmin || !sameKeys(a.rec.PublicKeys, p.rec.PublicKeys):
		return false, refuse(p.subject(), CheckRetarget, "its authority record names another workspace, account, role or keys")
	case by == id:
		return false, refuse(p.subject(), CheckUnknownSigner, "its authority record is signed by the account itself")
	case by != r.CreatorID && r.Members[by] == nil:
		return false, nil
	}
	if err := verifySignature(a.subject(), by, a.signed, a.sig, signers); err != nil {
		return false, err
	}
	return true, nil
}

// roleError is a lookup's refusal of a signer whose role may not sign.
type roleError struct{ account, role, what string }

func (e *roleError) Error() string {
	return fmt.Sprintf("account %q is a %s of the workspace, and a %s may not sign %s", e.account, e.role, e.role, e.what)
}

// lookup trusts the members with one of roles to sign what.
func (r *Roster) lookup(what string, roles ...string) SignerLookup {
	return func(accountID string) (ed25519.PublicKey, error) {
		m := r.Members[accountID]
		if m == nil {
			return nil, fmt.Errorf("account %s is not a member of workspace %s", accountID, r.WorkspaceID)
		}
		if !slices.Contains(roles, m.Record.Role) {
			return nil, &roleError{account: accountID, role: m.Record.Role, what: what}
		}
		return ed25519.PublicKey(m.Record.PublicKeys.Sign), nil
	}
}

// SecretSigners trusts admins and members to sign secret envelopes.
func (r *Roster) SecretSigners() SignerLookup {
	return r.lookup("secrets", RoleAdmin, RoleMember)
}

// AdminSigners trusts admins only: allowlist documents and membership
// records.
func (r *Roster) AdminSigners() SignerLookup { return r.lookup("this", RoleAdmin) }

// Role is a member's verified role, "" for a non-member.
func (r *Roster) Role(accountID string) string {
	if m := r.Members[accountID]; m != nil {
		return m.Record.Role
	}
	return ""
}

func sameKeys(a, b syncapi.PublicKeys) bool {
	return bytes.Equal(a.Seal, b.Seal) && bytes.Equal(a.Sign, b.Sign)
}

// VerifyRoster verifies every member record of a workspace detail:
//
//  1. the root is the creator's keys as this device anchors them: its
//     own, or pinned (from an invite statement or first sight); with no
//     anchor yet, the keys of the creator's record, pinned now. The
//     creator is an admin by definition; their record must name exactly
//     those keys, role admin, and be signed by the creator or by any valid
//     admin (after a removal the rotating admin signs every record);
//  2. every other record is signed by a valid admin, with the keys of
//     that admin's own valid record (a fixed point from the creator); a
//     record no valid admin signed is refused, never skipped. A record
//     signed by its own subject (the rotating admin's) is valid only for
//     an account this device pinned as an admin (or, on first sight, the
//     signer of the creator's record), so every admin's validity still
//     derives from the creator;
//  3. every record carries the workspace's current key version;
//  4. the server's listing equals each signed record;
//  5. a valid member's keys equal its pin, if this device has one.
//
// pins are the device's pins of this workspace (account id → pin); own
// adds this device's own account and keys, always trusted. now stamps
// new pins.
func VerifyRoster(detail syncapi.WorkspaceDetail, pins map[string]*vault.Pin, own Party, now time.Time) (*Roster, error) {
	wsID := detail.Workspace.ID
	r := &Roster{WorkspaceID: wsID, CreatorID: detail.Workspace.CreatedBy, Members: map[string]*RosterMember{}, NewPins: map[string]*vault.Pin{},
		AdminMarks: map[string]bool{}}
	subject := "the members of workspace " + wsID
	keyVersion := max(detail.KeyVersion, 1)
	parsed := map[string]parsedMembership{}
	listed := map[string]syncapi.Member{}
	for _, m := range detail.Members {
		if _, dup := listed[m.AccountID]; dup {
			return nil, refuse(subject, CheckFormat, fmt.Sprintf("account %s is listed twice", m.AccountID))
		}
		p, err := parseMembership(m.Record)
		if err != nil {
			return nil, err
		}
		if p.rec.KeyVersion != keyVersion {
			return nil, refuse(p.subject(), CheckKeyVersion, fmt.Sprintf("it is for workspace key version %d, but the workspace is at version %d", p.rec.KeyVersion, keyVersion))
		}
		parsed[m.AccountID] = p
		listed[m.AccountID] = m
	}
	anchor := func(accountID string) (syncapi.PublicKeys, bool) {
		if accountID == own.AccountID {
			return own.Keys, true
		}
		if p := pins[accountID]; p != nil {
			return syncapi.PublicKeys{Seal: p.SealPublic, Sign: p.SignPublic}, true
		}
		return syncapi.PublicKeys{}, false
	}
	creator, ok := parsed[r.CreatorID]
	if !ok {
		return nil, refuse(subject, CheckUnknownSigner, fmt.Sprintf("the creator %s has no membership record", r.CreatorID))
	}
	if creator.rec.Role != RoleAdmin {
		return nil, refuse(creator.subject(), CheckUnknownSigner, "the creator's record must name the creator as an admin")
	}
	root, anchored := anchor(r.CreatorID)
	if !anchored {
		root = creator.rec.PublicKeys
	}
	// A self-signed creator record with other keys is a key change; one
	// signed by another account must first verify (the fixed point), and
	// its keys are checked against the anchor with everyone's below.
	if creator.rec.AddedBy == r.CreatorID && !sameKeys(root, creator.rec.PublicKeys) {
		return nil, pinMismatch(creator.rec)
	}
	// selfRoot: an account whose self-signed record is trusted. The
	// creator always; another admin only if this device pinned it as an
	// admin with these keys (it saw that admin's record signed, through a
	// chain, by the creator; or an invite statement named it).
	selfRoot := func(id string, p parsedMembership) bool {
		if id == r.CreatorID {
			return true
		}
		if !anchored && id == creator.rec.AddedBy && p.rec.Role == RoleAdmin {
			// First sight of the workspace: as the creator's keys are
			// trusted on first sight, so is the admin who signed the
			// creator's record after a removal.
			return true
		}
		pin := pins[id]
		return p.rec.Role == RoleAdmin && pin != nil && pin.Admin && sameKeys(syncapi.PublicKeys{Seal: pin.SealPublic, Sign: pin.SignPublic}, p.rec.PublicKeys)
	}
	admins := r.AdminSigners()
	signers := func(accountID string) (ed25519.PublicKey, error) {
		if accountID == r.CreatorID {
			return ed25519.PublicKey(root.Sign), nil
		}
		return admins(accountID)
	}
	for progress := true; progress; {
		progress = false
		for _, id := range vault.SortedKeys(parsed) {
			p := parsed[id]
			if r.Members[id] != nil {
				continue
			}
			lookup := signers
			self := func(string) (ed25519.PublicKey, error) { return ed25519.PublicKey(p.rec.PublicKeys.Sign), nil }
			switch by := p.rec.AddedBy; {
			case by == id && !selfRoot(id, p):
				ok, err := r.authorized(id, p, listed[id].Authority, signers)
				if err != nil {
					return nil, err
				}
				if !ok {
					continue
				}
				lookup = self
			case by == id:
				lookup = self
			case by != r.CreatorID && r.Members[by] == nil:
				continue
			}
			rec, err := p.verify(listed[id].SealedKey, lookup)
			if err != nil {
				return nil, err
			}
			r.Members[id] = &RosterMember{Record: rec, Listing: listed[id]}
			progress = true
		}
	}
	for _, id := range vault.SortedKeys(parsed) {
		if r.Members[id] == nil {
			p := parsed[id]
			return nil, refuse(p.subject(), CheckUnknownSigner,
				fmt.Sprintf("account %q, its signer, is not an admin of the workspace whose record traces back to the creator", p.rec.AddedBy))
		}
	}
	// The signatures verified (the documented order: signature, then
	// routing and listing), each record must say what the listing says.
	for id, m := range r.Members {
		rec, l := m.Record, m.Listing
		subj := parsed[id].subject()
		switch {
		case rec.WorkspaceID != wsID || rec.AccountID != l.AccountID:
			return nil, refuse(subj, CheckRetarget, fmt.Sprintf("it names account %s in workspace %s, listed as account %s", rec.AccountID, rec.WorkspaceID, l.AccountID))
		case l.Role != rec.Role || l.AddedBy != rec.AddedBy || !strings.EqualFold(l.Email, rec.Email):
			return nil, refuse(subj, CheckMetadata, "the server's listing differs from the signed record")
		case !checkRole(rec.Role) || !validKeys(rec.PublicKeys):
			return nil, refuse(subj, CheckFormat, "malformed role or keys")
		}
	}
	for id, m := range r.Members {
		keys, ok := anchor(id)
		if ok && !sameKeys(keys, m.Record.PublicKeys) {
			return nil, pinMismatch(m.Record)
		}
		admin := m.Record.Role == RoleAdmin
		if p, pinned := pins[id]; !pinned {
			r.NewPins[id] = &vault.Pin{Email: m.Record.Email, SealPublic: m.Record.PublicKeys.Seal, SignPublic: m.Record.PublicKeys.Sign, FirstSeen: now.UTC(), Admin: admin}
		} else if p.Admin != admin {
			r.AdminMarks[id] = admin
		}
	}
	// A pinned admin no longer a member (removed) loses the mark: its
	// self-signed record must never be trusted again.
	for id, p := range pins {
		if r.Members[id] == nil && p.Admin {
			r.AdminMarks[id] = false
		}
	}
	return r, nil
}

func pinMismatch(rec MembershipRecord) error {
	ve := &VerifyError{Subject: fmt.Sprintf("the membership record of %s in workspace %s", rec.Email, rec.WorkspaceID), Check: CheckPin,
		Reason: fmt.Sprintf("the keys of %s changed since this device pinned them", rec.Email)}
	return &errcode.Error{Code: errcode.Conflict, Message: ve.Error(), Err: ve,
		Hint: "do not sync with this workspace until it is explained: compare `agentsecrets account show` of " + rec.Email + " in person, and check the server and its database"}
}
