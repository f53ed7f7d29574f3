package sync

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// SecretRef names a secret: routing names the server sees.
type SecretRef struct {
	WorkspaceID string
	Project     string
	Name        string
}

func (r SecretRef) String() string {
	return fmt.Sprintf("secret %s in project %s of workspace %s", r.Name, r.Project, r.WorkspaceID)
}

// SecretHeader is the signed, clear part of a secret envelope.
type SecretHeader struct {
	SecretRef
	Version int
	// Prev is EnvelopeHash of version Version-1, "" for version 1.
	Prev       string
	AuthorID   string
	KeyVersion int
	CreatedAt  time.Time
}

// SecretContent is the encrypted part. A Deleted version (a tombstone)
// carries no value and no bindings.
type SecretContent struct {
	Value   secret.Value
	Deleted bool
	// Bindings travel without their local-only fields: the echo tripwire's
	// suspension belongs to the device that saw the echo.
	Bindings  []policy.Binding
	Source    string
	UpdatedAt time.Time
	// Fingerprint is the sync fingerprint of the value
	// (crypto.SyncFingerprint under the project key), "" for a tombstone.
	// SealSecret computes it; OpenSecret checks it.
	Fingerprint string
	// RotateUpstream: a member removed from the workspace could read this
	// value, so it should be replaced at its provider. A removal sets it
	// on every re-sealed secret; a new value (`secrets set`) clears it.
	RotateUpstream bool
}

// SecretExpect is what the caller asked the server for; OpenSecret refuses
// an envelope whose header says anything else.
type SecretExpect struct {
	SecretRef
	Version    int
	Prev       string
	KeyVersion int
}

// secretBody is the plaintext JSON of an envelope.
type secretBody struct {
	Value       []byte           `json:"value,omitempty"`
	Deleted     bool             `json:"deleted,omitempty"`
	Bindings    []policy.Binding `json:"bindings"`
	Source      string           `json:"source,omitempty"`
	UpdatedAt   time.Time        `json:"updated_at"`
	Fingerprint string           `json:"fingerprint,omitempty"`
	// RotateUpstream is signed with the rest of the body.
	RotateUpstream bool `json:"rotate_upstream,omitempty"`
}

// envelopeFields counts the fields of an envelope: domain, workspace,
// project, name, version, prev, author, key version, created_at,
// ciphertext, signature.
const envelopeFields = 11

// EnvelopeHash is the hex SHA-256 of an envelope (or allowlist document)
// exactly as stored: what the next version names as its prev.
func EnvelopeHash(envelope []byte) string {
	sum := sha256.Sum256(envelope)
	return hex.EncodeToString(sum[:])
}

// secretBodyAD binds the ciphertext to where it belongs.
func secretBodyAD(r SecretRef, version, keyVersion int) []byte {
	return crypto.Fields([]byte(domainSecretBody), []byte(r.WorkspaceID), []byte(r.Project), []byte(r.Name),
		crypto.Uint64Field(uint64(version)), crypto.Uint64Field(uint64(keyVersion)))
}

// checkChainHeader is what every sealed version must satisfy to link.
func checkChainHeader(version int, prev, author string, created time.Time) error {
	switch {
	case version < 1:
		return errors.New("version must be at least 1")
	case (version == 1) != (prev == ""):
		return errors.New("prev must be empty for version 1 and only for it")
	case prev != "" && !isHash(prev):
		return errors.New("prev must be a hex SHA-256")
	case author == "":
		return errors.New("author account id is required")
	case created.IsZero():
		return errors.New("created_at is required")
	}
	return nil
}

func isHash(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size && hex.EncodeToString(b) == s
}

