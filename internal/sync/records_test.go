package sync

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// member builds alice's membership entry of testWS, signed by signer as
// signerID, for the sealed key given (nil: the workspace key sealed to
// alice).
func (f *fixture) member(t testing.TB, signer Identity, signerID string, edit func(*MembershipRecord), sealed []byte) syncapi.Member {
	t.Helper()
	if sealed == nil {
		var err error
		if sealed, err = SealWorkspaceKey(f.alice.Public(), f.wsKey); err != nil {
			t.Fatal(err)
		}
	}
	rec := MembershipRecord{WorkspaceID: testWS, AccountID: aliceID, Email: "alice@example.com", Role: RoleAdmin,
		PublicKeys: f.alice.Public(), KeyVersion: 1, AddedBy: signerID, AddedAt: t0}
	if edit != nil {
		edit(&rec)
	}
	b, err := SignMembership(signer, rec, sealed)
	if err != nil {
		t.Fatal(err)
	}
	return syncapi.Member{AccountID: rec.AccountID, Email: rec.Email, Role: rec.Role, Record: b, SealedKey: sealed, AddedBy: rec.AddedBy, AddedAt: t0}
}

// TestMembership: alice's own signed record opens her workspace key; a
// sealed key replaced by one someone else sealed, a record by an untrusted
// signer, a modified record, one for another workspace, account or keys,
// and a listing that contradicts the record are each refused.
func TestMembership(t *testing.T) {
	f := newFixture(t)
	good := f.member(t, f.alice, aliceID, nil, nil)
	rec, k, err := OpenMembership(f.alice, aliceID, testWS, good, f.lookup)
	if err != nil || !bytes.Equal(k, f.wsKey) || rec.Role != RoleAdmin || !rec.AddedAt.Equal(t0) || rec.KeyVersion != 1 {
		t.Fatalf("open: %+v %v", rec, err)
	}
	// Anyone can seal a key to alice: mallory seals a workspace key she
	// knows and swaps it in.
	mallorySealed, _ := SealWorkspaceKey(f.alice.Public(), key32(t))
	swappedKey := good
	swappedKey.SealedKey = mallorySealed
	modified := good
	modified.Record = bytes.Clone(good.Record)
	modified.Record[bytes.Index(modified.Record, []byte("alice@"))] ^= 1
	toBob, _ := SealWorkspaceKey(newIdentity(t).Public(), f.wsKey)
	listing := good
	listing.Role = RoleReader
	tests := []struct {
		name string
		m    syncapi.Member
		chk  Check
	}{
		{"sealed key replaced by one sealed by someone else", swappedKey, CheckSealedKey},
		{"record and key by an untrusted signer", f.member(t, f.mallory, malloryID, nil, mallorySealed), CheckUnknownSigner},
		{"untrusted signer claims a trusted one", f.member(t, f.mallory, aliceID, nil, mallorySealed), CheckSignature},
		{"record modified", modified, CheckSignature},
		{"record truncated", syncapi.Member{Record: good.Record[:20], SealedKey: good.SealedKey}, CheckFormat},
		{"record of another workspace", f.member(t, f.alice, aliceID, func(r *MembershipRecord) { r.WorkspaceID = otherWS }, nil), CheckRetarget},
		{"record of another account", f.member(t, f.alice, aliceID, func(r *MembershipRecord) { r.AccountID = malloryID }, nil), CheckRetarget},
		{"record names other public keys", f.member(t, f.alice, aliceID, func(r *MembershipRecord) { r.PublicKeys = f.mallory.Public() }, nil), CheckKeys},
		{"listing contradicts the record", listing, CheckMetadata},
		{"signed key sealed to someone else", f.member(t, f.alice, aliceID, nil, toBob), CheckDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, k, err := OpenMembership(f.alice, aliceID, testWS, tt.m, f.lookup)
			if CheckOf(err) != tt.chk || k != nil {
				t.Fatalf("err = %v, want check %s", err, tt.chk)
			}
			if rep := errcode.Classify(err); rep.Code != errcode.Conflict || !strings.Contains(rep.Message, "membership record") && !strings.Contains(rep.Message, "workspace key") {
				t.Fatalf("report = %+v", rep)
			}
		})
	}
}

// TestProjectKeyWrap: a project key unwraps only under its workspace key,
// for its workspace, project and key version: a wrapped key replaced by
// another project's, or moved, is refused.
func TestProjectKeyWrap(t *testing.T) {
	f := newFixture(t)
	w, err := WrapProjectKey(f.wsKey, testWS, testProj, 1, f.pk)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := UnwrapProjectKey(f.wsKey, testWS, testProj, 1, w); err != nil || !bytes.Equal(k, f.pk) {
		t.Fatalf("unwrap: %v", err)
	}
	otherProject, _ := WrapProjectKey(f.wsKey, testWS, "web", 1, key32(t))
	otherWorkspace, _ := WrapProjectKey(key32(t), otherWS, testProj, 1, key32(t))
	for _, tt := range []struct {
		name      string
		ws, proj  string
		kv        int
		key, blob []byte
	}{
		{"replaced by another project's wrapped key", testWS, testProj, 1, f.wsKey, otherProject},
		{"replaced by another workspace's", testWS, testProj, 1, f.wsKey, otherWorkspace},
		{"moved to another project", testWS, "web", 1, f.wsKey, w},
		{"moved to another workspace", otherWS, testProj, 1, f.wsKey, w},
		{"other key version", testWS, testProj, 2, f.wsKey, w},
		{"wrong workspace key", testWS, testProj, 1, key32(t), w},
		{"truncated", testWS, testProj, 1, f.wsKey, w[:10]},
	} {
		if k, err := UnwrapProjectKey(tt.key, tt.ws, tt.proj, tt.kv, tt.blob); CheckOf(err) != CheckDecrypt || k != nil {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}
