// Package release signs and verifies release artifacts in minisign's
// format, so users check a download with the real `minisign` tool
// (`minisign -Vm checksums.txt -P KEY`) while the release build needs no
// tool beyond Go.
//
// Only what a release needs is here: unencrypted secret keys (what
// `minisign -G -W` writes), pre-hashed Ed25519 signatures ("ED": the
// signature covers the file's BLAKE2b-512 hash, minisign's default since
// 0.8) with a trusted comment, and their verification. Legacy signatures
// over the whole file ("Ed") verify too, since minisign still accepts them.
package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/blake2b"
)

const (
	untrustedPrefix = "untrusted comment: "
	trustedPrefix   = "trusted comment: "
	// Secret key: sig_alg, kdf_alg, chk_alg, salt, opslimit, memlimit,
	// then key id, secret key and checksum.
	secretKeyLen = 2 + 2 + 2 + 32 + 8 + 8 + 8 + ed25519.PrivateKeySize + 32
	publicKeyLen = 2 + 8 + ed25519.PublicKeySize
	signatureLen = 2 + 8 + ed25519.SignatureSize
)

// Two-byte algorithm tags of minisign's binary formats.
const (
	algEd        = "Ed"
	algPrehashed = "ED"
	algBlake2b   = "B2"
	kdfNone      = "\x00\x00"
	kdfScrypt    = "Sc"
)

// KeyID names a key pair; signatures carry it so a verifier can tell a
// signature made by another key from a forged one.
type KeyID [8]byte

// String is the key id as minisign prints it: the little-endian number in
// upper-case hex.
func (id KeyID) String() string { return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(id[:])) }

// PublicKey is a minisign public key.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// SecretKey is an unencrypted minisign secret key.
type SecretKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k SecretKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// GenerateKey makes a new key pair from rnd (crypto/rand when nil).
func GenerateKey(rnd io.Reader) (SecretKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var id KeyID
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return SecretKey{}, fmt.Errorf("generate key id: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return SecretKey{}, fmt.Errorf("generate key: %w", err)
	}
	return SecretKey{ID: id, Key: priv}, nil
}

// MarshalText writes k as a minisign secret key file without a password,
// the form `minisign -G -W` writes.
func (k SecretKey) MarshalText() ([]byte, error) {
	raw := make([]byte, 0, secretKeyLen)
	raw = append(raw, algEd...)
	raw = append(raw, kdfNone...)
	raw = append(raw, algBlake2b...)
	raw = append(raw, make([]byte, 32+8+8)...)
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	sum := secretKeyChecksum(k.ID, k.Key)
	raw = append(raw, sum[:]...)
	return fileText("minisign secret key", raw), nil
}

// MarshalText writes p as a minisign public key file.
func (p PublicKey) MarshalText() ([]byte, error) {
	return fileText("minisign public key "+p.ID.String(), p.raw()), nil
}

// String is the one-line form users pass to `minisign -P`.
func (p PublicKey) String() string { return base64.StdEncoding.EncodeToString(p.raw()) }

func (p PublicKey) raw() []byte {
	raw := append([]byte(algEd), p.ID[:]...)
	return append(raw, p.Key...)
}

func fileText(comment string, raw []byte) []byte {
	return []byte(untrustedPrefix + comment + "\n" + base64.StdEncoding.EncodeToString(raw) + "\n")
}

// secretKeyChecksum is minisign's integrity check over an unwrapped secret
// key, which tells a wrong password (or a damaged file) from a good key.
func secretKeyChecksum(id KeyID, key ed25519.PrivateKey) [32]byte {
	h, _ := blake2b.New256(nil) // only fails for a key longer than 64 bytes
	h.Write([]byte(algEd))
	h.Write(id[:])
	h.Write(key)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}

// ParseSecretKey reads a minisign secret key file. Errors never quote the
// file, which holds the key.
func ParseSecretKey(text []byte) (SecretKey, error) {
	raw, err := decodeLine(text, secretKeyLen)
	if err != nil {
		return SecretKey{}, fmt.Errorf("secret key: %w", err)
	}
	sigAlg, kdfAlg, chkAlg := string(raw[0:2]), string(raw[2:4]), string(raw[4:6])
	switch {
	case sigAlg != algEd:
		return SecretKey{}, errors.New("secret key: not an Ed25519 minisign key")
	case chkAlg != algBlake2b:
		return SecretKey{}, errors.New("secret key: unknown checksum algorithm")
	case kdfAlg == kdfScrypt:
		return SecretKey{}, errors.New("secret key: protected by a password; a release key must be unencrypted (minisign -G -W) and kept in the release secret store")
	case kdfAlg != kdfNone:
		return SecretKey{}, errors.New("secret key: unknown key derivation algorithm")
	}
	body := raw[2+2+2+32+8+8:]
	var k SecretKey
	copy(k.ID[:], body[:8])
	k.Key = ed25519.PrivateKey(bytes.Clone(body[8 : 8+ed25519.PrivateKeySize]))
	// minisign 0.11 leaves the checksum of an unencrypted key zero; later
	// versions fill it in. Either is a good key; anything else is damage.
	sum, stored := secretKeyChecksum(k.ID, k.Key), body[8+ed25519.PrivateKeySize:]
	if subtle.ConstantTimeCompare(sum[:], stored) != 1 && subtle.ConstantTimeCompare(make([]byte, len(stored)), stored) != 1 {
		return SecretKey{}, errors.New("secret key: checksum mismatch (damaged file)")
	}
	// The private key's second half is its public key: a file whose two
	// halves disagree would sign with a key nobody can verify.
	seeded := ed25519.NewKeyFromSeed(k.Key.Seed())
	if !bytes.Equal(seeded, k.Key) {
		return SecretKey{}, errors.New("secret key: inconsistent key pair")
	}
	return k, nil
}

