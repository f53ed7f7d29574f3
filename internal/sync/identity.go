// Package sync is the sync client: the cryptography of zero-knowledge sync
// (identities, signed membership records, wrapped keys, secret envelopes,
// allowlist documents and the checks of their hash chains) and, built on it,
// the client of the sync server's /v1 API.
//
// The server stores and returns opaque bytes. Everything it returns is
// verified here before anything is decrypted or written: a signature by a
// trusted account over the exact stored bytes, every header field against
// what the caller expected, and each version's link to the one before.
// docs/protocol.md describes the formats; refusals are errcode conflict
// errors that name what failed and never carry envelope or value bytes.
package sync

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// Domain strings. Each starts the associated data or signed payload it
// names, so a signature or ciphertext made for one purpose never verifies
// as another.
const (
	domainPrivateKeys = "agentsecrets v1 private keys"
	domainMembership  = "agentsecrets v1 membership record"
	domainProjectKey  = "agentsecrets v1 project key"
	domainEnvelope    = "agentsecrets v1 secret envelope"
	domainSecretBody  = "agentsecrets v1 secret body"
	domainAllowlist   = "agentsecrets v1 allowlist document"
	domainAllowBody   = "agentsecrets v1 allowlist body"
	domainStatement   = "agentsecrets v1 invite statement"
	domainAcceptance  = "agentsecrets v1 invite acceptance"
)

// Identity is an account's private keys: X25519 for opening sealed
// workspace keys and Ed25519 for signing. The private halves live in
// secret.Values, so fmt, encoding/json and slog print a redaction whatever
// holds an Identity; the Identity itself prints its signing key's
// fingerprint.
type Identity struct {
	sealPub, signPub []byte
	sealPriv         secret.Value // X25519 private key, 32 bytes
	signSeed         secret.Value // Ed25519 seed, 32 bytes
}

// NewIdentity generates a fresh pair of key pairs for a new account.
func NewIdentity() (Identity, error) {
	sealPub, sealPriv, err := crypto.NewX25519()
	if err != nil {
		return Identity{}, err
	}
	seed, err := crypto.Random(crypto.SignSeedSize)
	if err != nil {
		return Identity{}, err
	}
	return identityFrom(sealPriv, seed, sealPub)
}

// identityFrom builds an Identity from private key bytes, taking ownership
// of them, and checks the X25519 key derives sealPub when that is given.
func identityFrom(sealPriv, seed, sealPub []byte) (Identity, error) {
	if len(sealPriv) != crypto.X25519KeySize || len(seed) != crypto.SignSeedSize {
		return Identity{}, errors.New("private keys have the wrong size")
	}
	derived, err := crypto.X25519Public(sealPriv)
	if err != nil {
		return Identity{}, err
	}
	if sealPub != nil && !bytes.Equal(derived, sealPub) {
		return Identity{}, errors.New("sealing key does not match its public key")
	}
	signPub, err := crypto.SignPublic(seed)
	if err != nil {
		return Identity{}, err
	}
	return Identity{sealPub: derived, signPub: signPub, sealPriv: secret.New(sealPriv), signSeed: secret.New(seed)}, nil
}

// Public returns the public keys, for the server and for other members.
func (id Identity) Public() syncapi.PublicKeys {
	return syncapi.PublicKeys{Seal: bytes.Clone(id.sealPub), Sign: bytes.Clone(id.signPub)}
}

// Valid reports whether id holds keys (the zero Identity does not).
func (id Identity) Valid() bool { return len(id.signPub) == ed25519.PublicKeySize }

// Wipe zeroes the private keys of id and of every copy of it.
func (id Identity) Wipe() {
	id.sealPriv.Wipe()
	id.signSeed.Wipe()
}

// String names the identity by its signing key's fingerprint.
func (id Identity) String() string {
	if !id.Valid() {
		return "[identity: none]"
	}
	return "[identity " + crypto.KeyFingerprint(id.signPub) + "]"
}

// GoString is String (%#v).
func (id Identity) GoString() string { return id.String() }

// Format prints String for every verb: %x would otherwise dump the fields.
func (id Identity) Format(f fmt.State, _ rune) { io.WriteString(f, id.String()) }

// MarshalJSON encodes String, never a key.
func (id Identity) MarshalJSON() ([]byte, error) { return []byte(`"` + id.String() + `"`), nil }

// MarshalText is String.
func (id Identity) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// LogValue makes log/slog print String.
func (id Identity) LogValue() slog.Value { return slog.StringValue(id.String()) }

// privateKeys is the plaintext both WrapIdentity and ExportIdentity carry:
// the X25519 private key, then the Ed25519 seed.
func (id Identity) privateKeys() []byte {
	return append(bytes.Clone(id.sealPriv.Reveal()), id.signSeed.Reveal()...)
}

// privateKeysAD binds a wrapped copy to both public keys, so a copy wrapped
// for one account cannot be presented as another's.
func privateKeysAD(pub syncapi.PublicKeys) []byte {
	return crypto.Fields([]byte(domainPrivateKeys), pub.Seal, pub.Sign)
}

