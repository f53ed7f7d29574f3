package sync

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// Roles of a workspace member.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
	RoleReader = "reader"
)

// MembershipRecord says that an account belongs to a workspace with a role
// and these public keys, and which sealed copy of the workspace key is
// theirs. The admin who added the member signs it (the creator signs their
// own): anyone can seal a key to a public key, only the signature says who
// did.
type MembershipRecord struct {
	WorkspaceID string
	AccountID   string
	Email       string
	Role        string
	PublicKeys  syncapi.PublicKeys
	KeyVersion  int
	// SealedKeySHA256 is the hex SHA-256 of the sealed workspace key the
	// record vouches for. SignMembership fills it in.
	SealedKeySHA256 string
	AddedBy         string
	AddedAt         time.Time
}

// membershipFields is the number of fields of an encoded record, the
// signature included.
const membershipFields = 12

// SignMembership encodes rec for sealedKey and signs it with signer, whose
// account id must be rec.AddedBy.
func SignMembership(signer Identity, rec MembershipRecord, sealedKey []byte) ([]byte, error) {
	if rec.WorkspaceID == "" || rec.AccountID == "" || rec.AddedBy == "" || rec.KeyVersion < 1 || rec.AddedAt.IsZero() {
		return nil, errors.New("membership record needs a workspace, an account, added_by, a key version and added_at")
	}
	if len(rec.PublicKeys.Seal) != crypto.X25519KeySize || len(rec.PublicKeys.Sign) != ed25519.PublicKeySize {
		return nil, errors.New("membership record needs the member's two public keys")
	}
	if len(sealedKey) == 0 {
		return nil, errors.New("membership record needs the sealed workspace key")
	}
	sum := sha256.Sum256(sealedKey)
	signed := crypto.Fields(
		[]byte(domainMembership),
		[]byte(rec.WorkspaceID), []byte(rec.AccountID), []byte(rec.Email), []byte(rec.Role),
		rec.PublicKeys.Seal, rec.PublicKeys.Sign,
		crypto.Uint64Field(uint64(rec.KeyVersion)),
		sum[:],
		[]byte(rec.AddedBy),
		timeField(rec.AddedAt),
	)
	sig, err := signer.sign(signed)
	if err != nil {
		return nil, err
	}
	return crypto.AppendField(signed, sig), nil
}

// VerifyMembership parses a record, checks that an account lookup trusts
// signed it and that sealedKey is the copy it vouches for. The caller
// still checks the workspace, account and key version are the ones it
// asked for (OpenMembership does all of it).
func VerifyMembership(record, sealedKey []byte, lookup SignerLookup) (MembershipRecord, error) {
	p, err := parseMembership(record)
	if err != nil {
		return MembershipRecord{}, err
	}
	return p.verify(sealedKey, lookup)
}

// parsedMembership is a record whose bytes parse, not yet verified.
type parsedMembership struct {
	rec              MembershipRecord
	signed, sig, sum []byte
}

func parseMembership(record []byte) (parsedMembership, error) {
	f, signed, sig, err := parseSigned(record, membershipFields, domainMembership)
	if err != nil {
		return parsedMembership{}, refuse("a membership record", CheckFormat, err.Error())
	}
	kv, errK := intField(f[7])
	at, errT := parseTime(f[10])
	if errK != nil || errT != nil || len(f[8]) != sha256.Size {
		return parsedMembership{}, refuse("a membership record", CheckFormat, "malformed field")
	}
	rec := MembershipRecord{
		WorkspaceID: string(f[1]), AccountID: string(f[2]), Email: string(f[3]), Role: string(f[4]),
		PublicKeys:      syncapi.PublicKeys{Seal: f[5], Sign: f[6]},
		KeyVersion:      kv,
		SealedKeySHA256: hex.EncodeToString(f[8]),
		AddedBy:         string(f[9]),
		AddedAt:         at,
	}
	return parsedMembership{rec: rec, signed: signed, sig: sig, sum: f[8]}, nil
}

func (p parsedMembership) subject() string {
	return fmt.Sprintf("the membership record of account %s in workspace %s", p.rec.AccountID, p.rec.WorkspaceID)
}

// verify checks the signature (the signer looked up) and the sealed key.
func (p parsedMembership) verify(sealedKey []byte, lookup SignerLookup) (MembershipRecord, error) {
	if err := verifySignature(p.subject(), p.rec.AddedBy, p.signed, p.sig, lookup); err != nil {
		return MembershipRecord{}, err
	}
	if sum := sha256.Sum256(sealedKey); !bytes.Equal(sum[:], p.sum) {
		return MembershipRecord{}, refuse(p.subject(), CheckSealedKey, "the sealed workspace key is not the one the record's signer sealed")
	}
	return p.rec, nil
}

// OpenMembership verifies a member entry of a workspace for id (account
// accountID) and opens its workspace key: the record must be signed by a
// trusted account, name this workspace, this account and id's public keys,
// and vouch for this exact sealed key.
func OpenMembership(id Identity, accountID, workspaceID string, m syncapi.Member, lookup SignerLookup) (MembershipRecord, []byte, error) {
	rec, err := VerifyMembership(m.Record, m.SealedKey, lookup)
	if err != nil {
		return MembershipRecord{}, nil, err
	}
	subj := fmt.Sprintf("the membership record of account %s in workspace %s", accountID, workspaceID)
	pub := id.Public()
	switch {
	case rec.WorkspaceID != workspaceID || rec.AccountID != accountID:
		return MembershipRecord{}, nil, refuse(subj, CheckRetarget, fmt.Sprintf("it names account %s in workspace %s", rec.AccountID, rec.WorkspaceID))
	case !bytes.Equal(rec.PublicKeys.Seal, pub.Seal) || !bytes.Equal(rec.PublicKeys.Sign, pub.Sign):
		return MembershipRecord{}, nil, refuse(subj, CheckKeys, "it names other public keys than this account's")
	case m.AccountID != rec.AccountID || m.Role != rec.Role || m.AddedBy != rec.AddedBy:
		return MembershipRecord{}, nil, refuse(subj, CheckMetadata, "the server's listing differs from the signed record")
	}
	wsKey, err := OpenWorkspaceKey(id, m.SealedKey)
	if err != nil {
		return MembershipRecord{}, nil, err
	}
	return rec, wsKey, nil
}

