package sync

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

const (
	testWS     = "00112233445566778899aabbccddeeff"
	otherWS    = "ffeeddccbbaa99887766554433221100"
	aliceID    = "acct-alice"
	malloryID  = "acct-mallory"
	testProj   = "api"
	testSecret = "STRIPE_KEY"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// fixture is one workspace with a project, its keys, the trusted author
// alice and mallory, whom the lookup does not trust (a server, or a
// member later removed, with a key pair of its own).
type fixture struct {
	alice, mallory Identity
	wsKey, pk      []byte
}

func newFixture(t testing.TB) *fixture {
	return &fixture{alice: newIdentity(t), mallory: newIdentity(t), wsKey: key32(t), pk: key32(t)}
}

// lookup trusts alice only.
func (f *fixture) lookup(id string) (ed25519.PublicKey, error) {
	if id == aliceID {
		return f.alice.Public().Sign, nil
	}
	return nil, errors.New("unknown account")
}

func ref(name string) SecretRef { return SecretRef{WorkspaceID: testWS, Project: testProj, Name: name} }

// seal seals version v of ref r with prev and value by author (as authorID).
func (f *fixture) seal(t testing.TB, author Identity, authorID string, r SecretRef, v int, prev string, key []byte, c SecretContent) []byte {
	t.Helper()
	env, err := SealSecret(author, SecretHeader{SecretRef: r, Version: v, Prev: prev, AuthorID: authorID, KeyVersion: 1, CreatedAt: t0}, key, c)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func value(s string) SecretContent {
	return SecretContent{Value: secret.New([]byte(s)), Source: "set", UpdatedAt: t0,
		Bindings: []policy.Binding{{Host: "api.stripe.com", Surfaces: []string{"header"}, CreatedAt: t0}}}
}

// chain builds versions 1..n of r by alice and returns them as the server
// lists them.
func (f *fixture) chain(t testing.TB, r SecretRef, n int) []syncapi.SecretVersion {
	t.Helper()
	var out []syncapi.SecretVersion
	prev := ""
	for v := 1; v <= n; v++ {
		env := f.seal(t, f.alice, aliceID, r, v, prev, f.pk, value(fmt.Sprintf("value %d of %s", v, r.Name)))
		out = append(out, syncapi.SecretVersion{Name: r.Name, Version: v, Envelope: env, AuthorID: aliceID, CreatedAt: t0})
		prev = EnvelopeHash(env)
	}
	return out
}

func expect(v int, prev string) SecretExpect {
	return SecretExpect{SecretRef: ref(testSecret), Version: v, Prev: prev, KeyVersion: 1}
}

// TestSealOpenSecret: a sealed value opens to the same value, bindings
// lose their local-only suspension, and a tombstone opens with no value.
func TestSealOpenSecret(t *testing.T) {
	f := newFixture(t)
	c := value("sk_live_1")
	susp := t0
	c.Bindings[0].SuspendedAt, c.Bindings[0].SuspendReason = &susp, "echo"
	env := f.seal(t, f.alice, aliceID, ref(testSecret), 1, "", f.pk, c)
	h, got, err := OpenSecret(env, expect(1, ""), f.pk, f.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value.Reveal()) != "sk_live_1" || h.AuthorID != aliceID || !h.CreatedAt.Equal(t0) || got.Source != "set" {
		t.Fatalf("opened %+v %+v", h, got)
	}
	if len(got.Bindings) != 1 || got.Bindings[0].SuspendedAt != nil || got.Bindings[0].SuspendReason != "" || got.Bindings[0].Host != "api.stripe.com" {
		t.Fatalf("bindings = %+v", got.Bindings)
	}
	if c.Bindings[0].SuspendedAt == nil {
		t.Fatal("SealSecret changed the caller's bindings")
	}
	want, _ := crypto.SyncFingerprint(f.pk, testWS, testProj, testSecret, []byte("sk_live_1"))
	local, _ := SyncFingerprint(f.pk, ref(testSecret), secret.New([]byte("sk_live_1")))
	other, _ := SyncFingerprint(f.pk, ref("OTHER_KEY"), secret.New([]byte("sk_live_1")))
	if got.Fingerprint != want || local != want || other == want {
		t.Fatal("fingerprint is not the sync fingerprint of the value and name")
	}
	tomb := f.seal(t, f.alice, aliceID, ref(testSecret), 2, EnvelopeHash(env), f.pk, SecretContent{Deleted: true, UpdatedAt: t0})
	_, got, err = OpenSecret(tomb, expect(2, EnvelopeHash(env)), f.pk, f.lookup)
	if err != nil || !got.Deleted || !got.Value.Empty() || got.Fingerprint != "" {
		t.Fatalf("tombstone: %+v, %v", got, err)
	}
	if _, err := SealSecret(f.alice, SecretHeader{SecretRef: ref(testSecret), Version: 1, AuthorID: aliceID, KeyVersion: 1, CreatedAt: t0}, f.pk,
		SecretContent{Deleted: true, Value: secret.New([]byte("x"))}); err == nil {
		t.Fatal("a tombstone with a value was sealed")
	}
}

// TestSealSecretRefusesBadHeaders: a header that could never verify as a
// chain link is refused at seal time.
func TestSealSecretRefusesBadHeaders(t *testing.T) {
	f := newFixture(t)
	good := SecretHeader{SecretRef: ref(testSecret), Version: 2, Prev: strings.Repeat("ab", 32), AuthorID: aliceID, KeyVersion: 1, CreatedAt: t0}
	for name, mut := range map[string]func(*SecretHeader){
		"version 0":           func(h *SecretHeader) { h.Version = 0 },
		"version 1 with prev": func(h *SecretHeader) { h.Version = 1 },
		"version 2 no prev":   func(h *SecretHeader) { h.Prev = "" },
		"prev not a hash":     func(h *SecretHeader) { h.Prev = "xyz" },
		"prev upper-case hex": func(h *SecretHeader) { h.Prev = strings.Repeat("AB", 32) },
		"no author":           func(h *SecretHeader) { h.AuthorID = "" },
		"no time":             func(h *SecretHeader) { h.CreatedAt = time.Time{} },
		"no name":             func(h *SecretHeader) { h.Name = "" },
		"key version 0":       func(h *SecretHeader) { h.KeyVersion = 0 },
	} {
		h := good
		mut(&h)
		if _, err := SealSecret(f.alice, h, f.pk, value("v")); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := SealSecret(f.alice, good, f.pk, value("v")); err != nil {
		t.Fatalf("good header: %v", err)
	}
}

// refusalCase is one envelope a malicious server (or a database edit)
// could hand over, what the client asked for, and the check that must
// refuse it.
type refusalCase struct {
	name string
	env  []byte
	want SecretExpect
	key  []byte
	chk  Check
}

// secretRefusals are the single-envelope attacks.
func (f *fixture) secretRefusals(t testing.TB, c SecretContent) []refusalCase {
	r := ref(testSecret)
	v1 := f.seal(t, f.alice, aliceID, r, 1, "", f.pk, c)
	h1 := EnvelopeHash(v1)
	v2 := f.seal(t, f.alice, aliceID, r, 2, h1, f.pk, c)
	h2 := EnvelopeHash(v2)
	fork := f.seal(t, f.alice, aliceID, r, 2, strings.Repeat("00", 32), f.pk, c)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	otherKey := key32(t)
	body := func(b secretBody) string {
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		return string(j)
	}
	bodyOnly := func(pt string) []byte {
		env, err := sealEnvelope(f.alice, SecretHeader{SecretRef: r, Version: 2, Prev: h1, AuthorID: aliceID, KeyVersion: 1, CreatedAt: t0}, f.pk, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	return []refusalCase{
		{"ciphertext byte flipped", flip(v2, len(v2)-70), expect(2, h1), f.pk, CheckSignature},
		{"name byte flipped in the header", flip(v2, bytes.Index(v2, []byte(testSecret))), expect(2, h1), f.pk, CheckSignature},
		{"signature byte flipped", flip(v2, len(v2)-1), expect(2, h1), f.pk, CheckSignature},
		{"truncated", v2[:len(v2)-1], expect(2, h1), f.pk, CheckFormat},
		{"trailing byte", append(bytes.Clone(v2), 0), expect(2, h1), f.pk, CheckFormat},
		{"empty", nil, expect(2, h1), f.pk, CheckFormat},
		{"allowlist document as envelope", f.allowDoc(t, 1, "", f.alice, aliceID, testWS, nil), expect(2, h1), f.pk, CheckFormat},
		{"signed by an untrusted account", f.seal(t, f.mallory, malloryID, r, 2, h1, f.pk, c), expect(2, h1), f.pk, CheckUnknownSigner},
		{"untrusted signer claims a trusted author", f.seal(t, f.mallory, aliceID, r, 2, h1, f.pk, c), expect(2, h1), f.pk, CheckSignature},
		{"moved to another name", f.seal(t, f.alice, aliceID, ref("OTHER_KEY"), 2, h1, f.pk, c), expect(2, h1), f.pk, CheckRetarget},
		{"moved to another project", f.seal(t, f.alice, aliceID, SecretRef{testWS, "web", testSecret}, 2, h1, f.pk, c), expect(2, h1), f.pk, CheckRetarget},
		{"moved to another workspace", f.seal(t, f.alice, aliceID, SecretRef{otherWS, testProj, testSecret}, 2, h1, f.pk, c), expect(2, h1), f.pk, CheckRetarget},
		{"old version replayed", v1, expect(2, h1), f.pk, CheckVersion},
		{"newer version than asked", v2, expect(1, ""), f.pk, CheckVersion},
		{"swapped for a fork", fork, expect(2, h1), f.pk, CheckPrev},
		{"next version does not link", f.seal(t, f.alice, aliceID, r, 3, h1, f.pk, c), expect(3, h2), f.pk, CheckPrev},
		{"other key version", v2, SecretExpect{r, 2, h1, 2}, f.pk, CheckKeyVersion},
		{"sealed under another project key", f.seal(t, f.alice, aliceID, r, 2, h1, otherKey, c), expect(2, h1), f.pk, CheckDecrypt},
		{"opened with another project key", v2, expect(2, h1), otherKey, CheckDecrypt},
		{"body not JSON", bodyOnly("not json"), expect(2, h1), f.pk, CheckContent},
		{"fingerprint does not match", bodyOnly(body(secretBody{Value: c.Value.Reveal(), Fingerprint: strings.Repeat("00", 32)})), expect(2, h1), f.pk, CheckContent},
		{"no fingerprint", bodyOnly(body(secretBody{Value: c.Value.Reveal()})), expect(2, h1), f.pk, CheckContent},
		{"tombstone with a value", bodyOnly(body(secretBody{Value: c.Value.Reveal(), Deleted: true})), expect(2, h1), f.pk, CheckContent},
		{"tombstone with bindings", bodyOnly(body(secretBody{Deleted: true, Bindings: c.Bindings})), expect(2, h1), f.pk, CheckContent},
	}
}

// TestOpenSecretRefusals: every single-envelope attack is refused as a
// conflict naming the secret and its own check, and nothing decrypts.
func TestOpenSecretRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tt := range f.secretRefusals(t, value("sk_live_1")) {
		t.Run(tt.name, func(t *testing.T) {
			_, c, err := OpenSecret(tt.env, tt.want, tt.key, f.lookup)
			if CheckOf(err) != tt.chk {
				t.Fatalf("err = %v, want check %s", err, tt.chk)
			}
			rep := errcode.Classify(err)
			if rep.Code != errcode.Conflict || !strings.Contains(rep.Message, testSecret) || !strings.Contains(rep.Message, string(tt.chk)) {
				t.Fatalf("report = %+v", rep)
			}
			if !c.Value.Empty() {
				t.Fatal("a refused envelope returned a value")
			}
		})
	}
}

// TestVerifyChain: the chain attacks — rollback, a replayed version, a
// dropped version (start, middle, end), reordering, a swapped or forked
// version, a retargeted envelope, an unknown signer and a lying listing —
// are each refused with their own check; honest chains pass.
func TestVerifyChain(t *testing.T) {
	f := newFixture(t)
	r := ref(testSecret)
	c := f.chain(t, r, 5)
	known := func(v int) Known { return Known{Version: v, Hash: EnvelopeHash(c[v-1].Envelope)} }
	other := f.chain(t, ref("OTHER_KEY"), 5)
	otherProject := f.chain(t, SecretRef{testWS, "web", testSecret}, 5)
	pick := func(vs ...int) []syncapi.SecretVersion {
		var out []syncapi.SecretVersion
		for _, v := range vs {
			out = append(out, c[v-1])
		}
		return out
	}
	with := func(list []syncapi.SecretVersion, i int, edit func(*syncapi.SecretVersion)) []syncapi.SecretVersion {
		list = append([]syncapi.SecretVersion(nil), list...)
		edit(&list[i])
		return list
	}
	// A fork of version 4: validly signed, linked to 3, different value.
	fork4 := f.seal(t, f.alice, aliceID, r, 4, EnvelopeHash(c[2].Envelope), f.pk, value("forked"))
	mallory4 := f.seal(t, f.mallory, malloryID, r, 4, EnvelopeHash(c[2].Envelope), f.pk, value("evil"))
	tests := []struct {
		name     string
		known    Known
		head     int
		versions []syncapi.SecretVersion
		chk      Check
		opened   int
	}{
		{"everything from nothing", Known{}, 5, pick(1, 2, 3, 4, 5), "", 5},
		{"the rest from version 2", known(2), 5, pick(3, 4, 5), "", 3},
		{"up to date", known(5), 5, nil, "", 0},
		{"rollback: head below known", known(5), 3, nil, CheckRollback, 0},
		{"rollback: head below known with old versions", known(5), 4, pick(3, 4), CheckRollback, 0},
		{"replayed version already known", known(3), 5, pick(3, 4, 5), CheckRollback, 0},
		{"replayed old envelope as a new version", known(3), 5, with(pick(4, 5), 0, func(v *syncapi.SecretVersion) { v.Envelope = c[1].Envelope }), CheckVersion, 0},
		{"dropped first new version", known(2), 5, pick(4, 5), CheckGap, 0},
		{"dropped version in the middle", known(2), 5, pick(3, 5), CheckGap, 0},
		{"dropped newest version", known(2), 5, pick(3, 4), CheckGap, 0},
		{"from nothing without version 1", Known{}, 5, pick(2, 3, 4, 5), CheckGap, 0},
		{"reordered", known(2), 5, pick(4, 3, 5), CheckReorder, 0},
		{"duplicated", known(2), 5, pick(3, 3, 4, 5), CheckReorder, 0},
		{"swapped middle version breaks the next link", known(2), 5, with(pick(3, 4, 5), 1, func(v *syncapi.SecretVersion) { v.Envelope = fork4 }), CheckPrev, 0},
		{"known hash differs (this device saw another version 2)", Known{2, strings.Repeat("00", 32)}, 5, pick(3, 4, 5), CheckPrev, 0},
		{"moved from another name", known(2), 5, with(pick(3, 4, 5), 1, func(v *syncapi.SecretVersion) { v.Envelope = other[3].Envelope }), CheckRetarget, 0},
		{"moved from another project", Known{}, 5, otherProject, CheckRetarget, 0},
		{"listing names another secret", known(2), 5, with(pick(3, 4, 5), 0, func(v *syncapi.SecretVersion) { v.Name = "OTHER_KEY" }), CheckRetarget, 0},
		{"version by an unknown signer", known(3), 4, []syncapi.SecretVersion{{Name: testSecret, Version: 4, Envelope: mallory4, AuthorID: malloryID}}, CheckUnknownSigner, 0},
		{"modified envelope", known(2), 5, with(pick(3, 4, 5), 2, func(v *syncapi.SecretVersion) {
			v.Envelope = bytes.Clone(v.Envelope)
			v.Envelope[len(v.Envelope)-80] ^= 4
		}), CheckSignature, 0},
		{"listing lies about the author", known(2), 5, with(pick(3, 4, 5), 0, func(v *syncapi.SecretVersion) { v.AuthorID = malloryID }), CheckMetadata, 0},
		{"versions beyond the head", known(2), 4, pick(3, 4, 5), CheckMetadata, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyChain(r, tt.known, tt.head, tt.versions, f.keys(), f.lookup)
			if CheckOf(err) != tt.chk {
				t.Fatalf("err = %v, want check %q", err, tt.chk)
			}
			if err != nil {
				if got != nil {
					t.Fatal("a refused chain returned versions")
				}
				rep := errcode.Classify(err)
				if rep.Code != errcode.Conflict || !strings.Contains(rep.Message, testSecret) {
					t.Fatalf("report = %+v", rep)
				}
				return
			}
			if len(got) != tt.opened {
				t.Fatalf("opened %d versions, want %d", len(got), tt.opened)
			}
			for i, o := range got {
				v := tt.known.Version + 1 + i
				if o.Header.Version != v || string(o.Content.Value.Reveal()) != fmt.Sprintf("value %d of %s", v, testSecret) || o.Hash != EnvelopeHash(c[v-1].Envelope) {
					t.Fatalf("version %d opened wrong", v)
				}
			}
		})
	}
}

// TestEnvelopeCanary: a random high-entropy value appears in no encoding
// in the envelope bytes, nor in any refusal's message or hint.
func TestEnvelopeCanary(t *testing.T) {
	f := newFixture(t)
	raw := key32(t)
	canary := "CANARY_" + base64.RawURLEncoding.EncodeToString(raw)
	c := value(canary)
	var haystacks []string
	env := f.seal(t, f.alice, aliceID, ref(testSecret), 1, "", f.pk, c)
	haystacks = append(haystacks, string(env))
	for _, tt := range f.secretRefusals(t, c) {
		haystacks = append(haystacks, string(tt.env))
		_, _, err := OpenSecret(tt.env, tt.want, tt.key, f.lookup)
		rep := errcode.Classify(err)
		haystacks = append(haystacks, err.Error(), rep.Message, rep.Hint, fmt.Sprintf("%+v", err))
	}
	chain := f.chain(t, ref(testSecret), 2)
	_, err := VerifyChain(ref(testSecret), Known{}, 2, []syncapi.SecretVersion{chain[1]}, f.keys(), f.lookup)
	haystacks = append(haystacks, err.Error())
	for _, h := range haystacks {
		for _, e := range encodings([]byte(canary)) {
			if strings.Contains(h, string(e.data)) {
				t.Fatalf("%s of the canary found", e.name)
			}
		}
	}
}

// fixedFixture has fixed keys, so the seeds a fuzz run's coordinator makes
// verify in its workers too (each builds its own fixture).
func fixedFixture(t testing.TB) *fixture {
	t.Helper()
	ident := func(b byte) Identity {
		id, err := identityFrom(bytes.Repeat([]byte{b}, 32), bytes.Repeat([]byte{b + 1}, 32), nil)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	return &fixture{alice: ident(1), mallory: ident(3), wsKey: bytes.Repeat([]byte{5}, 32), pk: bytes.Repeat([]byte{6}, 32)}
}

// FuzzOpenSecret: the envelope parser never panics, every refusal is a
// coded VerifyError, and whatever it accepts is exactly what alice sealed
// for the expected secret and version (a modified envelope would need a
// forged signature).
func FuzzOpenSecret(f *testing.F) {
	fx := fixedFixture(f)
	sealed := value("sk_live_1")
	v1 := fx.seal(f, fx.alice, aliceID, ref(testSecret), 1, "", fx.pk, sealed)
	want := expect(2, EnvelopeHash(v1))
	f.Add(fx.seal(f, fx.alice, aliceID, ref(testSecret), 2, want.Prev, fx.pk, sealed))
	for _, tt := range fx.secretRefusals(f, sealed) {
		f.Add(tt.env)
	}
	f.Fuzz(func(t *testing.T, env []byte) {
		h, c, err := OpenSecret(env, want, fx.pk, fx.lookup)
		if err != nil {
			if CheckOf(err) == "" || errcode.Classify(err).Code != errcode.Conflict {
				t.Fatalf("uncoded refusal: %v", err)
			}
			return
		}
		if h.SecretRef != want.SecretRef || h.Version != 2 || h.Prev != want.Prev || h.AuthorID != aliceID ||
			string(c.Value.Reveal()) != "sk_live_1" || len(c.Bindings) != 1 || c.Bindings[0].Host != "api.stripe.com" {
			t.Fatalf("accepted an envelope alice did not seal: %+v", h)
		}
	})
}