// ParsePublicKey reads a public key, either a minisign .pub file or the
// bare base64 line `minisign -P` takes.
func ParsePublicKey(text []byte) (PublicKey, error) {
	raw, err := decodeLine(text, publicKeyLen)
	if err != nil {
		return PublicKey{}, fmt.Errorf("public key: %w", err)
	}
	if string(raw[0:2]) != algEd {
		return PublicKey{}, errors.New("public key: not an Ed25519 minisign key")
	}
	var p PublicKey
	copy(p.ID[:], raw[2:10])
	p.Key = ed25519.PublicKey(bytes.Clone(raw[10:]))
	return p, nil
}

// decodeLine finds the one base64 line of a key file (after an optional
// untrusted comment) and decodes it to exactly n bytes.
func decodeLine(text []byte, n int) ([]byte, error) {
	lines := splitLines(text)
	if len(lines) > 0 && strings.HasPrefix(lines[0], untrustedPrefix) {
		lines = lines[1:]
	}
	if len(lines) != 1 {
		return nil, errors.New("want one base64 line after the comment")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[0])
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(raw) != n {
		return nil, fmt.Errorf("%d bytes, want %d", len(raw), n)
	}
	return raw, nil
}

// splitLines splits text into lines, dropping a final newline and carriage
// returns a Windows editor may add.
func splitLines(text []byte) []string {
	s := strings.TrimSuffix(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Sign makes a detached minisign signature of message. The trusted comment
// is signed too (minisign prints it after a good verification); it must be
// one line.
func Sign(k SecretKey, message []byte, trustedComment string) ([]byte, error) {
	if strings.ContainsAny(trustedComment, "\r\n") {
		return nil, errors.New("sign: the trusted comment must be one line")
	}
	digest := blake2b.Sum512(message)
	sig := ed25519.Sign(k.Key, digest[:])
	raw := append([]byte(algPrehashed), k.ID[:]...)
	raw = append(raw, sig...)
	global := ed25519.Sign(k.Key, append(bytes.Clone(sig), trustedComment...))
	var b strings.Builder
	b.WriteString(untrustedPrefix + "signature from minisign secret key " + k.ID.String() + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	b.WriteString(trustedPrefix + trustedComment + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(global) + "\n")
	return []byte(b.String()), nil
}

// ErrBadSignature means a well-formed signature does not match the message,
// the key or its trusted comment.
var ErrBadSignature = errors.New("signature verification failed")

// Verify checks a minisign signature of message against p and returns the
// trusted comment it vouches for.
func Verify(p PublicKey, message, signature []byte) (string, error) {
	lines := splitLines(signature)
	if len(lines) != 4 || !strings.HasPrefix(lines[0], untrustedPrefix) || !strings.HasPrefix(lines[2], trustedPrefix) {
		return "", errors.New("signature: want four lines (untrusted comment, signature, trusted comment, global signature)")
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(lines[1])
	if err != nil || len(raw) != signatureLen {
		return "", errors.New("signature: malformed signature line")
	}
	global, err := base64.StdEncoding.Strict().DecodeString(lines[3])
	if err != nil || len(global) != ed25519.SignatureSize {
		return "", errors.New("signature: malformed global signature line")
	}
	if KeyID(raw[2:10]) != p.ID {
		return "", fmt.Errorf("signature: made by key %s, not %s: %w", KeyID(raw[2:10]), p.ID, ErrBadSignature)
	}
	signed := message
	switch string(raw[0:2]) {
	case algPrehashed:
		digest := blake2b.Sum512(message)
		signed = digest[:]
	case algEd:
	default:
		return "", errors.New("signature: unknown algorithm")
	}
	sig := raw[10:]
	if !ed25519.Verify(p.Key, signed, sig) {
		return "", ErrBadSignature
	}
	comment := strings.TrimPrefix(lines[2], trustedPrefix)
	if !ed25519.Verify(p.Key, append(bytes.Clone(sig), comment...), global) {
		return "", fmt.Errorf("trusted comment: %w", ErrBadSignature)
	}
	return comment, nil
}
