package sync

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

func entries(hosts ...string) []policy.AllowEntry {
	out := []policy.AllowEntry{}
	for _, h := range hosts {
		out = append(out, policy.AllowEntry{Host: h, AddedAt: t0})
	}
	return out
}

// allowDoc seals allowlist version v of ws under f.wsKey.
func (f *fixture) allowDoc(t testing.TB, v int, prev string, author Identity, authorID, ws string, es []policy.AllowEntry) []byte {
	t.Helper()
	doc, err := SealAllowlist(author, AllowlistHeader{WorkspaceID: ws, Version: v, Prev: prev, AuthorID: authorID, CreatedAt: t0}, f.wsKey, es)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestAllowlistDocument: a document opens to its entries; every attack —
// a changed entry (binding) inside it, another signer, another workspace,
// a replayed or forked version, another key — is refused with its check,
// and the chain rules hold as for secrets.
func TestAllowlistDocument(t *testing.T) {
	f := newFixture(t)
	d1 := f.allowDoc(t, 1, "", f.alice, aliceID, testWS, entries("api.stripe.com"))
	h1 := EnvelopeHash(d1)
	d2 := f.allowDoc(t, 2, h1, f.alice, aliceID, testWS, entries("api.stripe.com", "api.github.com"))
	h, es, err := OpenAllowlist(d2, AllowlistExpect{testWS, 2, h1}, f.wsKey, f.lookup)
	if err != nil || h.Version != 2 || len(es) != 2 || es[1].Host != "api.github.com" {
		t.Fatalf("open: %+v %+v %v", h, es, err)
	}
	changed := bytes.Clone(d2)
	changed[len(changed)-90] ^= 1 // inside the encrypted entries
	fork := f.allowDoc(t, 2, h1, f.alice, aliceID, testWS, entries("evil.example"))
	tests := []struct {
		name string
		doc  []byte
		want AllowlistExpect
		key  []byte
		chk  Check
	}{
		{"entry changed inside the document", changed, AllowlistExpect{testWS, 2, h1}, f.wsKey, CheckSignature},
		{"entries replaced by an untrusted signer", f.allowDoc(t, 2, h1, f.mallory, malloryID, testWS, entries("evil.example")), AllowlistExpect{testWS, 2, h1}, f.wsKey, CheckUnknownSigner},
		{"another workspace's document", f.allowDoc(t, 2, h1, f.alice, aliceID, otherWS, entries()), AllowlistExpect{testWS, 2, h1}, f.wsKey, CheckRetarget},
		{"old version replayed", d1, AllowlistExpect{testWS, 2, h1}, f.wsKey, CheckVersion},
		{"forked version", fork, AllowlistExpect{testWS, 2, "ab" + h1[2:]}, f.wsKey, CheckPrev},
		{"other workspace key", d2, AllowlistExpect{testWS, 2, h1}, key32(t), CheckDecrypt},
		{"secret envelope as document", f.seal(t, f.alice, aliceID, ref(testSecret), 1, "", f.pk, value("x")), AllowlistExpect{testWS, 1, ""}, f.wsKey, CheckFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, es, err := OpenAllowlist(tt.doc, tt.want, tt.key, f.lookup)
			if CheckOf(err) != tt.chk || es != nil {
				t.Fatalf("err = %v, want check %s", err, tt.chk)
			}
			if rep := errcode.Classify(err); rep.Code != errcode.Conflict || !strings.Contains(rep.Message, "allowlist of workspace "+testWS) {
				t.Fatalf("report = %+v", rep)
			}
		})
	}

	d3 := f.allowDoc(t, 3, EnvelopeHash(d2), f.alice, aliceID, testWS, entries())
	vs := []syncapi.AllowlistVersion{{Version: 1, Document: d1, AuthorID: aliceID}, {Version: 2, Document: d2, AuthorID: aliceID}, {Version: 3, Document: d3, AuthorID: aliceID}}
	chains := []struct {
		name     string
		known    Known
		head     int
		versions []syncapi.AllowlistVersion
		chk      Check
	}{
		{"all", Known{}, 3, vs, ""},
		{"rest", Known{1, h1}, 3, vs[1:], ""},
		{"rollback", Known{3, EnvelopeHash(d3)}, 2, nil, CheckRollback},
		{"dropped version", Known{1, h1}, 3, vs[2:], CheckGap},
		{"reordered", Known{}, 3, []syncapi.AllowlistVersion{vs[1], vs[0], vs[2]}, CheckReorder},
		{"swapped version", Known{1, h1}, 3, []syncapi.AllowlistVersion{{Version: 2, Document: fork, AuthorID: aliceID}, vs[2]}, CheckPrev},
	}
	for _, tt := range chains {
		t.Run("chain "+tt.name, func(t *testing.T) {
			got, err := VerifyAllowlistChain(testWS, tt.known, tt.head, tt.versions, f.wsKey, f.lookup)
			if CheckOf(err) != tt.chk {
				t.Fatalf("err = %v, want check %q", err, tt.chk)
			}
			if err == nil && len(got) != len(tt.versions) {
				t.Fatalf("opened %d", len(got))
			}
		})
	}
}

// FuzzOpenAllowlist: as FuzzOpenSecret, for allowlist documents.
func FuzzOpenAllowlist(f *testing.F) {
	fx := fixedFixture(f)
	want := AllowlistExpect{WorkspaceID: testWS, Version: 1}
	doc := fx.allowDoc(f, 1, "", fx.alice, aliceID, testWS, entries("api.stripe.com"))
	f.Add(doc)
	f.Add(fx.allowDoc(f, 1, "", fx.mallory, malloryID, testWS, entries("evil.example")))
	f.Add(doc[:len(doc)-3])
	f.Fuzz(func(t *testing.T, d []byte) {
		h, es, err := OpenAllowlist(d, want, fx.wsKey, fx.lookup)
		if err != nil {
			if CheckOf(err) == "" || errcode.Classify(err).Code != errcode.Conflict {
				t.Fatalf("uncoded refusal: %v", err)
			}
			return
		}
		if h.WorkspaceID != testWS || h.Version != 1 || h.AuthorID != aliceID || len(es) != 1 || es[0].Host != "api.stripe.com" {
			t.Fatalf("accepted a document alice did not sign: %+v %+v", h, es)
		}
	})
}