// SealWorkspaceKey seals a workspace key to a member's X25519 key.
func SealWorkspaceKey(memberPub syncapi.PublicKeys, wsKey []byte) ([]byte, error) {
	if len(wsKey) != crypto.KeySize {
		return nil, fmt.Errorf("workspace key is %d bytes, want %d", len(wsKey), crypto.KeySize)
	}
	return crypto.SealAnonymous(memberPub.Seal, wsKey)
}

// OpenWorkspaceKey opens a workspace key sealed to id.
func OpenWorkspaceKey(id Identity, sealed []byte) ([]byte, error) {
	k, err := id.open(sealed)
	if err != nil || len(k) != crypto.KeySize {
		clear(k)
		return nil, refuse("the sealed workspace key", CheckDecrypt, "it does not open with this account's key")
	}
	return k, nil
}

// projectKeyAD binds a wrapped project key to its workspace, project name
// and key version, so the server cannot hand one project's key out as
// another's.
func projectKeyAD(workspaceID, project string, keyVersion int) []byte {
	return crypto.Fields([]byte(domainProjectKey), []byte(workspaceID), []byte(project), crypto.Uint64Field(uint64(keyVersion)))
}

// WrapProjectKey wraps a project key under the workspace key (AES-256-GCM).
func WrapProjectKey(wsKey []byte, workspaceID, project string, keyVersion int, projectKey []byte) ([]byte, error) {
	if len(projectKey) != crypto.KeySize || keyVersion < 1 {
		return nil, errors.New("project key needs 32 bytes and a key version of at least 1")
	}
	return crypto.Seal(wsKey, projectKey, projectKeyAD(workspaceID, project, keyVersion))
}

// UnwrapProjectKey reverses WrapProjectKey for the named project.
func UnwrapProjectKey(wsKey []byte, workspaceID, project string, keyVersion int, wrapped []byte) ([]byte, error) {
	k, err := crypto.Open(wsKey, wrapped, projectKeyAD(workspaceID, project, keyVersion))
	if err != nil || len(k) != crypto.KeySize {
		clear(k)
		return nil, refuse(fmt.Sprintf("the key of project %s (key version %d) in workspace %s", project, keyVersion, workspaceID),
			CheckDecrypt, "it does not open under the workspace key for this project")
	}
	return k, nil
}

// verifySignature looks the signer up and checks sig over signed.
func verifySignature(subject, signer string, signed, sig []byte, lookup SignerLookup) error {
	var pub []byte
	if lookup != nil {
		k, err := lookup(signer)
		var re *roleError
		if errors.As(err, &re) {
			return refuse(subject, CheckRole, re.Error())
		}
		if err == nil {
			pub = k
		}
	}
	if len(pub) == 0 {
		return refuse(subject, CheckUnknownSigner, fmt.Sprintf("account %q is not trusted to sign it", signer))
	}
	if !crypto.Verify(pub, signed, sig) {
		return refuse(subject, CheckSignature, fmt.Sprintf("the signature of account %q does not verify", signer))
	}
	return nil
}

// parseSigned splits a signed encoding (crypto.Fields of n-1 fields, the
// first the domain, then the signature field) into its fields, the signed
// prefix and the signature. Anything else, trailing bytes included, is an
// error, so each accepted byte string has one meaning.
func parseSigned(b []byte, n int, domain string) (fields [][]byte, signed, sig []byte, err error) {
	rest := b
	fields = make([][]byte, 0, n)
	for len(fields) < n {
		if len(rest) < 4 {
			return nil, nil, nil, errors.New("truncated")
		}
		l := binary.BigEndian.Uint32(rest)
		if uint64(l) > uint64(len(rest)-4) {
			return nil, nil, nil, errors.New("truncated")
		}
		if len(fields) == n-1 {
			signed = b[:len(b)-len(rest)]
		}
		fields = append(fields, rest[4:4+l:4+l])
		rest = rest[4+l:]
	}
	switch {
	case len(rest) != 0:
		return nil, nil, nil, errors.New("trailing bytes")
	case string(fields[0]) != domain:
		return nil, nil, nil, errors.New("not a " + domain)
	}
	return fields, signed, fields[n-1], nil
}

// intField decodes an 8-byte version number. Versions are positive and
// fit an int32, far beyond any history.
func intField(b []byte) (int, error) {
	if len(b) != 8 {
		return 0, errors.New("bad integer")
	}
	n := binary.BigEndian.Uint64(b)
	if n > math.MaxInt32 {
		return 0, errors.New("integer out of range")
	}
	return int(n), nil
}

// timeField encodes t as Unix nanoseconds (8 bytes, big-endian).
func timeField(t time.Time) []byte { return crypto.Uint64Field(uint64(t.UnixNano())) }

func parseTime(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, errors.New("bad time")
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(), nil
}
