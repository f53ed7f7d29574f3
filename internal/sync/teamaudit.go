package sync

// The team audit stream: a device uploads the audit records it wrote for
// a remote workspace, sealed so that only the workspace's admins can read
// them, when it pulls or pushes; an admin's `workspace audit` fetches,
// verifies and opens them. Records hold names only (audit.Record), never
// a value; the server stores the sealed bytes without reading them.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

const (
	// domainAuditBody is the associated data of a batch's ciphertext;
	// domainAuditBatch starts its signed header.
	domainAuditBody  = "agentsecrets v1 team audit batch"
	domainAuditBatch = "agentsecrets v1 team audit signed batch"
	// auditBatchFields: the signed header's 8 fields, the signature and
	// the ciphertext.
	auditBatchFields = 10
)

// Bounds of one upload. A record is at most a few KiB (its path is cut at
// 2 KiB), so maxAuditJSON keeps a sealed batch well under
// syncapi.MaxAuditBatch; the rest waits for the next pull or push.
const (
	MaxAuditRecords = 500
	maxAuditJSON    = 640 << 10
	// maxAuditNames bounds a record's secret names (and styles) as
	// uploaded, so that no single record can outgrow a batch and stop
	// every later upload; a longer list ends with audit.Invalid.
	maxAuditNames = 256
)

// AuditHeader is what a batch's uploader signs about it.
type AuditHeader struct {
	WorkspaceID string
	UploaderID  string
	// Seq is the number of the batch's first record in this device's
	// stream for the workspace (from 1); Count how many records it holds.
	Seq, Count int
	CreatedAt  time.Time
}

func (h AuditHeader) subject() string {
	return fmt.Sprintf("the audit batch of account %s from record %d in workspace %s", h.UploaderID, h.Seq, h.WorkspaceID)
}

// auditBodyAD binds a batch's ciphertext to its workspace, uploader and
// place in the uploader's stream.
func auditBodyAD(h AuditHeader) []byte {
	return crypto.Fields([]byte(domainAuditBody), []byte(h.WorkspaceID), []byte(h.UploaderID),
		crypto.Uint64Field(uint64(h.Seq)), crypto.Uint64Field(uint64(h.Count)))
}

// auditSigned is the signed header: the header, the SHA-256 of the
// ciphertext and the sealed batch keys (account id, sealed key, … sorted
// by account id).
func auditSigned(h AuditHeader, ctSum, keys []byte) []byte {
	return crypto.Fields([]byte(domainAuditBatch), []byte(h.WorkspaceID), []byte(h.UploaderID),
		crypto.Uint64Field(uint64(h.Seq)), crypto.Uint64Field(uint64(h.Count)), timeField(h.CreatedAt), ctSum, keys)
}

// SealAuditBatch seals records (h.Count of them) for the accounts in
// readers (account id → public keys: the workspace's admins) and signs
// the batch as uploader, whose account id is h.UploaderID:
//
//	body  = AEAD(batch key, JSON array of records, auditBodyAD)
//	batch = auditSigned ‖ Fields(signature) ‖ Fields(body)
func SealAuditBatch(uploader Identity, h AuditHeader, readers map[string]syncapi.PublicKeys, records []audit.Record) ([]byte, error) {
	if h.WorkspaceID == "" || h.UploaderID == "" || h.Seq < 1 || h.Count != len(records) || h.Count < 1 || h.Count > MaxAuditRecords || h.CreatedAt.IsZero() {
		return nil, errors.New("an audit batch needs a workspace, an uploader, a sequence from 1, created_at and 1 to 500 records")
	}
	if len(readers) == 0 {
		return nil, errors.New("an audit batch needs at least one reader")
	}
	pt, err := json.Marshal(records)
	if err != nil {
		return nil, err
	}
	batchKey, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(batchKey)
	ct, err := crypto.Seal(batchKey, pt, auditBodyAD(h))
	if err != nil {
		return nil, err
	}
	var keys []byte
	for _, id := range sortedIDs(readers) {
		sealed, err := crypto.SealAnonymous(readers[id].Seal, batchKey)
		if err != nil {
			return nil, err
		}
		keys = crypto.AppendField(crypto.AppendField(keys, []byte(id)), sealed)
	}
	sum := sha256.Sum256(ct)
	signed := auditSigned(h, sum[:], keys)
	sig, err := uploader.sign(signed)
	if err != nil {
		return nil, err
	}
	return crypto.AppendField(crypto.AppendField(signed, sig), ct), nil
}

