package sync

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

const bobID = "acct-bob"

func auditRecords(n int, ws string) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = audit.Record{ID: fmt.Sprintf("r%03d", i), Time: t0.Add(time.Duration(i) * time.Second), FrontEnd: audit.FrontEndCall, Method: "GET",
			Host: "api.stripe.com", Path: "/v1/charges", Workspace: ws, Project: "api", Secrets: []string{testSecret}, Styles: []string{audit.StyleBearer},
			Decision: audit.DecisionAllowed, Status: 200}
	}
	return out
}

// auditFixture: alice and carol are admins (the batch's readers), bob a
// member who uploads; mallory is unknown.
type auditFixture struct {
	*fixture
	bob, carol Identity
}

func newAuditFixture(t *testing.T) *auditFixture {
	return &auditFixture{fixture: newFixture(t), bob: newIdentity(t), carol: newIdentity(t)}
}

func (f *auditFixture) readers() map[string]syncapi.PublicKeys {
	return map[string]syncapi.PublicKeys{aliceID: f.alice.Public(), "acct-carol": f.carol.Public()}
}

// lookup trusts alice and bob.
func (f *auditFixture) lookup(id string) (ed25519.PublicKey, error) {
	switch id {
	case aliceID:
		return f.alice.Public().Sign, nil
	case bobID:
		return f.bob.Public().Sign, nil
	}
	return nil, errors.New("unknown account")
}

