package sync

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// keys are the fixture's project keys: version 1 only.
func (f *fixture) keys() ProjectKeys {
	return ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: f.pk}}
}

// sealKV seals version v of r under key version kv with key, by author.
func (f *fixture) sealKV(t testing.TB, author Identity, authorID string, r SecretRef, v, kv int, prev string, key []byte, c SecretContent) syncapi.SecretVersion {
	t.Helper()
	env, err := SealSecret(author, SecretHeader{SecretRef: r, Version: v, Prev: prev, AuthorID: authorID, KeyVersion: kv, CreatedAt: t0}, key, c)
	if err != nil {
		t.Fatal(err)
	}
	return syncapi.SecretVersion{Name: r.Name, Version: v, Envelope: env, AuthorID: authorID, CreatedAt: t0}
}

// TestVerifyChainKeyVersions: each version opens with the key of its own
// key version; an unknown key version, one above the current, and a
// version under an older key than the one before it are refused; history
// by a former member (unknown signer) is accepted only when a later
// version, verified in full, links to it.
func TestVerifyChainKeyVersions(t *testing.T) {
	f := newFixture(t)
	k2 := key32(t)
	both := ProjectKeys{Current: 2, ByVersion: map[int][]byte{1: f.pk, 2: k2}}
	r := ref(testSecret)
	v1 := f.sealKV(t, f.alice, aliceID, r, 1, 1, "", f.pk, value("one"))
	h1 := EnvelopeHash(v1.Envelope)
	v2 := f.sealKV(t, f.alice, aliceID, r, 2, 2, h1, k2, value("two"))
	v2old := f.sealKV(t, f.alice, aliceID, r, 2, 1, h1, f.pk, value("two"))
	v1new := f.sealKV(t, f.alice, aliceID, r, 1, 2, "", k2, value("one"))
	v2back := f.sealKV(t, f.alice, aliceID, r, 2, 1, EnvelopeHash(v1new.Envelope), f.pk, value("two"))
	v1mallory := f.sealKV(t, f.mallory, malloryID, r, 1, 1, "", f.pk, value("one"))
	v2afterMallory := f.sealKV(t, f.alice, aliceID, r, 2, 2, EnvelopeHash(v1mallory.Envelope), k2, value("two"))
	v2mallory := f.sealKV(t, f.mallory, malloryID, r, 2, 2, h1, k2, value("two"))
	tests := []struct {
		name     string
		keys     ProjectKeys
		versions []syncapi.SecretVersion
		check    Check
		vouched  int
	}{
		{"old and new key", both, []syncapi.SecretVersion{v1, v2}, "", 0},
		{"old key still current for old versions", both, []syncapi.SecretVersion{v1, v2old}, "", 0},
		{"no key of that version", ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: f.pk}}, []syncapi.SecretVersion{v1, v2}, CheckKeyVersion, 0},
		{"above the current version", ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: f.pk, 2: k2}}, []syncapi.SecretVersion{v1, v2}, CheckKeyVersion, 0},
		{"an older key after a newer", both, []syncapi.SecretVersion{v1new, v2back}, CheckKeyVersion, 0},
		{"a former member's history, vouched by a later version", both, []syncapi.SecretVersion{v1mallory, v2afterMallory}, "", 1},
		{"a former member's head", both, []syncapi.SecretVersion{v1, v2mallory}, CheckUnknownSigner, 0},
		{"a former member's only version", both, []syncapi.SecretVersion{v1mallory}, CheckUnknownSigner, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyChain(r, Known{}, len(tc.versions), tc.versions, tc.keys, f.lookup)
			if CheckOf(err) != tc.check {
				t.Fatalf("err = %v, want check %q", err, tc.check)
			}
			if err != nil {
				if errcode.Classify(err).Code != errcode.Conflict {
					t.Fatalf("code %v", errcode.Classify(err).Code)
				}
				return
			}
			vouched := 0
			for _, o := range got {
				if o.Vouched {
					vouched++
					if !o.Content.Value.Empty() {
						t.Fatal("a vouched version carries a value")
					}
				}
			}
			if vouched != tc.vouched || string(got[len(got)-1].Content.Value.Reveal()) != "two" {
				t.Fatalf("vouched %d, head %+v", vouched, got[len(got)-1].Header)
			}
		})
	}
}