func sortedIDs(m map[string]syncapi.PublicKeys) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// parsedAudit is a batch whose bytes parse, not yet verified.
type parsedAudit struct {
	h           AuditHeader
	signed, sig []byte
	ctSum, ct   []byte
	keys        map[string][]byte // account id → sealed batch key
}

// parseAuditBatch splits a batch strictly: exactly its fields, the keys
// an even list sorted by account id with each once, no trailing byte.
func parseAuditBatch(b []byte) (parsedAudit, error) {
	bad := func(why string) (parsedAudit, error) {
		return parsedAudit{}, refuse("an audit batch", CheckFormat, why)
	}
	f, err := parseFields(b, auditBatchFields, domainAuditBatch)
	if err != nil {
		return bad(err.Error())
	}
	seq, errS := intField(f[3])
	count, errC := intField(f[4])
	at, errT := parseTime(f[5])
	if errS != nil || errC != nil || errT != nil || seq < 1 || count < 1 || count > MaxAuditRecords || len(f[6]) != sha256.Size {
		return bad("malformed field")
	}
	p := parsedAudit{h: AuditHeader{WorkspaceID: string(f[1]), UploaderID: string(f[2]), Seq: seq, Count: count, CreatedAt: at},
		ctSum: f[6], sig: f[8], ct: f[9], keys: map[string][]byte{}}
	p.signed = auditSigned(p.h, p.ctSum, f[7])
	keys, prev := f[7], ""
	for len(keys) > 0 {
		kf, rest, ok := twoFields(keys)
		if !ok || string(kf[0]) <= prev {
			return bad("malformed sealed keys")
		}
		prev = string(kf[0])
		p.keys[prev] = kf[1]
		keys = rest
	}
	if len(p.keys) == 0 {
		return bad("no sealed keys")
	}
	return p, nil
}

// twoFields takes two length-prefixed fields off the front of b.
func twoFields(b []byte) ([2][]byte, []byte, bool) {
	var out [2][]byte
	for i := range out {
		if len(b) < 4 {
			return out, nil, false
		}
		n := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
		if n > uint64(len(b)-4) {
			return out, nil, false
		}
		out[i], b = b[4:4+n:4+n], b[4+n:]
	}
	return out, b, true
}

// verify checks the uploader's signature, which covers the ciphertext's
// hash, and that hash.
func (p parsedAudit) verify(lookup SignerLookup) error {
	if err := verifySignature(p.h.subject(), p.h.UploaderID, p.signed, p.sig, lookup); err != nil {
		return err
	}
	if sum := sha256.Sum256(p.ct); !bytes.Equal(sum[:], p.ctSum) {
		return refuse(p.h.subject(), CheckSignature, "the ciphertext is not the one the uploader signed")
	}
	return nil
}

// open opens the batch with the key sealed to accountID (id's keys) and
// decodes exactly Count records.
func (p parsedAudit) open(id Identity, accountID string) ([]audit.Record, error) {
	sealed, ok := p.keys[accountID]
	if !ok {
		return nil, refuse(p.h.subject(), CheckDecrypt, "it is not sealed to this account (only the workspace's admins at upload time can read it)")
	}
	key, err := id.open(sealed)
	defer clear(key)
	if err != nil || len(key) != crypto.KeySize {
		return nil, refuse(p.h.subject(), CheckDecrypt, "its key does not open with this account's key")
	}
	pt, err := crypto.Open(key, p.ct, auditBodyAD(p.h))
	if err != nil {
		return nil, refuse(p.h.subject(), CheckDecrypt, "the records do not open under the batch key")
	}
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.DisallowUnknownFields()
	var recs []audit.Record
	if err := dec.Decode(&recs); err != nil || dec.More() || len(recs) != p.h.Count {
		return nil, refuse(p.h.subject(), CheckContent, fmt.Sprintf("the records are malformed or not the %d signed", p.h.Count))
	}
	return recs, nil
}