// SealSecret encrypts c under the project key and signs the envelope with
// the author's identity (whose account id is h.AuthorID).
func SealSecret(author Identity, h SecretHeader, projectKey []byte, c SecretContent) ([]byte, error) {
	if err := checkChainHeader(h.Version, h.Prev, h.AuthorID, h.CreatedAt); err != nil {
		return nil, err
	}
	if h.WorkspaceID == "" || h.Project == "" || h.Name == "" || h.KeyVersion < 1 {
		return nil, errors.New("envelope needs a workspace, project, name and key version")
	}
	body := secretBody{Deleted: c.Deleted, Bindings: vault.SyncedBindings(c.Bindings), Source: c.Source, UpdatedAt: c.UpdatedAt.UTC(), RotateUpstream: c.RotateUpstream}
	if c.Deleted {
		if !c.Value.Empty() || len(c.Bindings) > 0 || c.RotateUpstream {
			return nil, errors.New("a tombstone carries no value, no bindings and no rotation mark")
		}
	} else {
		body.Value = c.Value.Reveal()
		fp, err := SyncFingerprint(projectKey, h.SecretRef, c.Value)
		if err != nil {
			return nil, err
		}
		body.Fingerprint = fp
	}
	pt, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return sealEnvelope(author, h, projectKey, pt)
}

// sealEnvelope encrypts a body plaintext and signs the envelope; tests use
// it to build validly signed envelopes with malformed bodies.
func sealEnvelope(author Identity, h SecretHeader, projectKey, pt []byte) ([]byte, error) {
	ct, err := crypto.Seal(projectKey, pt, secretBodyAD(h.SecretRef, h.Version, h.KeyVersion))
	if err != nil {
		return nil, err
	}
	signed := crypto.Fields([]byte(domainEnvelope),
		[]byte(h.WorkspaceID), []byte(h.Project), []byte(h.Name),
		crypto.Uint64Field(uint64(h.Version)), []byte(h.Prev), []byte(h.AuthorID),
		crypto.Uint64Field(uint64(h.KeyVersion)), timeField(h.CreatedAt), ct)
	sig, err := author.sign(signed)
	if err != nil {
		return nil, err
	}
	return crypto.AppendField(signed, sig), nil
}

// SyncFingerprint is the sync fingerprint of a value of r under the
// project key: what SealSecret puts in the envelope, so diff compares a
// local value with a remote version without putting values side by side.
func SyncFingerprint(projectKey []byte, r SecretRef, v secret.Value) (string, error) {
	return crypto.SyncFingerprint(projectKey, r.WorkspaceID, r.Project, r.Name, v.Reveal())
}

// OpenSecret verifies an envelope against what the caller expected and
// decrypts it. It refuses, as a conflict naming the secret and the check:
// bytes that do not parse, an author lookup does not trust, a bad
// signature, a header that names another workspace, project, name,
// version, previous version or key version, and a body that does not
// decrypt or is malformed.
func OpenSecret(envelope []byte, want SecretExpect, projectKey []byte, lookup SignerLookup) (SecretHeader, SecretContent, error) {
	subject := fmt.Sprintf("version %d of %s", want.Version, want.SecretRef)
	f, signed, sig, h, err := parseEnvelope(subject, envelope)
	if err != nil {
		return SecretHeader{}, SecretContent{}, err
	}
	if err := verifySignature(subject, h.AuthorID, signed, sig, lookup); err != nil {
		return SecretHeader{}, SecretContent{}, err
	}
	if err := checkHeader(subject, h, want); err != nil {
		return SecretHeader{}, SecretContent{}, err
	}
	pt, err := crypto.Open(projectKey, f[9], secretBodyAD(h.SecretRef, h.Version, h.KeyVersion))
	if err != nil {
		return SecretHeader{}, SecretContent{}, refuse(subject, CheckDecrypt, "the body does not open under the project key")
	}
	defer clear(pt)
	var body secretBody
	if err := json.Unmarshal(pt, &body); err != nil {
		return SecretHeader{}, SecretContent{}, refuse(subject, CheckContent, "the body is not valid JSON")
	}
	c := SecretContent{Deleted: body.Deleted, Bindings: body.Bindings, Source: body.Source, UpdatedAt: body.UpdatedAt, Fingerprint: body.Fingerprint,
		RotateUpstream: body.RotateUpstream}
	if c.Bindings == nil {
		c.Bindings = []policy.Binding{}
	}
	if body.Deleted {
		if len(body.Value) > 0 || len(body.Bindings) > 0 || body.Fingerprint != "" || body.RotateUpstream {
			clear(body.Value)
			return SecretHeader{}, SecretContent{}, refuse(subject, CheckContent, "a tombstone carries a value, bindings, a fingerprint or a rotation mark")
		}
		return h, c, nil
	}
	fp, err := crypto.SyncFingerprint(projectKey, h.WorkspaceID, h.Project, h.Name, body.Value)
	if err != nil || !crypto.FingerprintEqual(fp, body.Fingerprint) {
		clear(body.Value)
		return SecretHeader{}, SecretContent{}, refuse(subject, CheckContent, "the fingerprint does not match the value")
	}
	c.Value = secret.New(body.Value)
	return h, c, nil
}

