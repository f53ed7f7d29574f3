package e2e

// Team audit (issue 11, stage E): each device uploads its audit records of
// a remote workspace when it pulls or pushes, sealed so that only the
// workspace's admins can read them; `workspace audit` shows them.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	syncpkg "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestSyncTeamAudit: bob (a member) makes an allowed call and a blocked
// one, then pulls: his records reach the stream (a lost answer to the
// upload warns, and the next pull sends them again). Alice (the admin) sees
// both with bob's email, verified, and the filters select them; bob
// cannot read the stream (denied) and his identity opens no stored batch,
// while alice's opens every one; the stored batches hold no secret name,
// host or path in clear; a second pull uploads nothing again; alice's push
// uploads her own records. A batch the server slips in from an unknown
// account shows unverified; a changed one, or one listed under another
// uploader, is refused. A removed member's batches still verify (by his
// pin). No value anywhere: outputs, files, database,
// server log, traffic.
func TestSyncTeamAudit(t *testing.T) {
	for _, kind := range []string{dbSQLite, dbPostgres} {
		t.Run(kind, func(t *testing.T) { runSyncTeamAudit(t, kind) })
	}
}

// auditOut is `workspace audit`'s JSON.
type auditOut struct {
	Records []struct {
		Member   string `json:"member"`
		Verified bool   `json:"verified"`
		Record   struct {
			FrontEnd  string   `json:"front_end"`
			Method    string   `json:"method"`
			Host      string   `json:"host"`
			Workspace string   `json:"workspace"`
			Project   string   `json:"project"`
			Secrets   []string `json:"secrets"`
			Decision  string   `json:"decision"`
			Reason    string   `json:"reason"`
		} `json:"record"`
	} `json:"records"`
	Batches int      `json:"batches"`
	Refused []string `json:"refused"`
}

func readAudit(t *testing.T, r *Result) auditOut {
	t.Helper()
	var out auditOut
	if err := json.Unmarshal(r.OK(t).Stdout, &out); err != nil {
		t.Fatalf("%v: %s", err, r.Stdout)
	}
	return out
}

