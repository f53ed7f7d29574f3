package crypto

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
)

// HKDF info strings of the sync key hierarchy (docs/protocol.md). Each
// names the one key it derives, so no two derivations share an output.
const (
	AuthKeyInfo            = "agentsecrets v1 auth key"
	WrapKeyInfo            = "agentsecrets v1 private-key wrap"
	SyncFingerprintKeyInfo = "agentsecrets v1 sync fingerprint"
)

// keyFingerprintDomain prefixes the input of KeyFingerprint.
const keyFingerprintDomain = "agentsecrets v1 key fingerprint"

// AccountKeySize is the size of the random account key (the second secret
// of the two-secret derivation, shown once as the recovery kit).
const AccountKeySize = 32

// AccountKeys is the two-secret derivation of a sync account:
//
//	prk      = HKDF-Extract(SHA-256, salt = kdf.Salt, ikm = Argon2id(password, kdf) ‖ accountKey)
//	authKey  = HKDF-Expand(prk, AuthKeyInfo, 32)
//	wrapKey  = HKDF-Expand(prk, WrapKeyInfo, 32)
//
// The server sees authKey (it keeps a slow hash of it) and never wrapKey;
// both need the password and the account key, so a stolen server database
// is useless without the device's account key, and a stolen account key is
// useless without the password.
func AccountKeys(password, accountKey []byte, kdf KDFParams) (authKey, wrapKey []byte, err error) {
	if len(accountKey) != AccountKeySize {
		return nil, nil, fmt.Errorf("account key is %d bytes, want %d", len(accountKey), AccountKeySize)
	}
	stretched, err := DeriveKey(password, kdf)
	if err != nil {
		return nil, nil, err
	}
	ikm := append(stretched, accountKey...)
	defer clear(ikm)
	prk, err := hkdfExtract(ikm, kdf.Salt)
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	if authKey, err = hkdfExpand(prk, AuthKeyInfo, KeySize); err != nil {
		return nil, nil, err
	}
	if wrapKey, err = hkdfExpand(prk, WrapKeyInfo, KeySize); err != nil {
		return nil, nil, err
	}
	return authKey, wrapKey, nil
}

// SyncFingerprintKey derives the key of a project's sync fingerprints from
// the project key: HKDF-SHA-256, no salt, info SyncFingerprintKeyInfo. It is
// a separate key so that a fingerprint never reuses the encryption key.
func SyncFingerprintKey(projectKey []byte) ([]byte, error) {
	if len(projectKey) != KeySize {
		return nil, fmt.Errorf("project key is %d bytes, want %d", len(projectKey), KeySize)
	}
	return hkdf.Key(sha256.New, projectKey, nil, SyncFingerprintKeyInfo, KeySize)
}

// SyncFingerprint is the fingerprint two devices compare to tell whether
// they hold the same value without showing or exchanging it:
// SecretFingerprint under SyncFingerprintKey(projectKey).
func SyncFingerprint(projectKey []byte, workspace, project, name string, value []byte) (string, error) {
	k, err := SyncFingerprintKey(projectKey)
	if err != nil {
		return "", err
	}
	defer clear(k)
	return SecretFingerprint(k, workspace, project, name, value), nil
}

// KeyFingerprint is what people compare to check a public key out of band:
// the first 16 bytes of SHA-256(Fields(domain, pub)), as eight groups of
// four hex digits.
func KeyFingerprint(pub []byte) string {
	sum := sha256.Sum256(Fields([]byte(keyFingerprintDomain), pub))
	h := hex.EncodeToString(sum[:16])
	groups := make([]string, 0, len(h)/4)
	for i := 0; i < len(h); i += 4 {
		groups = append(groups, h[i:i+4])
	}
	return strings.Join(groups, " ")
}

// Fields encodes each field as its length (4 bytes, big-endian) followed by
// its bytes. Every associated data and signed payload of the sync protocol
// is built with it, so no two different field lists share an encoding.
func Fields(fields ...[]byte) []byte {
	n := 0
	for _, f := range fields {
		n += 4 + len(f)
	}
	out := make([]byte, 0, n)
	for _, f := range fields {
		out = AppendField(out, f)
	}
	return out
}

// AppendField appends one length-prefixed field to b.
func AppendField(b, f []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(f))), f...)
}

// Uint64Field is n as an 8-byte big-endian field body, the encoding of
// every integer (versions, timestamps) inside Fields.
func Uint64Field(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// X25519 and Ed25519 sizes.
const (
	X25519KeySize = 32
	SignSeedSize  = ed25519.SeedSize
)

// NewX25519 generates a sealing key pair.
func NewX25519() (pub, priv []byte, err error) {
	p, k, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate x25519 key: %w", err)
	}
	return p[:], k[:], nil
}

// X25519Public derives the public key of an X25519 private key.
func X25519Public(priv []byte) ([]byte, error) {
	if len(priv) != X25519KeySize {
		return nil, fmt.Errorf("x25519 private key is %d bytes, want %d", len(priv), X25519KeySize)
	}
	return curve25519.X25519(priv, curve25519.Basepoint)
}

// ErrSealedBox is returned when a sealed box does not open: not sealed to
// this key, or modified.
var ErrSealedBox = errors.New("sealed box does not open with this key")

// SealAnonymous seals msg to an X25519 public key (libsodium's
// crypto_box_seal: an ephemeral sender key, so the box says nothing about
// who sealed it; a signature elsewhere must say that).
func SealAnonymous(recipient, msg []byte) ([]byte, error) {
	if len(recipient) != X25519KeySize {
		return nil, fmt.Errorf("x25519 public key is %d bytes, want %d", len(recipient), X25519KeySize)
	}
	return box.SealAnonymous(nil, msg, (*[32]byte)(recipient), rand.Reader)
}

// OpenAnonymous opens a box sealed to the key pair (pub, priv).
func OpenAnonymous(pub, priv, sealed []byte) ([]byte, error) {
	if len(pub) != X25519KeySize || len(priv) != X25519KeySize {
		return nil, ErrSealedBox
	}
	out, ok := box.OpenAnonymous(nil, sealed, (*[32]byte)(pub), (*[32]byte)(priv))
	if !ok {
		return nil, ErrSealedBox
	}
	return out, nil
}

// Sign signs msg, which must start with a domain string of its own (see
// Fields), with the Ed25519 key of seed.
func Sign(seed, msg []byte) ([]byte, error) {
	if len(seed) != SignSeedSize {
		return nil, fmt.Errorf("ed25519 seed is %d bytes, want %d", len(seed), SignSeedSize)
	}
	return ed25519.Sign(ed25519.NewKeyFromSeed(seed), msg), nil
}

// Verify reports whether sig is pub's signature of msg. A key of the wrong
// size verifies nothing.
func Verify(pub, msg, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize &&
		ed25519.Verify(ed25519.PublicKey(pub), msg, sig)
}

// SignPublic derives the Ed25519 public key of seed.
func SignPublic(seed []byte) ([]byte, error) {
	if len(seed) != SignSeedSize {
		return nil, fmt.Errorf("ed25519 seed is %d bytes, want %d", len(seed), SignSeedSize)
	}
	return []byte(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)), nil
}

// hkdfExtract and hkdfExpand are HKDF with SHA-256, the only hash the
// sync derivations use.
func hkdfExtract(secret, salt []byte) ([]byte, error) { return hkdf.Extract(sha256.New, secret, salt) }

func hkdfExpand(prk []byte, info string, n int) ([]byte, error) {
	return hkdf.Expand(sha256.New, prk, info, n)
}