// WrapIdentity encrypts id's private keys under wrapKey (from
// crypto.AccountKeys) for the server to store: AES-256-GCM, associated data
// Fields(domain, seal public key, sign public key).
func WrapIdentity(id Identity, wrapKey []byte) ([]byte, error) {
	if !id.Valid() {
		return nil, errors.New("wrap an empty identity")
	}
	pt := id.privateKeys()
	defer clear(pt)
	return crypto.Seal(wrapKey, pt, privateKeysAD(id.Public()))
}

// UnwrapIdentity reverses WrapIdentity and checks that the private keys
// derive the published public keys want: a server that replaced the
// wrapped keys, or the public keys, is refused.
func UnwrapIdentity(wrapKey, blob []byte, want syncapi.PublicKeys) (Identity, error) {
	const subject = "the account's wrapped private keys"
	pt, err := crypto.Open(wrapKey, blob, privateKeysAD(want))
	if err != nil {
		return Identity{}, refuse(subject, CheckDecrypt, "they do not open under this password and account key")
	}
	return identityFromPlaintext(pt, want, subject)
}

// ExportIdentity returns the private keys as one value, for the local
// vault backend (the account branch stores it as a backend item).
func ExportIdentity(id Identity) secret.Value { return secret.New(id.privateKeys()) }

// ImportIdentity reverses ExportIdentity, checking the keys against want.
func ImportIdentity(v secret.Value, want syncapi.PublicKeys) (Identity, error) {
	return identityFromPlaintext(bytes.Clone(v.Reveal()), want, "the stored private keys")
}

func identityFromPlaintext(pt []byte, want syncapi.PublicKeys, subject string) (Identity, error) {
	if len(pt) != crypto.X25519KeySize+crypto.SignSeedSize {
		clear(pt)
		return Identity{}, refuse(subject, CheckFormat, "wrong length")
	}
	id, err := identityFrom(pt[:crypto.X25519KeySize:crypto.X25519KeySize], pt[crypto.X25519KeySize:], want.Seal)
	if err != nil || !bytes.Equal(id.sealPub, want.Seal) || !bytes.Equal(id.signPub, want.Sign) {
		clear(pt)
		return Identity{}, refuse(subject, CheckKeys, "the private keys do not match the published public keys")
	}
	return id, nil
}

// sign signs msg with the Ed25519 key.
func (id Identity) sign(msg []byte) ([]byte, error) {
	if !id.Valid() {
		return nil, errors.New("sign with an empty identity")
	}
	return crypto.Sign(id.signSeed.Reveal(), msg)
}

// open opens a box sealed to the X25519 key.
func (id Identity) open(sealed []byte) ([]byte, error) {
	return crypto.OpenAnonymous(id.sealPub, id.sealPriv.Reveal(), sealed)
}

// SignerLookup returns the Ed25519 public key of an account the caller
// trusts to sign (itself, later the workspace's verified members), or an
// error for any other account.
type SignerLookup func(accountID string) (ed25519.PublicKey, error)

// Check names one verification a refusal failed.
type Check string

// The checks. Each refusal names one, so tests and callers can tell them
// apart and people read which property the server broke.
const (
	CheckFormat        Check = "format"         // the bytes do not parse
	CheckSignature     Check = "signature"      // modified after signing
	CheckUnknownSigner Check = "unknown_signer" // signed by an account not trusted to sign
	CheckRetarget      Check = "retarget"       // moved to another workspace, project or name
	CheckVersion       Check = "version"        // not the version asked for
	CheckKeyVersion    Check = "key_version"    // sealed under another key version
	CheckPrev          Check = "prev"           // does not link to the previous version (swapped)
	CheckDecrypt       Check = "decrypt"        // ciphertext does not open
	CheckKeys          Check = "keys"           // keys do not match their published public keys
	CheckSealedKey     Check = "sealed_key"     // sealed key is not the one the record signs
	CheckRollback      Check = "rollback"       // older than what the client already has
	CheckGap           Check = "gap"            // a version is missing
	CheckReorder       Check = "reorder"        // versions out of order
	CheckContent       Check = "content"        // the decrypted body is malformed
	CheckMetadata      Check = "metadata"       // the server's listing contradicts the signed bytes
	CheckRole          Check = "role"           // signed by a member whose role may not sign it
	CheckPin           Check = "pin"            // a member's keys differ from the ones this device pinned
	CheckInviteCode    Check = "invite_code"    // not authenticated under the invite code
	CheckPolicy        Check = "policy"         // a non-admin changed a secret's bindings
)

// VerifyError is a failed verification: what was being verified (names,
// never bytes) and which check failed.
type VerifyError struct {
	Subject string
	Check   Check
	Reason  string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("%s failed the %s check: %s", e.Subject, e.Check, e.Reason)
}

// refuseHint is the next step after any refusal: nothing was written, and
// the server (or someone with access to its database) is to be questioned.
const refuseHint = "nothing was changed locally; the sync server returned data that does not verify, so check the server and its database before trusting it (`agentsecrets status`)"

// refuse is the one constructor of refusals: errcode conflict wrapping a
// VerifyError.
func refuse(subject string, check Check, reason string) error {
	ve := &VerifyError{Subject: subject, Check: check, Reason: reason}
	return &errcode.Error{Code: errcode.Conflict, Message: ve.Error(), Hint: refuseHint, Err: ve}
}

// CheckOf returns the check a refusal failed, "" if err is not one.
func CheckOf(err error) Check {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Check
	}
	return ""
}