func runSyncTeamAudit(t *testing.T, kind string) {
	const backend = "keychain"
	r := newTeamRig(t, backend, kind)
	a, s := r.a, r.s
	bobEmail := randomEmail(t, "bob")
	code := r.invite(a, bobEmail, "member")
	_, b := r.account(backend, bobEmail)
	s.runIn(b, []byte(code), "workspace", "join", "acme", "--code", "-").OK(t)
	s.run(a, "workspace", "members").OK(t) // completes bob's invite
	s.run(b, "workspace", "switch", "acme").OK(t)
	s.run(b, "project", "use", "payments").OK(t)
	s.run(b, "secrets", "pull").OK(t)

	// Bob: one allowed call, one blocked (a host not on the allowlist),
	// then a pull uploads both.
	s.run(b, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	s.run(b, "call", "--url", "https://blocked.example/v1/x", "--bearer", "STRIPE_KEY").ErrorCode(t, "denied", 4)
	// The first upload's answer is lost (the server stored the batch):
	// the pull still succeeds, with a warning, and the next one sends the
	// same records again.
	r.proxy.Edit(func(t testing.TB, method, path string, body []byte) []byte {
		if method == "POST" && strings.HasSuffix(path, "/audit") {
			return []byte("not json")
		}
		return body
	})
	pull := s.run(b, "secrets", "pull").OK(t)
	if !strings.Contains(field(t, pull, "warnings"), "uploading audit records") {
		t.Fatalf("a failed upload left no warning: %s", pull.Stdout)
	}
	r.proxy.Edit(nil)
	pull = s.run(b, "secrets", "pull").OK(t)
	if strings.Contains(string(pull.Stdout), "uploading audit records") {
		t.Fatalf("bob's upload failed: %s", pull.Stdout)
	}
	bobID := r.accountID(bobEmail)
	if n := r.db.String(t, "SELECT CAST(COUNT(*) AS TEXT) FROM audit_batches WHERE workspace_id = ? AND uploader_id = ?", r.wsID, bobID); n != "2" {
		t.Fatalf("bob's batches: %s", n)
	}
	// Nothing new: the next pull uploads nothing.
	s.run(b, "secrets", "pull").OK(t)
	if n := r.db.String(t, "SELECT CAST(COUNT(*) AS TEXT) FROM audit_batches WHERE workspace_id = ?", r.wsID); n != "2" {
		t.Fatalf("a pull with nothing new uploaded: %s batches", n)
	}

	// Alice reads both records (once, though sent twice), bob's, verified.
	all := readAudit(t, s.run(a, "workspace", "audit"))
	if len(all.Records) != 2 || all.Batches != 2 || len(all.Refused) != 0 {
		t.Fatalf("alice's audit: %+v", all)
	}
	allowed, blocked := all.Records[0], all.Records[1]
	for _, e := range all.Records {
		if e.Member != bobEmail || !e.Verified || e.Record.FrontEnd != "call" || e.Record.Workspace != "acme" || e.Record.Project != "payments" ||
			len(e.Record.Secrets) != 1 || e.Record.Secrets[0] != "STRIPE_KEY" {
			t.Fatalf("record %+v", e)
		}
	}
	if allowed.Record.Decision != "allowed" || allowed.Record.Host != r.up.hostport() || allowed.Record.Method != "GET" {
		t.Fatalf("allowed record %+v", allowed)
	}
	if blocked.Record.Decision != "blocked" || blocked.Record.Host != "blocked.example:443" || blocked.Record.Reason == "" {
		t.Fatalf("blocked record %+v", blocked)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, f := range []struct {
		args []string
		want int
	}{
		{[]string{"--member", strings.ToUpper(bobEmail)}, 2},
		{[]string{"--member", r.alice.Email}, 0},
		{[]string{"--secret", "STRIPE_KEY"}, 2},
		{[]string{"--secret", "OTHER_KEY"}, 0},
		{[]string{"--since", "1h"}, 2},
		{[]string{"--since", future}, 0},
		{[]string{"--last", "1"}, 1},
	} {
		got := readAudit(t, s.run(a, append([]string{"workspace", "audit"}, f.args...)...))
		if len(got.Records) != f.want {
			t.Errorf("workspace audit %v: %d records, want %d", f.args, len(got.Records), f.want)
		}
	}
	text := s.run(a, "workspace", "audit", "--format", "text").OK(t)
	if lines := strings.Count(string(text.Stdout), bobEmail); lines != 2 || !strings.Contains(string(text.Stdout), "blocked.example") {
		t.Errorf("text mode: %s", text.Stdout)
	}
	s.run(a, "workspace", "audit", "--since", "yesterday").ErrorCode(t, "usage", 2)

	// Bob is a member, not an admin: denied, by his client and by the
	// server.
	s.run(b, "workspace", "audit").ErrorCode(t, "denied", 4)

	// The stored batches: no name, host or path in clear; they open for
	// alice and not for bob.
	batches := r.rows(t, "SELECT batch FROM audit_batches WHERE workspace_id = ?", r.wsID)
	for _, row := range batches {
		for _, clear := range []string{"STRIPE_KEY", r.up.hostport(), "blocked.example", "/v1/charges", "not_allowlisted", "payments"} {
			if bytes.Contains(row[0], []byte(clear)) {
				t.Errorf("a stored batch holds %q in clear", clear)
			}
		}
	}
	signer := func(id string) (ed25519.PublicKey, error) {
		return ed25519.PublicKey(r.db.Bytes(t, "SELECT sign_pub FROM accounts WHERE id = ?", id)), nil
	}
	identity := func(v *Vault) syncpkg.Identity {
		st, _ := openStore(t, v)
		id, err := syncpkg.LoadIdentity(context.Background(), st)
		must(t, err)
		return id
	}
	aliceID, bobIdentity, aliceIdentity := r.accountID(r.alice.Email), identity(b), identity(a)
	for _, row := range batches {
		if _, recs, err := syncpkg.OpenAuditBatch(row[0], r.wsID, aliceIdentity, aliceID, signer); err != nil || len(recs) != 2 {
			t.Errorf("alice's identity: %d records, %v", len(recs), err)
		}
		if _, _, err := syncpkg.OpenAuditBatch(row[0], r.wsID, bobIdentity, bobID, signer); syncpkg.CheckOf(err) != syncpkg.CheckDecrypt {
			t.Errorf("bob's identity opened a batch: %v", err)
		}
	}

	// Alice's own records go up with her push (nothing to push is still
	// a push).
	s.run(a, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	s.run(a, "secrets", "push").OK(t)
	if got := readAudit(t, s.run(a, "workspace", "audit", "--member", r.alice.Email)); len(got.Records) != 1 || got.Records[0].Record.Decision != "allowed" {
		t.Fatalf("alice's own records: %+v", got)
	}

	// A malicious server: a batch from an account nobody knows, sealed to
	// alice's real key, is shown unverified, never as a member's; a
	// changed copy of bob's batch, or one listed under another uploader,
	// is refused and named.
	mallory, err := syncpkg.NewIdentity()
	must(t, err)
	alicePub := syncapi.PublicKeys{Seal: r.db.Bytes(t, "SELECT seal_pub FROM accounts WHERE id = ?", aliceID),
		Sign: r.db.Bytes(t, "SELECT sign_pub FROM accounts WHERE id = ?", aliceID)}
	forged, err := syncpkg.SealAuditBatch(mallory, syncpkg.AuditHeader{WorkspaceID: r.wsID, UploaderID: "acct-mallory", Seq: 1, Count: 1, CreatedAt: time.Now()},
		map[string]syncapi.PublicKeys{aliceID: alicePub}, []audit.Record{{ID: "forged", Time: time.Now(), FrontEnd: "call", Host: "forged.example", Secrets: []string{"STRIPE_KEY"}, Styles: []string{}, Decision: "allowed"}})
	must(t, err)
	changed := bytes.Clone(batches[0][0])
	changed[len(changed)-5] ^= 1
	now := time.Now().UnixMicro()
	r.db.Exec(t, 1, "INSERT INTO audit_batches (workspace_id, id, uploader_id, created_at, batch) VALUES (?, 100, 'acct-mallory', ?, ?)", r.wsID, now, forged)
	r.db.Exec(t, 1, "INSERT INTO audit_batches (workspace_id, id, uploader_id, created_at, batch) VALUES (?, 101, ?, ?, ?)", r.wsID, bobID, now, changed)
	r.db.Exec(t, 1, "INSERT INTO audit_batches (workspace_id, id, uploader_id, created_at, batch) VALUES (?, 102, ?, ?, ?)", r.wsID, aliceID, now, batches[0][0])
	lied := readAudit(t, s.run(a, "workspace", "audit", "--last", "0"))
	var unverified []string
	for _, e := range lied.Records {
		if !e.Verified {
			unverified = append(unverified, e.Record.Host+"/"+e.Member)
		} else if e.Record.Host == "forged.example" {
			t.Fatal("the forged record is shown verified")
		}
	}
	if len(unverified) != 1 || unverified[0] != "forged.example/" || len(lied.Refused) != 2 ||
		!strings.Contains(lied.Refused[0], "batch 101") || !strings.Contains(lied.Refused[0], "signature") ||
		!strings.Contains(lied.Refused[1], "batch 102") || !strings.Contains(lied.Refused[1], "metadata") {
		t.Fatalf("forged batches: unverified %v, refused %v", unverified, lied.Refused)
	}

	// After bob's removal his batches still verify, with the keys this
	// device pinned for him, and still show his email.
	s.run(a, "workspace", "remove", bobEmail, "--passphrase-file", a.AdminFile).OK(t)
	after := readAudit(t, s.run(a, "workspace", "audit", "--member", bobEmail))
	if len(after.Records) != 2 || !after.Records[0].Verified || !after.Records[1].Verified {
		t.Fatalf("bob's records after his removal: %+v", after)
	}

	s.scan(r.srv, a, b)
	s.scanServer(r.db, r.proxy)
}
