package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"golang.org/x/crypto/argon2"
)

// Token prefixes say what a token is when one turns up in a log or a
// paste, and let the server refuse the wrong kind before a lookup.
const (
	AccessPrefix  = "as_at_"
	RefreshPrefix = "as_rt_"
)

// newToken returns a fresh bearer token and the SHA-256 the server keeps.
func newToken(prefix string) (string, []byte, error) {
	raw, err := crypto.Random(32)
	if err != nil {
		return "", nil, err
	}
	tok := prefix + base64.RawURLEncoding.EncodeToString(raw)
	return tok, hashToken(tok), nil
}

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// tokenShaped reports whether s looks like a token of this kind; anything
// else is refused without touching the database.
func tokenShaped(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// newID is 16 random bytes in hex: account and device ids.
func newID() (string, error) {
	raw, err := crypto.Random(16)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(raw), nil
}

// Argon2id parameters for stored authentication keys. The input is a
// 256-bit derived key, not a password, so the hash need not resist
// guessing; it only makes a stolen database useless for logging in and
// keeps each check cheap enough to serve (OWASP's minimum: 19 MiB, t=2 is
// for passwords; t=1 suffices here).
const (
	authTime    = 1
	authMemoryK = 19 * 1024
	authThreads = 1
	authKeySize = 32
)

// hashes bounds concurrent Argon2id runs: each takes authMemoryK of memory,
// and a burst of logins must not take the server's memory with it.
type hasher struct{ slots chan struct{} }

func newHasher(n int) *hasher { return &hasher{slots: make(chan struct{}, n)} }

func (h *hasher) hash(authKey, salt []byte) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	return argon2.IDKey(authKey, salt, authTime, authMemoryK, authThreads, authKeySize)
}

// verify compares in constant time.
func (h *hasher) verify(authKey, salt, want []byte) bool {
	return subtle.ConstantTimeCompare(h.hash(authKey, salt), want) == 1
}

// fakeKDF answers prelogin for an email with no account: parameters shaped
// like the client's defaults, with a salt that is an HMAC of the email under
// the server key, so the same email gets the same answer every time and no
// answer tells an unknown email from a known one.
func fakeKDF(serverKey []byte, email string) crypto.KDFParams {
	m := hmac.New(sha256.New, serverKey)
	m.Write([]byte("agentsecrets v1 prelogin salt\x00"))
	m.Write([]byte(email))
	def, _ := crypto.DefaultKDF()
	def.Salt = m.Sum(nil)[:16]
	return def
}