// OpenAuditBatch verifies a batch (signed by an account lookup trusts,
// for workspace wsID) and opens it as accountID with id.
func OpenAuditBatch(batch []byte, wsID string, id Identity, accountID string, lookup SignerLookup) (AuditHeader, []audit.Record, error) {
	p, err := parseAuditBatch(batch)
	if err != nil {
		return AuditHeader{}, nil, err
	}
	if p.h.WorkspaceID != wsID {
		return AuditHeader{}, nil, refuse(p.h.subject(), CheckRetarget, "it was sealed for another workspace")
	}
	if err := p.verify(lookup); err != nil {
		return AuditHeader{}, nil, err
	}
	recs, err := p.open(id, accountID)
	return p.h, recs, err
}

// pendingAudit selects the records of workspace ws after the cursor, in
// log order: after the record cur names, or (the log rotated it away)
// after its time; at most MaxAuditRecords and about maxAuditJSON bytes.
func pendingAudit(recs []audit.Record, ws string, cur *vault.AuditCursor) []audit.Record {
	var mine []audit.Record
	for _, r := range recs {
		if r.Workspace == ws {
			r.Prev = "" // the local chain's link: meaningless elsewhere
			r.Secrets, r.Styles = capNames(r.Secrets), capNames(r.Styles)
			mine = append(mine, r)
		}
	}
	if cur != nil {
		if i := slices.IndexFunc(mine, func(r audit.Record) bool { return r.ID == cur.LastID }); i >= 0 {
			mine = mine[i+1:]
		} else {
			mine = slices.DeleteFunc(mine, func(r audit.Record) bool { return !r.Time.After(cur.LastTime) })
		}
	}
	size := 0
	for i, r := range mine {
		b, _ := json.Marshal(r)
		if size += len(b) + 1; i == MaxAuditRecords || size > maxAuditJSON && i > 0 {
			return mine[:i]
		}
	}
	return mine
}

func capNames(names []string) []string {
	if len(names) <= maxAuditNames {
		return names
	}
	return append(slices.Clip(names[:maxAuditNames]), audit.Invalid)
}

// uploadAudit uploads, after a pull or push of st, the audit records this
// device wrote for the workspace since its last upload, sealed to the
// verified roster's admins. It never fails the pull or push: a failure is
// a warning, and the same records go next time.
func (c *Conn) uploadAudit(ctx context.Context, st *state) {
	if err := c.uploadAuditOnce(ctx, st); err != nil {
		c.notes.Warnings = append(c.notes.Warnings, "uploading audit records (retried at the next pull or push): "+errcode.Classify(err).Message)
	}
}