// checkHeader compares a verified header with what the caller expected.
func checkHeader(subject string, h SecretHeader, want SecretExpect) error {
	switch {
	case h.SecretRef != want.SecretRef:
		return refuse(subject, CheckRetarget, "the envelope is version "+fmt.Sprint(h.Version)+" of "+h.SecretRef.String())
	case h.Version != want.Version:
		reason := fmt.Sprintf("the envelope is version %d", h.Version)
		if h.Version < want.Version {
			reason += ", an older version replayed"
		}
		return refuse(subject, CheckVersion, reason)
	case h.KeyVersion != want.KeyVersion:
		return refuse(subject, CheckKeyVersion, fmt.Sprintf("the envelope is sealed under key version %d, not %d", h.KeyVersion, want.KeyVersion))
	case h.Prev != want.Prev:
		return refuse(subject, CheckPrev, "it does not link to the version before it (a swapped or forked envelope)")
	}
	return nil
}

// ProjectKeys are a project's keys by key version: the current one, which
// new versions are sealed under, and the older ones a rotation kept.
type ProjectKeys struct {
	Current   int
	ByVersion map[int][]byte
}

// envelopeKeyVersion reads the key version of an envelope's header, so
// the chain walk picks the key before OpenSecret verifies everything.
func envelopeKeyVersion(subject string, envelope []byte) (int, error) {
	_, _, _, h, err := parseEnvelope(subject, envelope)
	return h.KeyVersion, err
}

// peekHeader parses an envelope's header without verifying its signature
// and checks it names what the caller expected.
func peekHeader(subject string, envelope []byte, want SecretExpect) (SecretHeader, error) {
	_, _, _, h, err := parseEnvelope(subject, envelope)
	if err != nil {
		return SecretHeader{}, err
	}
	return h, checkHeader(subject, h, want)
}

// parseEnvelope splits an envelope into its fields, signed prefix,
// signature and header, unverified.
func parseEnvelope(subject string, envelope []byte) (f [][]byte, signed, sig []byte, h SecretHeader, err error) {
	f, signed, sig, err = parseSigned(envelope, envelopeFields, domainEnvelope)
	if err != nil {
		return nil, nil, nil, h, refuse(subject, CheckFormat, err.Error())
	}
	version, errV := intField(f[4])
	keyVersion, errK := intField(f[7])
	created, errT := parseTime(f[8])
	if errV != nil || errK != nil || errT != nil {
		return nil, nil, nil, h, refuse(subject, CheckFormat, "malformed header field")
	}
	h = SecretHeader{SecretRef: SecretRef{WorkspaceID: string(f[1]), Project: string(f[2]), Name: string(f[3])},
		Version: version, Prev: string(f[5]), AuthorID: string(f[6]), KeyVersion: keyVersion, CreatedAt: created}
	return f, signed, sig, h, nil
}

// Known is the last version of a chain this device verified (zero: none).
type Known struct {
	Version int
	Hash    string
}

// OpenedSecret is one verified version. Callers Wipe Content.Value of the
// versions they do not keep.
type OpenedSecret struct {
	Header  SecretHeader
	Content SecretContent
	Hash    string
	// Vouched: a version by a former member, not opened (Content is
	// empty); a later verified version links to it (VerifyChain).
	Vouched bool
}