func (f *auditFixture) batch(t *testing.T, uploader Identity, h AuditHeader, recs []audit.Record) []byte {
	t.Helper()
	b, err := SealAuditBatch(uploader, h, f.readers(), recs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bobHeader(n int) AuditHeader {
	return AuditHeader{WorkspaceID: testWS, UploaderID: bobID, Seq: 7, Count: n, CreatedAt: t0}
}

// TestAuditBatchRoundTrip: each admin the batch is sealed to opens the
// exact records; the batch holds no name, host or path in clear.
func TestAuditBatchRoundTrip(t *testing.T) {
	f := newAuditFixture(t)
	recs := auditRecords(3, "acme-prod")
	b := f.batch(t, f.bob, bobHeader(3), recs)
	for _, who := range []struct {
		id  Identity
		acc string
	}{{f.alice, aliceID}, {f.carol, "acct-carol"}} {
		h, got, err := OpenAuditBatch(b, testWS, who.id, who.acc, f.lookup)
		if err != nil || h != bobHeader(3) || len(got) != 3 {
			t.Fatalf("%s: %+v %d %v", who.acc, h, len(got), err)
		}
		for i := range got {
			if !got[i].Time.Equal(recs[i].Time) || got[i].ID != recs[i].ID || got[i].Host != recs[i].Host || got[i].Secrets[0] != testSecret {
				t.Fatalf("record %d = %+v", i, got[i])
			}
		}
	}
	for _, clear := range []string{testSecret, "api.stripe.com", "/v1/charges", "allowed", "acme-prod"} {
		if bytes.Contains(b, []byte(clear)) {
			t.Fatalf("the sealed batch holds %q in clear", clear)
		}
	}
}

// TestAuditBatchRefusals: a member the batch is not sealed to (bob, the
// uploader himself) cannot open it; every byte of it is covered: flipping
// any one is refused; and each named attack fails its check.
func TestAuditBatchRefusals(t *testing.T) {
	f := newAuditFixture(t)
	recs := auditRecords(2, "team")
	b := f.batch(t, f.bob, bobHeader(2), recs)
	if _, _, err := OpenAuditBatch(b, testWS, f.bob, bobID, f.lookup); CheckOf(err) != CheckDecrypt {
		t.Fatalf("a non-admin opened the batch: %v", err)
	}
	if _, _, err := OpenAuditBatch(b, testWS, f.mallory, aliceID, f.lookup); CheckOf(err) != CheckDecrypt {
		t.Fatalf("another key opened alice's copy: %v", err)
	}
	for i := range b {
		m := bytes.Clone(b)
		m[i] ^= 0x01
		if _, _, err := OpenAuditBatch(m, testWS, f.alice, aliceID, f.lookup); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	// Re-sealing the same records to a reader set without carol, signed
	// by someone else, or under another header.
	p, err := parseAuditBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	fields := func(signed []byte, sig, ct []byte) []byte {
		return crypto.AppendField(crypto.AppendField(signed, sig), ct)
	}
	dropCarol := crypto.AppendField(crypto.AppendField(nil, []byte(aliceID)), p.keys[aliceID])
	seqMoved := p.h
	seqMoved.Seq++
	tests := []struct {
		name  string
		batch []byte
		ws    string
		check Check
	}{
		{"another workspace", f.batch(t, f.bob, AuditHeader{WorkspaceID: otherWS, UploaderID: bobID, Seq: 1, Count: 2, CreatedAt: t0}, recs), testWS, CheckRetarget},
		{"unknown uploader", f.batch(t, f.mallory, AuditHeader{WorkspaceID: testWS, UploaderID: malloryID, Seq: 1, Count: 2, CreatedAt: t0}, recs), testWS, CheckUnknownSigner},
		{"signed by another than the named uploader", f.batch(t, f.mallory, bobHeader(2), recs), testWS, CheckSignature},
		{"a reader's key dropped", fields(auditSigned(p.h, p.ctSum, dropCarol), p.sig, p.ct), testWS, CheckSignature},
		{"sequence moved", fields(auditSigned(seqMoved, p.ctSum, crypto.Fields([]byte(aliceID), p.keys[aliceID], []byte("acct-carol"), p.keys["acct-carol"])), p.sig, p.ct), testWS, CheckSignature},
		{"ciphertext of another batch", fields(p.signed, p.sig, f.mustParse(t, f.batch(t, f.bob, bobHeader(2), recs)).ct), testWS, CheckSignature},
		{"trailing byte", append(bytes.Clone(b), 0), testWS, CheckFormat},
		{"truncated", b[:len(b)-1], testWS, CheckFormat},
		{"secret envelope as batch", f.seal(t, f.alice, aliceID, ref(testSecret), 1, "", f.pk, value("x")), testWS, CheckFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := OpenAuditBatch(tt.batch, tt.ws, f.alice, aliceID, f.lookup)
			if CheckOf(err) != tt.check {
				t.Fatalf("check = %q (%v), want %q", CheckOf(err), err, tt.check)
			}
		})
	}
	// Records that do not match the signed count, sealed honestly by the
	// uploader, are content errors.
	if _, err := SealAuditBatch(f.bob, bobHeader(3), f.readers(), recs); err == nil {
		t.Fatal("sealed a batch whose count is not its records'")
	}
}

func (f *auditFixture) mustParse(t *testing.T, b []byte) parsedAudit {
	t.Helper()
	p, err := parseAuditBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuditVectors pins the associated data and the signed header of the
// documented layout (docs/protocol.md, "Team audit").
func TestAuditVectors(t *testing.T) {
	h := AuditHeader{WorkspaceID: testWS, UploaderID: bobID, Seq: 7, Count: 2, CreatedAt: t0}
	if got := hex.EncodeToString(auditBodyAD(h)); got != wantAuditAD {
		t.Errorf("AD = %s", got)
	}
	sum := sha256.Sum256([]byte("ciphertext"))
	keys := crypto.Fields([]byte(aliceID), bytes.Repeat([]byte{9}, 80))
	signed := sha256.Sum256(auditSigned(h, sum[:], keys))
	if got := hex.EncodeToString(signed[:]); got != wantAuditSigned {
		t.Errorf("SHA-256 of the signed header = %s", got)
	}
}

const (
	wantAuditAD     = "000000206167656e7473656372657473207631207465616d20617564697420626174636800000020303031313232333334343535363637373838393961616262636364646565666600000008616363742d626f62000000080000000000000007000000080000000000000002"
	wantAuditSigned = "8c8e906943b7f8987a71a88cef0fa8da5caffb87f8d64e634299dd4dc463c77c"
)

// TestPendingAudit: the upload selects the workspace's records after the
// cursor (by id, or by time once the log rotated the id away), at most
// MaxAuditRecords and about maxAuditJSON bytes, without the local chain
// link.
func TestPendingAudit(t *testing.T) {
	recs := append(auditRecords(4, "team"), auditRecords(2, "other")...)
	recs[0].Prev = "ab"
	ids := func(rs []audit.Record) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.ID+"@"+r.Workspace)
		}
		return strings.Join(out, ",")
	}
	big := auditRecords(MaxAuditRecords+10, "team")
	// Records as large as the audit log lets them be, and one beyond.
	huge := auditRecords(30, "team")
	for i := range huge {
		huge[i].Path = "/" + strings.Repeat("p", 2047)
		n := maxAuditNames
		if i == 0 {
			n = 5000
		}
		huge[i].Secrets = make([]string, n)
		for j := range huge[i].Secrets {
			huge[i].Secrets[j] = "S" + strings.Repeat("X", 127)
		}
	}
	tests := []struct {
		name string
		recs []audit.Record
		cur  *vault.AuditCursor
		want string
	}{
		{"no cursor: every record of the workspace", recs, nil, "r000@team,r001@team,r002@team,r003@team"},
		{"after the cursor's record", recs, &vault.AuditCursor{Seq: 2, LastID: "r001", LastTime: t0.Add(time.Second)}, "r002@team,r003@team"},
		{"cursor's record rotated away: after its time", recs, &vault.AuditCursor{Seq: 2, LastID: "gone", LastTime: t0.Add(2 * time.Second)}, "r003@team"},
		{"all uploaded", recs, &vault.AuditCursor{Seq: 4, LastID: "r003", LastTime: t0.Add(3 * time.Second)}, ""},
		{"another workspace's records are never selected", recs[4:], nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pendingAudit(tt.recs, "team", tt.cur)
			if ids(got) != tt.want {
				t.Fatalf("got %s, want %s", ids(got), tt.want)
			}
			for _, r := range got {
				if r.Prev != "" {
					t.Fatalf("record %s keeps its local chain link", r.ID)
				}
			}
		})
	}
	if got := pendingAudit(big, "team", nil); len(got) != MaxAuditRecords {
		t.Fatalf("%d records in one upload, want %d", len(got), MaxAuditRecords)
	}
	got := pendingAudit(huge, "team", nil)
	size := 0
	for _, r := range got {
		b, _ := json.Marshal(r)
		size += len(b)
	}
	if len(got) < 2 || len(got) == len(huge) || size > maxAuditJSON {
		t.Fatalf("%d huge records (%d bytes) in one upload: not bounded by size", len(got), size)
	}
	if s := got[0].Secrets; len(s) != maxAuditNames+1 || s[maxAuditNames] != audit.Invalid || len(huge[0].Secrets) != 5000 {
		t.Fatalf("a record with 5000 names uploads %d (and the log's copy changed: %d)", len(s), len(huge[0].Secrets))
	}
	// The largest possible upload seals under the server's bound.
	f := newAuditFixture(t)
	b, err := SealAuditBatch(f.bob, AuditHeader{WorkspaceID: testWS, UploaderID: bobID, Seq: 1, Count: len(got), CreatedAt: t0}, f.readers(), got)
	if err != nil || len(b) > syncapi.MaxAuditBatch {
		t.Fatalf("sealed %d bytes (max %d): %v", len(b), syncapi.MaxAuditBatch, err)
	}
}

