package sync

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// The vector of docs/protocol.md, "Service tokens": secret 00 01 … 1f,
// server https://sync.example.com. The derivations were checked against
// an independent HKDF (Python's hmac/hashlib).
const (
	vecTokenServer = "https://sync.example.com"
	vecToken       = "ast1.aHR0cHM6Ly9zeW5jLmV4YW1wbGUuY29t.aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypq"
	vecTokenID     = "048ca5f05b9d80ada34394527834c597"
	vecTokenAuth   = "cd29f75a066526d90ae1f9f64e632da0f03f9d2da2df509085c7aa072c399985"
	vecTokenWrap   = "7d85fc5b3b3893eaf3a6e92dfdc5017fb12803a5ef659e2da75f3e3147033d4b"
)

func vecTokenSecret() []byte {
	s := make([]byte, TokenSecretSize)
	for i := range s {
		s[i] = byte(i)
	}
	return s
}

func TestTokenVector(t *testing.T) {
	sec := vecTokenSecret()
	if got := FormatToken(vecTokenServer, sec); got != vecToken {
		t.Fatalf("FormatToken = %s", got)
	}
	server, got, err := ParseToken(" " + vecToken + "\n")
	if err != nil || server != vecTokenServer || !bytes.Equal(got, sec) {
		t.Fatalf("ParseToken = %q %x %v", server, got, err)
	}
	k, err := DeriveTokenKeys(sec)
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != vecTokenID || hex.EncodeToString(k.AuthKey) != vecTokenAuth || hex.EncodeToString(k.WrapKey) != vecTokenWrap || k.AccountID() != "tok-"+vecTokenID {
		t.Fatalf("keys = %s %x %x", k.ID, k.AuthKey, k.WrapKey)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	for _, server := range []string{"https://sync.example.com", "https://sync.example.com:8443/base", "http://127.0.0.1:9000", "http://[::1]:80"} {
		sec, err := NewTokenSecret()
		if err != nil {
			t.Fatal(err)
		}
		tok := FormatToken(server, sec)
		s, got, err := ParseToken(tok)
		if err != nil || s != server || !bytes.Equal(got, sec) {
			t.Errorf("%s: %q %v", server, s, err)
		}
	}
}

// TestParseTokenRefusals: every malformed token is a usage error that
// never echoes the input, whichever part is wrong.
func TestParseTokenRefusals(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	sec := vecToken[strings.LastIndexByte(vecToken, '.')+1:]
	srv := b64(vecTokenServer)
	cases := map[string]string{
		"empty":                 "",
		"no prefix":             srv + "." + sec,
		"other version":         "ast2." + srv + "." + sec,
		"upper prefix":          "AST1." + srv + "." + sec,
		"one part":              "ast1." + srv,
		"three parts":           "ast1." + srv + "." + sec + ".x",
		"padded server":         "ast1." + base64.URLEncoding.EncodeToString([]byte(vecTokenServer+"x")) + "." + sec,
		"std base64 server":     "ast1." + base64.RawStdEncoding.EncodeToString([]byte("https://s.example.com/?>")) + "." + sec,
		"not a URL":             "ast1." + b64("sync.example.com") + "." + sec,
		"plain http remote":     "ast1." + b64("http://sync.example.com") + "." + sec,
		"URL not normal":        "ast1." + b64("https://SYNC.example.com/") + "." + sec,
		"user info":             "ast1." + b64("https://u:p@sync.example.com") + "." + sec,
		"short secret":          "ast1." + srv + "." + sec[:51],
		"long secret":           "ast1." + srv + "." + sec + "a",
		"upper secret":          "ast1." + srv + "." + strings.ToUpper(sec),
		"secret outside a-z2-7": "ast1." + srv + "." + sec[:51] + "1",
		"secret padded":         "ast1." + srv + "." + sec + "====",
		"non-canonical bits":    "ast1." + srv + "." + sec[:51] + "r",
		"space inside":          "ast1." + srv + ". " + sec,
	}
	for name, tok := range cases {
		_, got, err := ParseToken(tok)
		if err == nil || errcode.Classify(err).Code != errcode.Usage {
			t.Errorf("%s: %v (secret %x)", name, err, got)
			continue
		}
		rep := errcode.Classify(err)
		if tok != "" && (strings.Contains(rep.Message+rep.Hint, tok) || strings.Contains(rep.Message+rep.Hint, sec[:20])) {
			t.Errorf("%s: the error echoes the token: %s", name, rep.Message)
		}
	}
}

// TestTokenIdentityWrap: the identity wrapped under the token's wrap key
// opens with that key only, and only against its own public keys.
func TestTokenIdentityWrap(t *testing.T) {
	k, err := DeriveTokenKeys(vecTokenSecret())
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := WrapIdentity(id, k.WrapKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnwrapIdentity(k.WrapKey, blob, id.Public())
	if err != nil || !sameKeys(got.Public(), id.Public()) {
		t.Fatalf("unwrap: %v", err)
	}
	other, _ := NewIdentity()
	for name, try := range map[string]func() error{
		"auth key": func() error { _, err := UnwrapIdentity(k.AuthKey, blob, id.Public()); return err },
		"other secret": func() error {
			o, _ := DeriveTokenKeys(bytes.Repeat([]byte{7}, TokenSecretSize))
			_, err := UnwrapIdentity(o.WrapKey, blob, id.Public())
			return err
		},
		"other public keys": func() error { _, err := UnwrapIdentity(k.WrapKey, blob, other.Public()); return err },
	} {
		if err := try(); CheckOf(err) != CheckDecrypt {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := DeriveTokenKeys(make([]byte, 31)); err == nil {
		t.Error("a short secret derived keys")
	}
}

func TestParseTokenLife(t *testing.T) {
	for in, want := range map[string]time.Duration{"1h": time.Hour, "12h": 12 * time.Hour, "30d": 30 * 24 * time.Hour, "365d": MaxTokenLife, "8760h": MaxTokenLife} {
		if got, err := ParseTokenLife(in); err != nil || got != want {
			t.Errorf("%s = %v %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "0d", "-1d", "+1d", "366d", "8761h", "1w", "1.5d", "30", "1d ", "99999999999999999999d"} {
		if _, err := ParseTokenLife(in); errcode.Classify(err).Code != errcode.Usage {
			t.Errorf("%q: %v", in, err)
		}
	}
}
