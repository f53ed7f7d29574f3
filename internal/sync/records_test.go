package sync

import (
	"bytes"
	"encoding/hex"
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

// FuzzVerifyMembership: the record parser never panics, refusals are
// coded, and an accepted record is one alice signed for this sealed key.
func FuzzVerifyMembership(f *testing.F) {
	fx := fixedFixture(f)
	sealed := bytes.Repeat([]byte{9}, 80)
	m := fx.member(f, fx.alice, aliceID, nil, sealed)
	f.Add(m.Record)
	f.Add(fx.member(f, fx.mallory, malloryID, nil, sealed).Record)
	f.Add(m.Record[:40])
	f.Fuzz(func(t *testing.T, rec []byte) {
		got, err := VerifyMembership(rec, sealed, fx.lookup)
		if err != nil {
			if CheckOf(err) == "" || errcode.Classify(err).Code != errcode.Conflict {
				t.Fatalf("uncoded refusal: %v", err)
			}
			return
		}
		if got.WorkspaceID != testWS || got.AccountID != aliceID || got.AddedBy != aliceID || got.Role != RoleAdmin ||
			!bytes.Equal(got.PublicKeys.Sign, fx.alice.Public().Sign) || !got.AddedAt.Equal(t0) {
			t.Fatalf("accepted a record alice did not sign: %+v", got)
		}
	})
}

// TestProtocolVectors pins the layouts docs/protocol.md describes: the
// public keys of fixed private keys, every associated data, a membership
// record (Ed25519 is deterministic, so the whole record is fixed) and the
// clear, signed header of an envelope and of an allowlist document (their
// ciphertext has a random nonce, so the vector stops before it).
func TestProtocolVectors(t *testing.T) {
	fx := fixedFixture(t)
	pub := fx.alice.Public()
	sealed := bytes.Repeat([]byte{9}, 80)
	m := fx.member(t, fx.alice, aliceID, nil, sealed)
	env := fx.seal(t, fx.alice, aliceID, ref(testSecret), 2, strings.Repeat("ab", 32), fx.pk, value("v"))
	envFields, _, _, err := parseSigned(env, envelopeFields, domainEnvelope)
	if err != nil {
		t.Fatal(err)
	}
	envHeader := env[:len(env)-(4+len(envFields[9]))-(4+len(envFields[10]))]
	doc := fx.allowDoc(t, 1, "", fx.alice, aliceID, testWS, nil)
	docFields, _, _, err := parseSigned(doc, allowlistFields, domainAllowlist)
	if err != nil {
		t.Fatal(err)
	}
	docHeader := doc[:len(doc)-(4+len(docFields[6]))-(4+len(docFields[7]))]
	sum := func(b []byte) string { return EnvelopeHash(b) }
	tests := []struct{ name, got, want string }{
		{"seal public key (X25519 of 32 x 0x01)", hex.EncodeToString(pub.Seal), "a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209"},
		{"sign public key (Ed25519 seed 32 x 0x02)", hex.EncodeToString(pub.Sign), "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"},
		{"private keys AD", hex.EncodeToString(privateKeysAD(pub)), "0000001c6167656e74736563726574732076312070726976617465206b65797300000020a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209000000208139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"},
		{"project key AD", hex.EncodeToString(projectKeyAD(testWS, testProj, 1)), "0000001b6167656e74736563726574732076312070726f6a656374206b657900000020303031313232333334343535363637373838393961616262636364646565666600000003617069000000080000000000000001"},
		{"secret body AD", hex.EncodeToString(secretBodyAD(ref(testSecret), 2, 1)), "0000001b6167656e74736563726574732076312073656372657420626f6479000000203030313132323333343435353636373738383939616162626363646465656666000000036170690000000a5354524950455f4b4559000000080000000000000002000000080000000000000001"},
		{"allowlist body AD", hex.EncodeToString(allowlistBodyAD(testWS, 1)), "0000001e6167656e747365637265747320763120616c6c6f776c69737420626f6479000000203030313132323333343435353636373738383939616162626363646465656666000000080000000000000001"},
		{"membership record SHA-256", sum(m.Record), "80aa8da02ca3a8be2747fdea1e6e00acd13f97fb5890aa17ddbb214e0dcb6b32"},
		{"envelope header", hex.EncodeToString(envHeader), "0000001f6167656e74736563726574732076312073656372657420656e76656c6f7065000000203030313132323333343435353636373738383939616162626363646465656666000000036170690000000a5354524950455f4b455900000008000000000000000200000040616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261626162616261620000000a616363742d616c696365000000080000000000000001000000081886caf21c963206"},
		{"allowlist header", hex.EncodeToString(docHeader), "000000226167656e747365637265747320763120616c6c6f776c69737420646f63756d656e74000000203030313132323333343435353636373738383939616162626363646465656666000000080000000000000001000000000000000a616363742d616c696365000000081886caf21c963206"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}
