// Package crypto holds the few primitives agentsecrets uses, in one place:
// Argon2id key and passphrase derivation, AES-256-GCM sealing that always
// binds associated data, keyed fingerprints, and random generation.
//
// Nothing else in the module calls an AEAD or KDF directly, so parameters and
// formats can be reviewed here and are pinned by the test vectors beside it.
package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"golang.org/x/crypto/argon2"
)

// KeySize is the size of every symmetric key: AES-256 and the HMAC keys.
const KeySize = 32

// KDFParams are Argon2id parameters. They are stored next to what they
// protect so that stronger defaults later do not lock out old files.
type KDFParams struct {
	Time    uint32 `json:"time"`
	MemoryK uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
	Salt    []byte `json:"salt"`
}

// DefaultKDF is RFC 9106's second recommended profile (64 MiB, t=3, p=4)
// with a fresh 16-byte salt.
func DefaultKDF() (KDFParams, error) {
	salt, err := Random(16)
	if err != nil {
		return KDFParams{}, err
	}
	return KDFParams{Time: 3, MemoryK: 64 * 1024, Threads: 4, Salt: salt}, nil
}

// Minimums below which a stored parameter set is refused: a tampered file
// must not be able to weaken the derivation.
const (
	minTime    = 1
	minMemoryK = 19 * 1024
	maxMemoryK = 4 * 1024 * 1024
)

// Validate refuses parameter sets that are too weak or absurdly expensive.
func (p KDFParams) Validate() error {
	switch {
	case len(p.Salt) < 16:
		return errors.New("argon2id salt shorter than 16 bytes")
	case p.Time < minTime || p.Time > 100:
		return fmt.Errorf("argon2id time %d out of range", p.Time)
	case p.MemoryK < minMemoryK || p.MemoryK > maxMemoryK:
		return fmt.Errorf("argon2id memory %d KiB out of range", p.MemoryK)
	case p.Threads < 1:
		return errors.New("argon2id threads must be at least 1")
	}
	return nil
}

// DeriveKey stretches a passphrase into a KeySize key.
func DeriveKey(passphrase []byte, p KDFParams) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryK, p.Threads, KeySize), nil
}

// VerifyDerived reports whether passphrase derives to want, in constant time.
func VerifyDerived(passphrase []byte, p KDFParams, want []byte) (bool, error) {
	got, err := DeriveKey(passphrase, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// ErrOpen is returned when a ciphertext fails authentication: wrong key,
// tampered data or different associated data. The causes are
// indistinguishable by design.
var ErrOpen = errors.New("decryption failed: wrong key or corrupted data")

const nonceSize = 12

// Seal encrypts plaintext under key with AES-256-GCM and a random nonce,
// binding ad. The output is nonce || ciphertext || tag. Random nonces are
// safe here because a vault file is rewritten at most a few million times
// under one key, far below GCM's 2^32 random-nonce bound.
func Seal(key, plaintext, ad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce, err := Random(nonceSize)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open reverses Seal. Any failure is ErrOpen.
func Open(key, sealed, ad []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < nonceSize+aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Fingerprint is HMAC-SHA256(key, value), hex encoded: the first scheme of
// secret fingerprints, still read from indexes written before
// SecretFingerprint. Being unsalted, equal values anywhere in the vault
// share it; new fingerprints use SecretFingerprint.
func Fingerprint(key, value []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))
}

// SecretFingerprint is the fingerprint of one stored secret: HMAC-SHA256
// under key of a domain tag, then workspace, project and name, each
// preceded by its length as 4 big-endian bytes, then the value. The
// length prefixes make the encoding unambiguous (no two different
// (workspace, project, name, value) tuples share an input), and binding the
// name means equal values under different names never compare equal: an
// agent that stores guesses under its own names learns nothing by
// comparing fingerprints. Hex encoded.
func SecretFingerprint(key []byte, workspace, project, name string, value []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(fingerprintDomain))
	m.Write(Fields([]byte(workspace), []byte(project), []byte(name)))
	m.Write(value)
	return hex.EncodeToString(m.Sum(nil))
}

// fingerprintDomain separates SecretFingerprint's inputs from those of
// Fingerprint and of any later use of the same key.
const fingerprintDomain = "agentsecrets secret fingerprint v2\x00"

// FingerprintEqual compares two hex fingerprints in constant time.
func FingerprintEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Random returns n bytes from the operating system's CSPRNG.
func Random(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("read random: %w", err)
	}
	return b, nil
}

// RandomString draws length characters uniformly from alphabet.
func RandomString(alphabet string, length int) ([]byte, error) {
	if len(alphabet) < 2 {
		return nil, errors.New("alphabet needs at least two characters")
	}
	if length < 0 {
		return nil, fmt.Errorf("negative length %d", length)
	}
	out := make([]byte, length)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return nil, fmt.Errorf("read random: %w", err)
		}
		out[i] = alphabet[n.Int64()]
	}
	return out, nil
}
