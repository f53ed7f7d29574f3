package sync

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// AllowlistHeader is the signed, clear part of an allowlist document.
type AllowlistHeader struct {
	WorkspaceID string
	Version     int
	Prev        string // EnvelopeHash of the previous document, "" for version 1
	AuthorID    string
	CreatedAt   time.Time
}

// AllowlistExpect is what the caller asked for.
type AllowlistExpect struct {
	WorkspaceID string
	Version     int
	Prev        string
}

// allowlistFields: domain, workspace, version, prev, author, created_at,
// ciphertext, signature.
const allowlistFields = 8

type allowlistBody struct {
	Entries []policy.AllowEntry `json:"entries"`
}

func allowlistBodyAD(workspaceID string, version int) []byte {
	return crypto.Fields([]byte(domainAllowBody), []byte(workspaceID), crypto.Uint64Field(uint64(version)))
}

// SealAllowlist encrypts a workspace's allowlist under the workspace key
// and signs the document, the same construction as a secret envelope.
func SealAllowlist(author Identity, h AllowlistHeader, wsKey []byte, entries []policy.AllowEntry) ([]byte, error) {
	if err := checkChainHeader(h.Version, h.Prev, h.AuthorID, h.CreatedAt); err != nil {
		return nil, err
	}
	if h.WorkspaceID == "" {
		return nil, fmt.Errorf("allowlist document needs a workspace")
	}
	if entries == nil {
		entries = []policy.AllowEntry{}
	}
	pt, err := json.Marshal(allowlistBody{Entries: entries})
	if err != nil {
		return nil, err
	}
	ct, err := crypto.Seal(wsKey, pt, allowlistBodyAD(h.WorkspaceID, h.Version))
	if err != nil {
		return nil, err
	}
	signed := crypto.Fields([]byte(domainAllowlist), []byte(h.WorkspaceID), crypto.Uint64Field(uint64(h.Version)),
		[]byte(h.Prev), []byte(h.AuthorID), timeField(h.CreatedAt), ct)
	sig, err := author.sign(signed)
	if err != nil {
		return nil, err
	}
	return crypto.AppendField(signed, sig), nil
}

// OpenAllowlist verifies a document against what the caller expected and
// decrypts it, with the same refusals as OpenSecret.
func OpenAllowlist(doc []byte, want AllowlistExpect, wsKey []byte, lookup SignerLookup) (AllowlistHeader, []policy.AllowEntry, error) {
	h, sealed, err := allowlistHeader(doc, want, lookup)
	if err != nil {
		return AllowlistHeader{}, nil, err
	}
	subject := fmt.Sprintf("version %d of the allowlist of workspace %s", want.Version, want.WorkspaceID)
	pt, err := crypto.Open(wsKey, sealed, allowlistBodyAD(h.WorkspaceID, h.Version))
	if err != nil {
		return AllowlistHeader{}, nil, refuse(subject, CheckDecrypt, "the body does not open under the workspace key")
	}
	var body allowlistBody
	if err := json.Unmarshal(pt, &body); err != nil || body.Entries == nil {
		return AllowlistHeader{}, nil, refuse(subject, CheckContent, "the body is not an allowlist")
	}
	return h, body.Entries, nil
}

// allowlistHeader parses a document and checks its header against want:
// the signature too when lookup is given (nil: a version vouched for by a
// later one's hash chain, whose author may have left since). It returns
// the header and the encrypted body.
func allowlistHeader(doc []byte, want AllowlistExpect, lookup SignerLookup) (AllowlistHeader, []byte, error) {
	subject := fmt.Sprintf("version %d of the allowlist of workspace %s", want.Version, want.WorkspaceID)
	f, signed, sig, err := parseSigned(doc, allowlistFields, domainAllowlist)
	if err != nil {
		return AllowlistHeader{}, nil, refuse(subject, CheckFormat, err.Error())
	}
	version, errV := intField(f[2])
	created, errT := parseTime(f[5])
	if errV != nil || errT != nil {
		return AllowlistHeader{}, nil, refuse(subject, CheckFormat, "malformed header field")
	}
	h := AllowlistHeader{WorkspaceID: string(f[1]), Version: version, Prev: string(f[3]), AuthorID: string(f[4]), CreatedAt: created}
	if lookup != nil {
		if err := verifySignature(subject, h.AuthorID, signed, sig, lookup); err != nil {
			return AllowlistHeader{}, nil, err
		}
	}
	switch {
	case h.WorkspaceID != want.WorkspaceID:
		return AllowlistHeader{}, nil, refuse(subject, CheckRetarget, "the document is the allowlist of workspace "+h.WorkspaceID)
	case h.Version != want.Version:
		return AllowlistHeader{}, nil, refuse(subject, CheckVersion, fmt.Sprintf("the document is version %d", h.Version))
	case h.Prev != want.Prev:
		return AllowlistHeader{}, nil, refuse(subject, CheckPrev, "it does not link to the version before it (a swapped or forked document)")
	}
	return h, f[6], nil
}

// OpenedAllowlist is one verified allowlist version.
type OpenedAllowlist struct {
	Header  AllowlistHeader
	Entries []policy.AllowEntry
	Hash    string
}

// VerifyAllowlistChain checks the allowlist versions a fetch returned,
// oldest first, against the version this device knows and the head the
// server reports (syncapi.WorkspaceDetail.AllowlistVersion), with the
// rules of VerifyChain. Only the newest version is opened (signed by a
// current admin, decrypted under the current workspace key): it names the
// hash of the one before, which names the one before it, so its signature
// vouches for every older version's bytes. Older versions are checked for
// their place in the chain only, and their entries are not returned: they
// may be sealed under a workspace key since rotated, by an admin since
// removed.
func VerifyAllowlistChain(workspaceID string, known Known, head int, versions []syncapi.AllowlistVersion, wsKey []byte, lookup SignerLookup) ([]OpenedAllowlist, error) {
	const name = "allowlist"
	links := make([]link, len(versions))
	for i, v := range versions {
		links[i] = link{name: name, version: v.Version, author: v.AuthorID, data: v.Document}
	}
	var out []OpenedAllowlist
	err := walkChain("the allowlist of workspace "+workspaceID, name, known, head, links, func(l link, version int, prev string) (string, error) {
		want := AllowlistExpect{WorkspaceID: workspaceID, Version: version, Prev: prev}
		if version != head {
			h, _, err := allowlistHeader(l.data, want, nil)
			if err != nil {
				return "", err
			}
			out = append(out, OpenedAllowlist{Header: h, Hash: EnvelopeHash(l.data)})
			return h.AuthorID, nil
		}
		h, entries, err := OpenAllowlist(l.data, want, wsKey, lookup)
		if err != nil {
			return "", err
		}
		out = append(out, OpenedAllowlist{Header: h, Entries: entries, Hash: EnvelopeHash(l.data)})
		return h.AuthorID, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