// FuzzOpenAuditBatch: whatever bytes the server hands over, opening a
// batch never panics, every refusal is a coded conflict, and the only
// batch accepted is one bob sealed, with his records.
func FuzzOpenAuditBatch(f *testing.F) {
	// Fixed keys: every fuzz worker builds the same fixture, so the seed
	// batch verifies in each.
	ident := func(b byte) Identity {
		id, err := identityFrom(bytes.Repeat([]byte{b}, 32), bytes.Repeat([]byte{b + 1}, 32), nil)
		if err != nil {
			f.Fatal(err)
		}
		return id
	}
	fx := &auditFixture{fixture: fixedFixture(f), bob: ident(0x51), carol: ident(0x61)}
	recs := auditRecords(2, "acme-prod")
	good, err := SealAuditBatch(fx.bob, bobHeader(2), fx.readers(), recs)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, got, err := OpenAuditBatch(b, testWS, fx.alice, aliceID, fx.lookup)
		if err != nil {
			if CheckOf(err) == "" || errcode.Classify(err).Code != errcode.Conflict {
				t.Fatalf("uncoded refusal: %v", err)
			}
			return
		}
		// Sealing is randomised (batch key, boxes, nonce): bob's batches
		// differ in bytes, never in what they say.
		if h != bobHeader(2) || len(got) != 2 || got[0].ID != recs[0].ID || got[1].ID != recs[1].ID || got[1].Host != recs[1].Host {
			t.Fatalf("accepted a batch bob did not seal: %+v", h)
		}
	})
}