func (c *Conn) uploadAuditOnce(ctx context.Context, st *state) error {
	if st.keys == nil || st.keys.roster == nil {
		return nil
	}
	ix, err := c.Store.Index()
	if err != nil {
		return err
	}
	var cur *vault.AuditCursor
	if t := ix.Teams[st.remote.ID]; t != nil && t.Audit != nil {
		cur = t.Audit
	}
	// Only the newest records are wanted: Read skips the rotated files
	// that end well before the cursor. The margin keeps records written
	// after the cursor's but stamped a little earlier (another process
	// waited for the lock); pendingAudit then starts after the cursor's id.
	var since time.Time
	if cur != nil {
		since = cur.LastTime.Add(-10 * time.Minute)
	}
	all, err := audit.Open(c.Store.Dirs.State, audit.Options{}).Read(audit.Filter{Since: since})
	if err != nil {
		return err
	}
	recs := pendingAudit(all, st.sel.Workspace, cur)
	if len(recs) == 0 {
		return nil
	}
	id, err := c.identity(ctx)
	if err != nil {
		return err
	}
	admins := map[string]syncapi.PublicKeys{}
	for aid, m := range st.keys.roster.Members {
		if m.Record.Role == RoleAdmin {
			admins[aid] = m.Record.PublicKeys
		}
	}
	next := vault.AuditCursor{Seq: 1, LastID: recs[len(recs)-1].ID, LastTime: recs[len(recs)-1].Time}
	if cur != nil {
		next.Seq = cur.Seq + 1
	}
	h := AuditHeader{WorkspaceID: st.remote.ID, UploaderID: c.Account.ID, Seq: next.Seq, Count: len(recs), CreatedAt: c.now().UTC()}
	batch, err := SealAuditBatch(id, h, admins, recs)
	if err != nil {
		return err
	}
	if _, err := c.Client.UploadAudit(ctx, st.remote.ID, syncapi.AuditUploadRequest{Batch: batch}); err != nil {
		return err
	}
	next.Seq += len(recs) - 1
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		t := ix.Team(st.remote.ID, c.Account.Server)
		// Another process uploaded meanwhile: its cursor stands (the
		// records both sent are in the stream twice, with the same ids).
		if t.Audit == nil && cur == nil || t.Audit != nil && cur != nil && *t.Audit == *cur {
			t.Audit = &next
		}
		return nil
	})
}

// UploadAudit stores a sealed audit batch in the workspace's stream.
func (c *Client) UploadAudit(ctx context.Context, ws string, req syncapi.AuditUploadRequest) (syncapi.AuditBatch, error) {
	var out syncapi.AuditBatch
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathAudit, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// AuditBatches lists the workspace's batches after id since (admins).
func (c *Client) AuditBatches(ctx context.Context, ws string, since int64) (syncapi.AuditBatches, error) {
	var out syncapi.AuditBatches
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathAudit, "ws", ws), query: map[string][]string{"since": {fmt.Sprint(since)}}, out: &out, read: true, auth: true})
	return out, err
}

// AuditFilter selects the records `workspace audit` shows. Zero fields
// select everything.
type AuditFilter struct {
	Member string // email, any case
	Secret string
	Since  time.Time
	Last   int
}

// AuditEntry is one record of the team stream, with who uploaded it.
type AuditEntry struct {
	// Member is the uploader's email (from the verified roster, or this
	// device's pin of a former member); AccountID its account.
	Member    string `json:"member"`
	AccountID string `json:"account_id"`
	// Verified is false when this device knows no keys of the uploader
	// (neither in the roster nor pinned): the records opened, but nobody
	// this device trusts vouches for them.
	Verified bool         `json:"verified"`
	Batch    int64        `json:"batch"`
	Record   audit.Record `json:"record"`
}

// AuditResult reports `workspace audit`.
type AuditResult struct {
	Workspace   string       `json:"workspace"`
	WorkspaceID string       `json:"workspace_id"`
	Records     []AuditEntry `json:"records"`
	// Batches counts the batches fetched; Refused lists those that failed
	// verification (named, never shown).
	Batches int      `json:"batches"`
	Refused []string `json:"refused,omitempty"`
	TeamNotes
}

// auditSigner is a known uploader: its signing key and email.
type auditSigner struct {
	email string
	sign  []byte
}

// auditSigners are the accounts whose batches verify: every member of the
// verified roster (any role: readers call APIs too), and the pins this
// device holds of accounts no longer in it (a removed member's batches
// uploaded before the removal).
func auditSigners(r *Roster, pins map[string]*vault.Pin) map[string]auditSigner {
	out := map[string]auditSigner{}
	for id, p := range pins {
		out[id] = auditSigner{email: p.Email, sign: p.SignPublic}
	}
	for id, m := range r.Members {
		out[id] = auditSigner{email: m.Record.Email, sign: m.Record.PublicKeys.Sign}
	}
	return out
}

