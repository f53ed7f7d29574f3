package sync

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// seqBytes is n bytes start, start+1, … (the vectors' fixed inputs).
func seqBytes(start byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// fixedIdentity is a deterministic identity for the vectors.
func fixedIdentity(t testing.TB, start byte) Identity {
	t.Helper()
	id, err := identityFrom(seqBytes(start, 32), seqBytes(start+0x40, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestInviteCodeText: a code round-trips through its text form, which
// parses whatever the case and the '-' and spaces; anything else is a
// usage error that never echoes the input.
func TestInviteCodeText(t *testing.T) {
	code := seqBytes(0, InviteCodeSize)
	text := FormatInviteCode(code)
	if text != "asinv-aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt" {
		t.Fatalf("format: %s", text)
	}
	for _, in := range []string{text, strings.ToUpper(text), " asinv-aaaq eaye auda ocaj bif-qydiob4ibceqt ", strings.ReplaceAll(text, "-", " ")[:5] + "-" + strings.ReplaceAll(text[6:], "-", "")} {
		got, err := ParseInviteCode(in)
		if err != nil || !bytes.Equal(got, code) {
			t.Errorf("parse %q: %x %v", in, got, err)
		}
	}
	random, err := NewInviteCode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseInviteCode(FormatInviteCode(random)); err != nil || !bytes.Equal(got, random) {
		t.Fatalf("random round trip: %v", err)
	}
	bad := map[string]string{
		"no prefix":      "aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt",
		"other prefix":   "asinx-aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceqt",
		"short":          "asinv-aaaq-eaye-auda-ocaj-bifq-ydio-b4ib-ceq",
		"long":           text + "a",
		"digit one":      "asinv-aaaq-eayd-aqcq-mbyi-befa-uddm-bqha-ceq1",
		"digit zero":     "asinv-0aaq-eaye-auda-ocaj-bifq-ydio-b4ib-2dyo",
		"padding":        "asinv-aaaq-eayd-aqcq-mbyi-befa-uddm-bqha-ceq=",
		"non ascii":      "asinv-aaaq-eayd-aqcq-mbyi-befa-uddm-bqha-ceqé",
		"empty":          "",
		"tab separators": "asinv-aaaq\teaye\tauda\tocaj\tbifq\tydio\tb4ib\tceqt",
	}
	for name, in := range bad {
		_, err := ParseInviteCode(in)
		if errcode.Classify(err).Code != errcode.Usage {
			t.Errorf("%s: %v, want usage", name, err)
			continue
		}
		if in != "" && strings.Contains(err.Error(), strings.TrimPrefix(in, "asinv-")) {
			t.Errorf("%s: the error echoes the code: %v", name, err)
		}
	}
}

// vectorStatement is the statement of the vectors (docs/protocol.md).
func vectorStatement(t testing.TB) (InviteStatement, Identity, []byte) {
	inviter := fixedIdentity(t, 0x01)
	creator := fixedIdentity(t, 0x81)
	st := InviteStatement{WorkspaceID: "00112233445566778899aabbccddeeff", WorkspaceName: "acme", InviteID: "ffeeddccbbaa99887766554433221100",
		Email: "bob@example.com", Role: RoleMember,
		Inviter:   Party{AccountID: "acct-alice", Keys: inviter.Public()},
		Creator:   Party{AccountID: "acct-carol", Keys: creator.Public()},
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return st, inviter, seqBytes(0, InviteCodeSize)
}

// TestInviteVectors pins the code key, the statement and the proof: the
// bytes docs/protocol.md documents, which another client must reproduce.
func TestInviteVectors(t *testing.T) {
	st, inviter, code := vectorStatement(t)
	k, err := inviteCodeKey(code)
	if err != nil {
		t.Fatal(err)
	}
	b, err := SignInviteStatement(inviter, st, code)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	bob := fixedIdentity(t, 0x21)
	proof, err := InviteProof(code, st.WorkspaceID, st.InviteID, st.Email, "acct-bob", bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"code key":         hex.EncodeToString(k),
		"statement length": hex.EncodeToString([]byte{byte(len(b) >> 8), byte(len(b))}),
		"statement sha256": hex.EncodeToString(sum[:]),
		"statement mac":    hex.EncodeToString(b[len(b)-32:]),
		"proof":            hex.EncodeToString(proof),
		"bob fingerprint":  AccountFingerprint(bob.Public()),
	}
	want := map[string]string{
		"code key":         "72d74b12efb4825e622a304d5c50066275835144087a165669c659420892ab66",
		"statement length": "01b1",
		"statement sha256": "b74e4a6e0ebb9a3daaa49257136e541dafc44cd3f9f590e3341c26fcd0701933",
		"statement mac":    "754d34b7bc535ab78adaeb50926b84841c89b4d1abf70d73b90b0fa60b088de7",
		"proof":            "1fa136beb57de2aefca5c5276c72fcc517fc79cad3fc51cf0d041ab2497fef20",
		"bob fingerprint":  "8c75 b20d 3920 711e 36cb 87b4 033e 9d59",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %s, want %s", name, got[name], w)
		}
	}
	opened, err := OpenInviteStatement(b, code)
	if err != nil || opened.Email != st.Email || !opened.CreatedAt.Equal(st.CreatedAt) || !sameKeys(opened.Creator.Keys, st.Creator.Keys) ||
		opened.Inviter.AccountID != "acct-alice" || opened.Creator.AccountID != "acct-carol" || opened.WorkspaceName != "acme" || opened.Role != RoleMember {
		t.Fatalf("open: %+v %v", opened, err)
	}
	if err := CheckInviteProof(code, st.WorkspaceID, st.InviteID, st.Email, "acct-bob", bob.Public(), proof); err != nil {
		t.Fatal(err)
	}
}

// TestStatementRefusals: every single-byte change, every truncation,
// trailing bytes, another code and a statement signed by someone other
// than the inviter it names are each refused.
func TestStatementRefusals(t *testing.T) {
	st, inviter, code := vectorStatement(t)
	b, err := SignInviteStatement(inviter, st, code)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		m := bytes.Clone(b)
		m[i] ^= 0x01
		if _, err := OpenInviteStatement(m, code); errcode.Classify(err).Code != errcode.Conflict || CheckOf(err) == "" {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for n := 0; n < len(b); n++ {
		if _, err := OpenInviteStatement(b[:n], code); CheckOf(err) != CheckFormat {
			t.Fatalf("truncated to %d: %v", n, err)
		}
	}
	if _, err := OpenInviteStatement(append(bytes.Clone(b), 0), code); CheckOf(err) != CheckFormat {
		t.Fatalf("trailing byte: %v", err)
	}
	other := seqBytes(1, InviteCodeSize)
	if _, err := OpenInviteStatement(b, other); CheckOf(err) != CheckInviteCode {
		t.Fatalf("other code: %v", err)
	}
	// Whoever holds the code but not the inviter's key (the invitee, say)
	// cannot make a statement in the inviter's name.
	mallory := newIdentity(t)
	forged := st
	forged.Inviter.Keys = mallory.Public()
	fb, err := SignInviteStatement(mallory, forged, code)
	if err != nil {
		t.Fatal(err)
	}
	fb = bytes.Replace(fb, mallory.Public().Sign, inviter.Public().Sign, 1)
	fb = fb[:len(fb)-36]
	mac, _ := codeMAC(code, fb)
	fb = append(fb, 0, 0, 0, 32)
	fb = append(fb, mac...)
	if _, err := OpenInviteStatement(fb, code); CheckOf(err) != CheckSignature {
		t.Fatalf("signed by another key: %v", err)
	}
	if _, err := SignInviteStatement(mallory, st, code); err == nil {
		t.Fatal("signed a statement naming another inviter's keys")
	}
}

// TestProofRefusals: a proof checks only for the exact workspace, invite,
// email, account and keys; any other is refused with the invite_code check.
func TestProofRefusals(t *testing.T) {
	code := seqBytes(0, InviteCodeSize)
	bob, mallory := newIdentity(t), newIdentity(t)
	proof, err := InviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", bob.Public())
	if err != nil {
		t.Fatal(err)
	}
	mixed := syncapi.PublicKeys{Seal: mallory.Public().Seal, Sign: bob.Public().Sign}
	cases := map[string]func() error{
		"other code": func() error {
			return CheckInviteProof(seqBytes(1, InviteCodeSize), testWS, "inv1", "bob@example.com", "acct-bob", bob.Public(), proof)
		},
		"other workspace": func() error {
			return CheckInviteProof(code, "ffeeddccbbaa99887766554433221100", "inv1", "bob@example.com", "acct-bob", bob.Public(), proof)
		},
		"other invite": func() error {
			return CheckInviteProof(code, testWS, "inv2", "bob@example.com", "acct-bob", bob.Public(), proof)
		},
		"other email": func() error {
			return CheckInviteProof(code, testWS, "inv1", "eve@example.com", "acct-bob", bob.Public(), proof)
		},
		"other account": func() error {
			return CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-eve", bob.Public(), proof)
		},
		"substituted keys": func() error {
			return CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", mallory.Public(), proof)
		},
		"substituted seal key": func() error {
			return CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", mixed, proof)
		},
		"truncated proof": func() error {
			return CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", bob.Public(), proof[:31])
		},
		"no proof": func() error {
			return CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", bob.Public(), nil)
		},
	}
	for name, f := range cases {
		if err := f(); CheckOf(err) != CheckInviteCode || errcode.Classify(err).Code != errcode.Conflict {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := CheckInviteProof(code, testWS, "inv1", "bob@example.com", "acct-bob", bob.Public(), proof); err != nil {
		t.Fatal(err)
	}
}

// team is a workspace of several accounts for roster tests.
type team struct {
	ids   map[string]Identity
	wsKey []byte
	t     testing.TB
}

func newTeam(t testing.TB, names ...string) *team {
	tm := &team{ids: map[string]Identity{}, wsKey: key32(t), t: t}
	for _, n := range names {
		tm.ids[n] = newIdentity(t)
	}
	return tm
}

// member is account's entry, with role, signed by signer (with signer's
// key unless key is given).
func (tm *team) member(account, role, signer string) syncapi.Member {
	tm.t.Helper()
	sealed, err := SealWorkspaceKey(tm.ids[account].Public(), tm.wsKey)
	if err != nil {
		tm.t.Fatal(err)
	}
	rec := MembershipRecord{WorkspaceID: testWS, AccountID: account, Email: account + "@example.com", Role: role,
		PublicKeys: tm.ids[account].Public(), KeyVersion: 1, AddedBy: signer, AddedAt: t0}
	b, err := SignMembership(tm.ids[signer], rec, sealed)
	if err != nil {
		tm.t.Fatal(err)
	}
	return syncapi.Member{AccountID: account, Email: rec.Email, Role: role, Record: b, SealedKey: sealed, AddedBy: signer, AddedAt: t0}
}

func detailOf(creator string, members ...syncapi.Member) syncapi.WorkspaceDetail {
	return syncapi.WorkspaceDetail{Workspace: syncapi.Workspace{ID: testWS, Name: "acme", CreatedBy: creator}, Members: members}
}

func (tm *team) pin(account string) *vault.Pin {
	k := tm.ids[account].Public()
	return &vault.Pin{Email: account + "@example.com", SealPublic: k.Seal, SignPublic: k.Sign, FirstSeen: t0}
}

// TestVerifyRoster: the fixed point from the creator accepts a chain of
// admins and refuses, never skips, every record no valid admin signed;
// listings that contradict records and keys that differ from a pin are
// refused too.
func TestVerifyRoster(t *testing.T) {
	tm := newTeam(t, "alice", "bob", "carol", "dave", "eve")
	alice := tm.member("alice", RoleAdmin, "alice")
	self := func(n string) Party { return Party{AccountID: n, Keys: tm.ids[n].Public()} }
	otherAlice := newTeam(t, "alice")
	forgedCreator := otherAlice.member("alice", RoleAdmin, "alice")
	listingRole := tm.member("bob", RoleMember, "alice")
	listingRole.Role = RoleAdmin
	listingEmail := tm.member("bob", RoleMember, "alice")
	listingEmail.Email = "mallory@example.com"
	listingAddedBy := tm.member("bob", RoleMember, "alice")
	listingAddedBy.AddedBy = "carol"
	moved := tm.member("bob", RoleMember, "alice")
	moved.AccountID = "carol"
	swappedKey := tm.member("bob", RoleMember, "alice")
	swappedKey.SealedKey, _ = SealWorkspaceKey(tm.ids["bob"].Public(), key32(t))
	tests := []struct {
		name    string
		detail  syncapi.WorkspaceDetail
		own     Party
		pins    map[string]*vault.Pin
		members []string
		check   Check
	}{
		{"creator only (issue 10 workspace)", detailOf("alice", alice), self("alice"), nil, []string{"alice"}, ""},
		{"chain of admins", detailOf("alice", alice, tm.member("bob", RoleAdmin, "alice"), tm.member("carol", RoleAdmin, "bob"), tm.member("dave", RoleReader, "carol")),
			self("dave"), map[string]*vault.Pin{"alice": tm.pin("alice")}, []string{"alice", "bob", "carol", "dave"}, ""},
		{"listed out of order", detailOf("alice", tm.member("carol", RoleMember, "bob"), tm.member("bob", RoleAdmin, "alice"), alice),
			self("carol"), nil, []string{"alice", "bob", "carol"}, ""},
		{"signed by a member", detailOf("alice", alice, tm.member("bob", RoleMember, "alice"), tm.member("carol", RoleMember, "bob")), self("alice"), nil, nil, CheckRole},
		{"signed by a reader", detailOf("alice", alice, tm.member("bob", RoleReader, "alice"), tm.member("carol", RoleAdmin, "bob")), self("alice"), nil, nil, CheckRole},
		{"signed by an unknown account", detailOf("alice", alice, tm.member("bob", RoleMember, "eve")), self("alice"), nil, nil, CheckUnknownSigner},
		{"self-signed non-creator", detailOf("alice", alice, tm.member("bob", RoleAdmin, "bob")), self("alice"), nil, nil, CheckUnknownSigner},
		{"cycle without the creator", detailOf("alice", alice, tm.member("bob", RoleAdmin, "carol"), tm.member("carol", RoleAdmin, "bob")), self("alice"), nil, nil, CheckUnknownSigner},
		{"no creator record", detailOf("alice", tm.member("bob", RoleAdmin, "bob")), self("bob"), nil, nil, CheckUnknownSigner},
		// After a removal the rotating admin signs the creator's record
		// (stage C): the root is the creator's keys, not their signature.
		{"creator signed by another admin", detailOf("alice", tm.member("alice", RoleAdmin, "bob"), tm.member("bob", RoleAdmin, "alice")), self("bob"), nil, []string{"alice", "bob"}, ""},
		{"creator signed by a member", detailOf("alice", tm.member("alice", RoleAdmin, "bob"), tm.member("bob", RoleMember, "alice")), self("bob"), nil, nil, CheckRole},
		{"creator not an admin", detailOf("alice", tm.member("alice", RoleMember, "alice")), self("alice"), nil, nil, CheckUnknownSigner},
		{"creator keys differ from the pin", detailOf("alice", forgedCreator), self("bob"), map[string]*vault.Pin{"alice": tm.pin("alice")}, nil, CheckPin},
		{"creator keys differ from this account's", detailOf("alice", forgedCreator), self("alice"), nil, nil, CheckPin},
		{"member keys differ from the pin", detailOf("alice", alice, tm.member("bob", RoleMember, "alice")), self("alice"),
			map[string]*vault.Pin{"bob": tm.pin("eve")}, nil, CheckPin},
		{"listing role differs", detailOf("alice", alice, listingRole), self("alice"), nil, nil, CheckMetadata},
		{"listing email differs", detailOf("alice", alice, listingEmail), self("alice"), nil, nil, CheckMetadata},
		{"listing added_by differs", detailOf("alice", alice, listingAddedBy), self("alice"), nil, nil, CheckMetadata},
		{"record listed for another account", detailOf("alice", alice, moved), self("alice"), nil, nil, CheckRetarget},
		{"sealed key swapped", detailOf("alice", alice, swappedKey), self("alice"), nil, nil, CheckSealedKey},
		{"listed twice", detailOf("alice", alice, tm.member("bob", RoleMember, "alice"), tm.member("bob", RoleMember, "alice")), self("alice"), nil, nil, CheckFormat},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := VerifyRoster(tc.detail, tc.pins, tc.own, t0)
			if tc.check != "" {
				if CheckOf(err) != tc.check || errcode.Classify(err).Code != errcode.Conflict {
					t.Fatalf("got %v, want the %s check", err, tc.check)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := vault.SortedKeys(r.Members)
			if strings.Join(got, ",") != strings.Join(tc.members, ",") {
				t.Fatalf("members %v, want %v", got, tc.members)
			}
			for _, id := range tc.members {
				if _, pinned := tc.pins[id]; pinned == (r.NewPins[id] != nil) {
					t.Errorf("new pin of %s: %v", id, r.NewPins[id])
				}
			}
		})
	}
}

// TestRosterLookups: envelopes may be signed by admins and members, not
// readers; allowlist documents and records by admins only. A refusal for
// the role is the role check, not unknown_signer.
func TestRosterLookups(t *testing.T) {
	tm := newTeam(t, "alice", "bob", "carol")
	d := detailOf("alice", tm.member("alice", RoleAdmin, "alice"), tm.member("bob", RoleMember, "alice"), tm.member("carol", RoleReader, "alice"))
	r, err := VerifyRoster(d, nil, Party{AccountID: "alice", Keys: tm.ids["alice"].Public()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	pk := key32(t)
	sealBy := func(author string) []byte {
		env, err := SealSecret(tm.ids[author], SecretHeader{SecretRef: ref("K"), Version: 1, AuthorID: author, KeyVersion: 1, CreatedAt: t0}, pk, value("v"))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	want := SecretExpect{SecretRef: ref("K"), Version: 1, KeyVersion: 1}
	for author, check := range map[string]Check{"alice": "", "bob": "", "carol": CheckRole, "dave": CheckUnknownSigner} {
		if _, ok := tm.ids[author]; !ok {
			tm.ids[author] = newIdentity(t)
		}
		_, _, err := OpenSecret(sealBy(author), want, pk, r.SecretSigners())
		if CheckOf(err) != check {
			t.Errorf("envelope by %s: %v, want check %q", author, err, check)
		}
	}
	for author, check := range map[string]Check{"alice": "", "bob": CheckRole, "carol": CheckRole} {
		doc, err := SealAllowlist(tm.ids[author], AllowlistHeader{WorkspaceID: testWS, Version: 1, AuthorID: author, CreatedAt: t0}, tm.wsKey, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = OpenAllowlist(doc, AllowlistExpect{WorkspaceID: testWS, Version: 1}, tm.wsKey, r.AdminSigners())
		if CheckOf(err) != check {
			t.Errorf("allowlist by %s: %v, want check %q", author, err, check)
		}
	}
}

// TestAccountFingerprint: one fingerprint covers both keys, and the
// comparison ignores case, spaces and dashes.
func TestAccountFingerprint(t *testing.T) {
	a, b := newIdentity(t).Public(), newIdentity(t).Public()
	fa := AccountFingerprint(a)
	if fa == AccountFingerprint(syncapi.PublicKeys{Seal: a.Seal, Sign: b.Sign}) || fa == AccountFingerprint(syncapi.PublicKeys{Seal: b.Seal, Sign: a.Sign}) {
		t.Fatal("the fingerprint does not cover both keys")
	}
	if normFingerprint(strings.ToUpper(strings.ReplaceAll(fa, " ", "-"))) != normFingerprint(fa) {
		t.Fatal("normalisation")
	}
}

// FuzzOpenInviteStatement: no input panics the statement decoder, and
// whatever it accepts under the code is exactly what the code's holder
// signed: the accepted statement re-signs to the same bytes.
func FuzzOpenInviteStatement(f *testing.F) {
	st, inviter, code := vectorStatement(f)
	good, err := SignInviteStatement(inviter, st, code)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := OpenInviteStatement(b, code)
		if err != nil {
			if errcode.Classify(err).Code != errcode.Conflict || CheckOf(err) == "" {
				t.Fatalf("a refusal that is not a verification conflict: %v", err)
			}
			return
		}
		again, err := SignInviteStatement(inviter, got, code)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes that are not the signed statement: %v", err)
		}
	})
}