// VerifyChain checks the versions a pull returned for one secret, oldest
// first, against the version this device knows and the head the server
// reports: every version must be the next one, open (OpenSecret) and link to
// the one before; the head must not be below what is known (rollback) and
// the versions must reach it (gap). It returns the opened versions.
func VerifyChain(ref SecretRef, known Known, head int, versions []syncapi.SecretVersion, keys ProjectKeys, lookup SignerLookup) ([]OpenedSecret, error) {
	links := make([]link, len(versions))
	for i, v := range versions {
		links[i] = link{name: v.Name, version: v.Version, author: v.AuthorID, data: v.Envelope}
	}
	var out []OpenedSecret
	err := walkChain(ref.String(), ref.Name, known, head, links, func(l link, version int, prev string) (string, error) {
		subject := fmt.Sprintf("version %d of %s", version, ref)
		kv, err := envelopeKeyVersion(subject, l.data)
		if err != nil {
			return "", err
		}
		key := keys.ByVersion[kv]
		switch {
		case key == nil || kv > keys.Current:
			return "", refuse(subject, CheckKeyVersion, fmt.Sprintf("it is sealed under key version %d, which is not a key of the project (current %d)", kv, keys.Current))
		case len(out) > 0 && kv < out[len(out)-1].Header.KeyVersion:
			// A rotation re-seals every live head under the new key: a
			// later version under an older key is a replay or a removed
			// member's push.
			return "", refuse(subject, CheckKeyVersion, fmt.Sprintf("it is sealed under key version %d, older than the version before it", kv))
		}
		want := SecretExpect{SecretRef: ref, Version: version, Prev: prev, KeyVersion: kv}
		h, c, err := OpenSecret(l.data, want, key, lookup)
		if CheckOf(err) == CheckUnknownSigner && l.version < versions[len(versions)-1].Version {
			// History by an account no longer a member (removed since):
			// its key is unknown here, but a later version, which must
			// verify in full, names this one's hash, so its signer
			// vouches for these exact bytes. Only the header is kept.
			if h, err = peekHeader(subject, l.data, want); err != nil {
				return "", err
			}
			out = append(out, OpenedSecret{Header: h, Hash: EnvelopeHash(l.data), Vouched: true})
			return h.AuthorID, nil
		}
		if err != nil {
			return "", err
		}
		out = append(out, OpenedSecret{Header: h, Content: c, Hash: EnvelopeHash(l.data)})
		return h.AuthorID, nil
	})
	if err != nil {
		for _, o := range out {
			o.Content.Value.Wipe()
		}
		return nil, err
	}
	return out, nil
}

// link is one version of a hash chain as the server listed it.
type link struct {
	name    string
	version int
	author  string
	data    []byte
}

// walkChain is the chain check shared by secrets and allowlist documents.
// open verifies one link as the given version with the given prev and
// returns its signed author.
func walkChain(subject, name string, known Known, head int, links []link, open func(l link, version int, prev string) (string, error)) error {
	if head < known.Version {
		return refuse(subject, CheckRollback, fmt.Sprintf("the server's newest version is %d, older than version %d this device already has", head, known.Version))
	}
	next, prev := known.Version+1, known.Hash
	for i, l := range links {
		switch {
		case l.name != name:
			return refuse(subject, CheckRetarget, fmt.Sprintf("the server listed %q among its versions", l.name))
		case l.version <= known.Version:
			return refuse(subject, CheckRollback, fmt.Sprintf("the server returned version %d as new, but this device already has version %d", l.version, known.Version))
		case l.version < next:
			return refuse(subject, CheckReorder, fmt.Sprintf("version %d came after version %d", l.version, next-1))
		case l.version > next:
			for _, later := range links[i+1:] {
				if later.version == next {
					return refuse(subject, CheckReorder, fmt.Sprintf("version %d came before version %d", l.version, next))
				}
			}
			return refuse(subject, CheckGap, fmt.Sprintf("version %d is missing", next))
		}
		author, err := open(l, next, prev)
		if err != nil {
			return err
		}
		if author != l.author {
			return refuse(fmt.Sprintf("version %d of %s", next, subject), CheckMetadata, "the server lists another author than the one who signed it")
		}
		prev, next = EnvelopeHash(l.data), next+1
	}
	switch last := next - 1; {
	case last < head:
		return refuse(subject, CheckGap, fmt.Sprintf("the versions end at %d but the server's newest is %d", last, head))
	case last > head:
		return refuse(subject, CheckMetadata, fmt.Sprintf("the versions reach %d but the server's newest is %d", last, head))
	}
	return nil
}