// TeamAudit fetches a workspace's audit stream (an admin only), verifies
// each batch's uploader against the verified roster and this device's
// pins, opens it with this account's key and returns the records that
// pass f, oldest first. A batch that fails verification is named in
// Refused, never shown; one from an uploader this device knows no keys of
// is shown unverified.
func (c *Conn) TeamAudit(ctx context.Context, wsName string, f AuditFilter) (*AuditResult, error) {
	if f.Last < 0 {
		return nil, errcode.Errorf(errcode.Usage, "--last must be zero (all) or positive, not %d", f.Last)
	}
	remote, k, err := c.adminKeys(ctx, wsName, "read the team audit stream")
	if err != nil {
		return nil, err
	}
	k.Wipe()
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	var pins map[string]*vault.Pin
	if t := ix.Teams[remote.ID]; t != nil {
		pins = t.Pins
	}
	signers := auditSigners(k.roster, pins)
	lookup := func(accountID string) (ed25519.PublicKey, error) {
		if s, ok := signers[accountID]; ok && len(s.sign) == ed25519.PublicKeySize {
			return s.sign, nil
		}
		return nil, fmt.Errorf("account %s is unknown here", accountID)
	}
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	res := &AuditResult{Workspace: wsName, WorkspaceID: remote.ID, Records: []AuditEntry{}, TeamNotes: c.notes}
	seen := map[string]bool{} // uploader/record id: a batch sent twice shows once
	for since := int64(0); ; {
		page, err := c.Client.AuditBatches(ctx, remote.ID, since)
		if err != nil {
			return nil, err
		}
		for _, b := range page.Batches {
			if b.ID <= since {
				return nil, refuse("the audit stream of workspace "+remote.ID, CheckReorder, "the server listed batches out of order")
			}
			since = b.ID
			res.Batches++
			entries, err := c.openAuditBatch(b, remote.ID, id, lookup, signers)
			if err != nil {
				res.Refused = append(res.Refused, fmt.Sprintf("batch %d: %s", b.ID, errcode.Classify(err).Message))
				continue
			}
			for _, e := range entries {
				key := e.AccountID + "/" + e.Record.ID
				if !seen[key] && f.match(e) {
					res.Records = append(res.Records, e)
				}
				seen[key] = true
			}
		}
		if !page.More || len(page.Batches) == 0 {
			break
		}
	}
	sort.SliceStable(res.Records, func(i, j int) bool { return res.Records[i].Record.Time.Before(res.Records[j].Record.Time) })
	if f.Last > 0 && len(res.Records) > f.Last {
		res.Records = res.Records[len(res.Records)-f.Last:]
	}
	return res, nil
}

// openAuditBatch verifies and opens one listed batch. The server's
// uploader must be the signed one (metadata).
func (c *Conn) openAuditBatch(b syncapi.AuditBatch, wsID string, id Identity, lookup SignerLookup, signers map[string]auditSigner) ([]AuditEntry, error) {
	p, err := parseAuditBatch(b.Batch)
	if err != nil {
		return nil, err
	}
	switch {
	case p.h.WorkspaceID != wsID:
		return nil, refuse(p.h.subject(), CheckRetarget, "it was sealed for another workspace")
	case p.h.UploaderID != b.UploaderID:
		return nil, refuse(p.h.subject(), CheckMetadata, "the server lists another uploader than the signed one")
	}
	verified := true
	if err := p.verify(lookup); CheckOf(err) == CheckUnknownSigner {
		verified = false
	} else if err != nil {
		return nil, err
	}
	recs, err := p.open(id, c.Account.ID)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, 0, len(recs))
	for _, r := range recs {
		out = append(out, AuditEntry{Member: signers[p.h.UploaderID].email, AccountID: p.h.UploaderID, Verified: verified, Batch: b.ID, Record: r})
	}
	return out, nil
}

func (f AuditFilter) match(e AuditEntry) bool {
	switch {
	case f.Member != "" && !strings.EqualFold(strings.TrimSpace(f.Member), e.Member):
		return false
	case f.Secret != "" && !slices.Contains(e.Record.Secrets, f.Secret):
		return false
	case !f.Since.IsZero() && e.Record.Time.Before(f.Since):
		return false
	}
	return true
}