// TestRotateUpstreamBody: the mark round-trips in the signed body; a
// tombstone may not carry it (sealing refuses, opening refuses a crafted
// one).
func TestRotateUpstreamBody(t *testing.T) {
	f := newFixture(t)
	for _, mark := range []bool{false, true} {
		c := value("v")
		c.RotateUpstream = mark
		env := f.seal(t, f.alice, aliceID, ref(testSecret), 1, "", f.pk, c)
		_, got, err := OpenSecret(env, expect(1, ""), f.pk, f.lookup)
		if err != nil || got.RotateUpstream != mark {
			t.Fatalf("mark %v: %v %v", mark, got.RotateUpstream, err)
		}
		// The mark is in the ciphertext, not the clear header.
		if mark && strings.Contains(string(env), "rotate_upstream") {
			t.Fatal("the mark is visible in the envelope")
		}
	}
	h := SecretHeader{SecretRef: ref(testSecret), Version: 1, AuthorID: aliceID, KeyVersion: 1, CreatedAt: t0}
	if _, err := SealSecret(f.alice, h, f.pk, SecretContent{Deleted: true, UpdatedAt: t0, RotateUpstream: true}); err == nil {
		t.Fatal("sealed a tombstone with the mark")
	}
	env, err := sealEnvelope(f.alice, h, f.pk, []byte(`{"deleted":true,"bindings":[],"updated_at":"2026-01-02T03:04:05Z","rotate_upstream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenSecret(env, expect(1, ""), f.pk, f.lookup); CheckOf(err) != CheckContent {
		t.Fatalf("crafted tombstone: %v", err)
	}
}

// TestUnwrapPrevious: older project keys open under the current
// workspace key for their own version only; a key labelled with another
// version, at or above the current one, or twice, is refused.
func TestUnwrapPrevious(t *testing.T) {
	f := newFixture(t)
	wrap := func(kv int, key []byte) []byte {
		b, err := WrapProjectKey(f.wsKey, testWS, testProj, kv, key)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	k1, k2 := key32(t), key32(t)
	tests := []struct {
		name  string
		prev  []syncapi.ProjectKey
		check Check
	}{
		{"versions 1 and 2", []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: wrap(1, k1)}, {KeyVersion: 2, WrappedKey: wrap(2, k2)}}, ""},
		{"a key of the wrong version", []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: wrap(2, k2)}}, CheckDecrypt},
		{"the current version", []syncapi.ProjectKey{{KeyVersion: 3, WrappedKey: wrap(3, k2)}}, CheckKeyVersion},
		{"twice", []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: wrap(1, k1)}, {KeyVersion: 1, WrappedKey: wrap(1, k1)}}, CheckKeyVersion},
		{"version 0", []syncapi.ProjectKey{{KeyVersion: 0, WrappedKey: wrap(1, k1)}}, CheckKeyVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unwrapPrevious(f.wsKey, testWS, syncapi.Project{Name: testProj, KeyVersion: 3, PreviousKeys: tc.prev})
			if CheckOf(err) != tc.check {
				t.Fatalf("err = %v, want %q", err, tc.check)
			}
			if err == nil && (string(got[1]) != string(k1) || string(got[2]) != string(k2)) {
				t.Fatal("wrong keys")
			}
		})
	}
}

// rotated is member's record at key version kv signed by signer.
func (tm *team) rotated(account, role, signer string, kv int) syncapi.Member {
	tm.t.Helper()
	sealed, err := SealWorkspaceKey(tm.ids[account].Public(), tm.wsKey)
	if err != nil {
		tm.t.Fatal(err)
	}
	rec := MembershipRecord{WorkspaceID: testWS, AccountID: account, Email: account + "@example.com", Role: role,
		PublicKeys: tm.ids[account].Public(), KeyVersion: kv, AddedBy: signer, AddedAt: t0}
	b, err := SignMembership(tm.ids[signer], rec, sealed)
	if err != nil {
		tm.t.Fatal(err)
	}
	return syncapi.Member{AccountID: account, Email: rec.Email, Role: role, Record: b, SealedKey: sealed, AddedBy: signer, AddedAt: t0}
}

// TestVerifyRosterAfterRotation: after bob (an admin, not the creator)
// removed someone, every record is his at key version 2, his own
// self-signed: a device that pinned him as an admin (or sees the
// workspace for the first time) accepts it, one that knew him as a
// non-admin or not at all refuses; a record of an older key version is
// refused; the creator's keys must still match the anchor.
func TestVerifyRosterAfterRotation(t *testing.T) {
	tm := newTeam(t, "alice", "bob", "carol", "eve")
	at := func(kv int, members ...syncapi.Member) syncapi.WorkspaceDetail {
		d := detailOf("alice", members...)
		d.KeyVersion = kv
		return d
	}
	adminPin := func(n string) *vault.Pin { p := tm.pin(n); p.Admin = true; return p }
	self := func(n string) Party { return Party{AccountID: n, Keys: tm.ids[n].Public()} }
	byBob := at(2, tm.rotated("alice", RoleAdmin, "bob", 2), tm.rotated("bob", RoleAdmin, "bob", 2), tm.rotated("carol", RoleMember, "bob", 2))
	otherAlice := newTeam(t, "alice", "bob")
	forged := at(2, otherAlice.rotated("alice", RoleAdmin, "bob", 2), otherAlice.rotated("bob", RoleAdmin, "bob", 2), tm.rotated("carol", RoleMember, "alice", 2))
	// The real bob (a pinned admin) signs a creator record with other keys.
	mixed := newTeam(t, "alice", "bob")
	mixed.ids["bob"], mixed.wsKey = tm.ids["bob"], tm.wsKey
	otherKeys := at(2, mixed.rotated("alice", RoleAdmin, "bob", 2), tm.rotated("bob", RoleAdmin, "bob", 2))
	// withAuthority is byBob with bob's self-signed record backed by the
	// record signer gave him at key version 1.
	withAuthority := func(role, signer string, keys *team) syncapi.WorkspaceDetail {
		d := at(2, tm.rotated("alice", RoleAdmin, "bob", 2), tm.rotated("bob", RoleAdmin, "bob", 2), tm.rotated("carol", RoleMember, "bob", 2))
		d.Members[1].Authority = keys.rotated("bob", role, signer, 1).Record
		return d
	}
	// eve, a member the creator added, signs bob's authority: a member
	// cannot make an admin.
	byMember := at(2, tm.rotated("alice", RoleAdmin, "bob", 2), tm.rotated("bob", RoleAdmin, "bob", 2), tm.rotated("eve", RoleMember, "alice", 2))
	byMember.Members[1].Authority = tm.rotated("bob", RoleAdmin, "eve", 1).Record
	// The real alice signs an authority for a bob with other keys.
	otherBob := newTeam(t, "alice", "bob")
	otherBob.ids["alice"] = tm.ids["alice"]
	tests := []struct {
		name   string
		detail syncapi.WorkspaceDetail
		own    Party
		pins   map[string]*vault.Pin
		check  Check
	}{
		{"creator's rotation", at(2, tm.rotated("alice", RoleAdmin, "alice", 2), tm.rotated("carol", RoleMember, "alice", 2)), self("carol"),
			map[string]*vault.Pin{"alice": adminPin("alice")}, ""},
		{"an admin's rotation, pinned as admin", byBob, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice"), "bob": adminPin("bob")}, ""},
		{"an admin's rotation, seen by the creator", byBob, self("alice"), map[string]*vault.Pin{"bob": adminPin("bob")}, ""},
		{"an admin's rotation, first sight", byBob, self("carol"), nil, ""},
		{"the rotating admin pinned without the admin mark", byBob, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice"), "bob": tm.pin("bob")}, CheckUnknownSigner},
		{"the rotating admin unknown here", byBob, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice")}, CheckUnknownSigner},
		// A newcomer anchored to the creator only (its invite statement
		// named alice), who never saw bob as an admin: bob's authority
		// record, alice's signature on him as an admin, is what it trusts.
		{"the rotating admin backed by the creator's record", withAuthority(RoleAdmin, "alice", tm), self("eve"), map[string]*vault.Pin{"alice": tm.pin("alice")}, ""},
		{"an authority naming another role", withAuthority(RoleMember, "alice", tm), self("eve"), map[string]*vault.Pin{"alice": tm.pin("alice")}, CheckRetarget},
		{"an authority signed by bob himself", withAuthority(RoleAdmin, "bob", tm), self("eve"), map[string]*vault.Pin{"alice": tm.pin("alice")}, CheckUnknownSigner},
		{"an authority with other keys", withAuthority(RoleAdmin, "alice", otherBob), self("eve"), map[string]*vault.Pin{"alice": tm.pin("alice")}, CheckRetarget},
		{"an authority signed by a member", byMember, self("carol"), map[string]*vault.Pin{"alice": tm.pin("alice")}, CheckRole},
		{"the rotating admin's keys differ from the pin", byBob, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice"), "bob": func() *vault.Pin { p := tm.pin("eve"); p.Admin = true; return p }()}, CheckUnknownSigner},
		{"a forged creator signed by a forged admin", forged, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice")}, CheckUnknownSigner},
		{"a valid admin signs other creator keys", otherKeys, self("carol"), map[string]*vault.Pin{"alice": adminPin("alice"), "bob": adminPin("bob")}, CheckPin},
		{"a record of the old key version", at(2, tm.rotated("alice", RoleAdmin, "alice", 2), tm.rotated("carol", RoleMember, "alice", 1)), self("alice"), nil, CheckKeyVersion},
		{"every record of the old key version", at(2, tm.rotated("alice", RoleAdmin, "alice", 1)), self("alice"), nil, CheckKeyVersion},
		{"a record ahead of the workspace", at(1, tm.rotated("alice", RoleAdmin, "alice", 2)), self("alice"), nil, CheckKeyVersion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := VerifyRoster(tc.detail, tc.pins, tc.own, t0)
			if CheckOf(err) != tc.check {
				t.Fatalf("err = %v, want %q", err, tc.check)
			}
			if err == nil && len(r.Members) != len(tc.detail.Members) {
				t.Fatalf("members %v", vault.SortedKeys(r.Members))
			}
		})
	}
}

// TestAdminMarks: the roster marks pinned admins, unmarks a pinned admin
// who left (removed: its self-signed record must not be trusted again).
func TestAdminMarks(t *testing.T) {
	tm := newTeam(t, "alice", "bob", "carol")
	d := detailOf("alice", tm.member("alice", RoleAdmin, "alice"), tm.member("carol", RoleAdmin, "alice"))
	bob := tm.pin("bob")
	bob.Admin = true
	r, err := VerifyRoster(d, map[string]*vault.Pin{"alice": tm.pin("alice"), "bob": bob}, Party{AccountID: "alice", Keys: tm.ids["alice"].Public()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]bool{"alice": true, "bob": false}; fmt.Sprint(r.AdminMarks) != fmt.Sprint(want) {
		t.Fatalf("marks %v, want %v", r.AdminMarks, want)
	}
	if p := r.NewPins["carol"]; p == nil || !p.Admin {
		t.Fatalf("carol's new pin %+v", p)
	}
}
