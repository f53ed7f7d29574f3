package sync

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

func newIdentity(t testing.TB) Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func key32(t testing.TB) []byte {
	t.Helper()
	k, err := crypto.Random(crypto.KeySize)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestWrapIdentityRoundTrip: the wrapped keys open under the wrap key and
// give back an identity with the same public keys that signs the same.
func TestWrapIdentityRoundTrip(t *testing.T) {
	id, wk := newIdentity(t), key32(t)
	blob, err := WrapIdentity(id, wk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapIdentity(wk, blob, id.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Public().Seal, id.Public().Seal) || !bytes.Equal(got.Public().Sign, id.Public().Sign) {
		t.Fatal("public keys differ after unwrap")
	}
	a, _ := id.sign([]byte("m"))
	b, _ := got.sign([]byte("m"))
	if !bytes.Equal(a, b) {
		t.Fatal("unwrapped identity signs differently")
	}
	imported, err := ImportIdentity(ExportIdentity(id), id.Public())
	if err != nil || !bytes.Equal(imported.signPub, id.signPub) {
		t.Fatalf("import: %v", err)
	}
	other := newIdentity(t).Public()
	for name, want := range map[string]syncapi.PublicKeys{
		"other keys":        other,
		"other seal key":    {Seal: other.Seal, Sign: id.Public().Sign},
		"other sign key":    {Seal: id.Public().Seal, Sign: other.Sign},
		"no published keys": {},
	} {
		if _, err := ImportIdentity(ExportIdentity(id), want); CheckOf(err) != CheckKeys {
			t.Errorf("import with %s: %v", name, err)
		}
	}
}

// TestUnwrapIdentityRefusals: a wrapped key replaced, a wrong wrap key,
// published public keys replaced, and keys that do not match the published
// ones are each refused as conflicts with their own check.
func TestUnwrapIdentityRefusals(t *testing.T) {
	id, other, wk := newIdentity(t), newIdentity(t), key32(t)
	blob, _ := WrapIdentity(id, wk)
	otherBlob, _ := WrapIdentity(other, wk)
	// Keys of `other` wrapped with id's public keys in the AD: only someone
	// holding the wrap key could make this, but the key check still holds.
	mismatched, _ := crypto.Seal(wk, other.privateKeys(), privateKeysAD(id.Public()))
	short, _ := crypto.Seal(wk, []byte("short"), privateKeysAD(id.Public()))
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-1] ^= 1
	tests := []struct {
		name string
		key  []byte
		blob []byte
		want syncapi.PublicKeys
		chk  Check
	}{
		{"wrapped key replaced by another account's", wk, otherBlob, id.Public(), CheckDecrypt},
		{"wrapped key modified", wk, flipped, id.Public(), CheckDecrypt},
		{"wrong password or account key", key32(t), blob, id.Public(), CheckDecrypt},
		{"published public keys replaced", wk, blob, other.Public(), CheckDecrypt},
		{"private keys do not derive the public keys", wk, mismatched, id.Public(), CheckKeys},
		{"wrong length", wk, short, id.Public(), CheckFormat},
		{"empty", wk, nil, id.Public(), CheckDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := UnwrapIdentity(tt.key, tt.blob, tt.want)
			if CheckOf(err) != tt.chk {
				t.Fatalf("err = %v, want check %s", err, tt.chk)
			}
			if errcode.Classify(err).Code != errcode.Conflict {
				t.Fatalf("code = %s", errcode.Classify(err).Code)
			}
		})
	}
}

// TestIdentityNeverPrintsKeys: every way Go turns a value into text shows
// no byte of either private key, also when the Identity sits in an
// unexported field where fmt cannot call its methods.
func TestIdentityNeverPrintsKeys(t *testing.T) {
	id := newIdentity(t)
	type holder struct{ id Identity }
	type exported struct{ ID Identity }
	var outs []string
	for _, v := range []any{id, &id, holder{id}, &holder{id}, exported{id}, []Identity{id}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		j, _ := json.Marshal(v)
		outs = append(outs, string(j))
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "id", id, "h", holder{id})
	outs = append(outs, buf.String())
	for _, priv := range [][]byte{id.sealPriv.Reveal(), id.signSeed.Reveal()} {
		forms := encodings(priv)
		// Decimal bytes as fmt prints a []byte with %v or %d.
		forms = append(forms, encoding{"decimal", []byte(fmt.Sprint(priv[:6]))[1:12]})
		for _, out := range outs {
			for _, f := range forms {
				if bytes.Contains([]byte(out), f.data) {
					t.Fatalf("%s of a private key in %q", f.name, out)
				}
			}
		}
	}
}

// encoding is one way bytes could be spelled in a leak.
type encoding struct {
	name string
	data []byte
}

// encodings lists the spellings of c a leak could take: raw, base64
// (std/url, padded or not, and the whole-3-byte-group prefix that appears
// when c starts a longer base64 stream), hex, URL- and JSON-escaped,
// Go-quoted. It mirrors e2e's canaryEncodings, which lives in a test
// package this one cannot import.
func encodings(c []byte) []encoding {
	jsonEsc := func(html bool) []byte {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(string(c))
		s := strings.TrimSuffix(buf.String(), "\n")
		return []byte(s[1 : len(s)-1])
	}
	aligned := c[:len(c)/3*3]
	q := strconv.Quote(string(c))
	out := []encoding{
		{"raw", c},
		{"base64 std", []byte(base64.StdEncoding.EncodeToString(c))},
		{"base64 std unpadded", []byte(base64.RawStdEncoding.EncodeToString(c))},
		{"base64 url", []byte(base64.URLEncoding.EncodeToString(c))},
		{"base64 url unpadded", []byte(base64.RawURLEncoding.EncodeToString(c))},
		{"base64 std (whole 3-byte groups)", []byte(base64.RawStdEncoding.EncodeToString(aligned))},
		{"base64 url (whole 3-byte groups)", []byte(base64.RawURLEncoding.EncodeToString(aligned))},
		{"hex", []byte(hex.EncodeToString(c))},
		{"HEX", []byte(strings.ToUpper(hex.EncodeToString(c)))},
		{"url.QueryEscape", []byte(url.QueryEscape(string(c)))},
		{"url.PathEscape", []byte(url.PathEscape(string(c)))},
		{"JSON-escaped", jsonEsc(true)},
		{"JSON-escaped (no HTML escaping)", jsonEsc(false)},
		{"Go-quoted", []byte(q[1 : len(q)-1])},
	}
	return out
}
