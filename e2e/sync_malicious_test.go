package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// evilRig is a real server behind an editing proxy, with direct SQL on its
// database: device A writes honestly, device B reads through the proxy
// from a server that lies. tokenUpstream checks which value B injects.
type evilRig struct {
	t     *testing.T
	db    *SyncDB
	srv   *SyncServer
	proxy *TrafficProxy
	acct  *SyncAccount
	a, b  *Vault
	up    *tokenUpstream
	// cur is the STRIPE_KEY value B holds, which its calls must inject.
	cur, pendingStripe []byte
	accountID          string
	wsID               string
}

func newEvilRig(t *testing.T, kind string) *evilRig {
	r := &evilRig{t: t, db: NewSyncDB(t, kind), up: newTokenUpstream(t)}
	r.srv = StartSyncServer(t, r.db.Spec)
	r.proxy = RecordTraffic(t, r.srv)
	r.acct = NewSyncAccount(t, r.srv, "file")
	r.a = r.acct.First
	r.b = r.acct.NewDevice(t, "file", "device-b")
	a := r.a
	a.Run("workspace", "create", "acme", "--switch").OK(t)
	a.Run("workspace", "allowlist", "add", r.up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", a.AdminFile).OK(t)
	r.setA("STRIPE_KEY")
	a.Run("secrets", "bind", "STRIPE_KEY", r.up.hostport(), "--passphrase-file", a.AdminFile).OK(t)
	r.setA("OTHER_KEY")
	a.Run("workspace", "publish").OK(t)
	a.Run("project", "create", "web").OK(t)
	a.Run("project", "use", "default").OK(t)
	r.b.Run("workspace", "switch", "acme").OK(t)
	r.pullB()
	r.accountID = r.db.String(t, "SELECT id FROM accounts WHERE email = ?", r.acct.Email)
	r.wsID = r.db.String(t, "SELECT id FROM workspaces WHERE name = 'acme' AND created_by = ?", r.accountID)
	return r
}

// setA gives name a new random value on A (not pushed).
func (r *evilRig) setA(name string) []byte {
	v := []byte(randomValue(r.t, "sk_"+strings.ToLower(name)+"_"))
	r.a.RunIn(v, "secrets", "set", name, "--from-stdin").OK(r.t)
	if name == "STRIPE_KEY" {
		r.pendingStripe = v // B holds the old value until it pulls
	}
	return v
}

// pullB pulls on B honestly and checks B now injects A's newest value.
func (r *evilRig) pullB() {
	r.t.Helper()
	r.b.Run("secrets", "pull").OK(r.t)
	if r.pendingStripe != nil {
		r.cur, r.pendingStripe = r.pendingStripe, nil
	}
	r.expectInjects()
}

// expectInjects proves B's stored STRIPE_KEY is r.cur: the upstream answers
// 200 only to that bearer token.
func (r *evilRig) expectInjects() {
	r.t.Helper()
	r.up.expect(r.cur)
	r.b.Run("call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(r.t)
}

// vaultBytes is B's local state: the index and the file vault.
func (r *evilRig) vaultBytes() [][]byte {
	out := [][]byte{indexBytes(r.t, r.b)}
	enc, err := os.ReadFile(filepath.Join(r.b.Home, "vault.enc"))
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	return append(out, enc)
}

// refused runs a B command that must fail `conflict`, naming one of names
// and the check, and change nothing locally: the index and vault bytes
// stay, `secrets list` works and a call still injects the old value.
func (r *evilRig) refused(check string, names []string, args ...string) {
	t := r.t
	t.Helper()
	before := r.vaultBytes()
	e := r.b.Run(args...).ErrorCode(t, "conflict", 6)
	msg := e["message"].(string)
	if !strings.Contains(msg, "failed the "+check+" check") {
		t.Errorf("%v: message does not name the %s check: %q", args, check, msg)
	}
	named := false
	for _, n := range names {
		named = named || strings.Contains(msg, n)
	}
	if !named {
		t.Errorf("%v: message names none of %v: %q", args, names, msg)
	}
	if !strings.Contains(e["hint"].(string), "nothing was changed locally") {
		t.Errorf("%v: hint: %q", args, e["hint"])
	}
	for i, b := range r.vaultBytes() {
		if !bytes.Equal(before[i], b) {
			t.Errorf("%v: the refused command changed %s", args, []string{"index.json", "vault.enc"}[i])
		}
	}
	r.b.Run("secrets", "list").OK(t)
	r.expectInjects()
}

// version is one stored secret version row, to take out and put back.
type versionRow struct {
	name     string
	version  int
	envelope []byte
	author   string
	created  int64
}

func (r *evilRig) versionRow(name string, version int) versionRow {
	r.t.Helper()
	row := versionRow{name: name, version: version}
	err := r.db.open(r.t).QueryRow(r.db.rebind("SELECT envelope, author_id, created_at FROM secret_versions WHERE workspace_id = ? AND project = 'default' AND name = ? AND version = ?"),
		r.wsID, name, version).Scan(&row.envelope, &row.author, &row.created)
	if err != nil {
		r.t.Fatal(err)
	}
	return row
}

func (r *evilRig) head(name string) int {
	r.t.Helper()
	var n int
	if err := r.db.open(r.t).QueryRow(r.db.rebind("SELECT MAX(version) FROM secret_versions WHERE workspace_id = ? AND name = ?"), r.wsID, name).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

func (r *evilRig) deleteVersion(row versionRow) {
	r.db.Exec(r.t, 1, "DELETE FROM secret_versions WHERE workspace_id = ? AND project = 'default' AND name = ? AND version = ?", r.wsID, row.name, row.version)
}

func (r *evilRig) insertVersion(row versionRow) {
	r.db.Exec(r.t, 1, "INSERT INTO secret_versions (workspace_id, project, name, version, envelope, author_id, created_at) VALUES (?, 'default', ?, ?, ?, ?, ?)",
		r.wsID, row.name, row.version, row.envelope, row.author, row.created)
}

// editPull makes the proxy rewrite B's pull responses of project default.
func (r *evilRig) editPull(f func(resp *syncapi.PullResponse)) {
	r.proxy.Edit(func(t testing.TB, method, path string, body []byte) []byte {
		if method != "POST" || !strings.HasSuffix(path, "/projects/default/pull") {
			return body
		}
		var resp syncapi.PullResponse
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Errorf("pull response: %v", err)
			return body
		}
		f(&resp)
		out, err := json.Marshal(resp)
		if err != nil {
			t.Errorf("pull response: %v", err)
			return body
		}
		return out
	})
}

// TestSyncMaliciousServer: a server that edits its responses or whose
// database was edited behind its back cannot make the real CLI accept
// anything: every case is refused `conflict`, naming the secret (or key or
// document) and the check that failed, and B's index, vault and injected
// value stay as they were. After each case the lie is undone and B pulls
// the honest data, so each refusal is proven to come from the lie alone.
// On SQLite and on PostgreSQL; one server and account per database kind.
func TestSyncMaliciousServer(t *testing.T) {
	for _, kind := range []string{dbSQLite, dbPostgres} {
		t.Run(kind, func(t *testing.T) { runSyncMaliciousServer(t, kind) })
	}
}

func runSyncMaliciousServer(t *testing.T, kind string) {
	r := newEvilRig(t, kind)
	a := r.a
	push := func(names ...string) {
		for _, n := range names {
			r.setA(n)
		}
		a.Run("secrets", "push").OK(r.t)
	}
	cases := []struct {
		name string
		// lie prepares A's honest change and the server's lie; it returns
		// how to undo the lie.
		lie    func(t *testing.T) (undo func())
		check  string
		naming []string
		// pullOnly: diff does not read the allowlist, only pull does.
		pullOnly bool
	}{
		{"swapped envelopes of two secrets", func(t *testing.T) func() {
			push("STRIPE_KEY", "OTHER_KEY")
			r.editPull(func(resp *syncapi.PullResponse) {
				var s, o *syncapi.SecretVersion
				for i := range resp.Versions {
					switch resp.Versions[i].Name {
					case "STRIPE_KEY":
						s = &resp.Versions[i]
					case "OTHER_KEY":
						o = &resp.Versions[i]
					}
				}
				if s == nil || o == nil {
					t.Fatalf("the pull carries no new version of both secrets: %+v", resp.Heads)
				}
				s.Envelope, o.Envelope = o.Envelope, s.Envelope
			})
			return func() { r.proxy.Edit(nil) }
		}, "retarget", []string{"OTHER_KEY", "STRIPE_KEY"}, false},

		{"old version replayed as the head", func(t *testing.T) func() {
			old := r.versionRow("STRIPE_KEY", r.head("STRIPE_KEY"))
			push("STRIPE_KEY")
			r.editPull(func(resp *syncapi.PullResponse) {
				for i := range resp.Versions {
					if resp.Versions[i].Name == "STRIPE_KEY" {
						resp.Versions[i].Envelope = old.envelope
					}
				}
			})
			return func() { r.proxy.Edit(nil) }
		}, "version", []string{"STRIPE_KEY"}, false},

		{"head rolled back below what B has", func(t *testing.T) func() {
			push("STRIPE_KEY")
			r.pullB()
			row := r.versionRow("STRIPE_KEY", r.head("STRIPE_KEY"))
			r.deleteVersion(row)
			return func() { r.insertVersion(row) }
		}, "rollback", []string{"STRIPE_KEY"}, false},

		{"dropped version in the middle of history", func(t *testing.T) func() {
			push("STRIPE_KEY")
			row := r.versionRow("STRIPE_KEY", r.head("STRIPE_KEY"))
			push("STRIPE_KEY")
			r.deleteVersion(row)
			return func() { r.insertVersion(row) }
		}, "gap", []string{"STRIPE_KEY"}, false},

		{"secret moved to another name", func(t *testing.T) func() {
			push("OTHER_KEY")
			r.db.Exec(t, int64(r.head("OTHER_KEY")), "UPDATE secret_versions SET name = 'MOVED_KEY' WHERE workspace_id = ? AND name = 'OTHER_KEY'", r.wsID)
			return func() {
				r.db.Exec(t, int64(r.head("MOVED_KEY")), "UPDATE secret_versions SET name = 'OTHER_KEY' WHERE workspace_id = ? AND name = 'MOVED_KEY'", r.wsID)
			}
		}, "retarget", []string{"MOVED_KEY"}, false},

		{"secret moved to another project", func(t *testing.T) func() {
			push("OTHER_KEY", "STRIPE_KEY")
			n := int64(r.head("OTHER_KEY"))
			r.db.Exec(t, n, "UPDATE secret_versions SET project = 'web' WHERE workspace_id = ? AND name = 'OTHER_KEY'", r.wsID)
			return func() {
				r.db.Exec(t, n, "UPDATE secret_versions SET project = 'default' WHERE workspace_id = ? AND name = 'OTHER_KEY'", r.wsID)
			}
		}, "rollback", []string{"OTHER_KEY"}, false},

		{"allowlist document bytes edited", func(t *testing.T) func() {
			a.Run("workspace", "allowlist", "add", "api.example.com", "--passphrase-file", a.AdminFile).OK(t)
			push("STRIPE_KEY")
			var v int
			must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT MAX(version) FROM allowlist_versions WHERE workspace_id = ?"), r.wsID).Scan(&v))
			doc := r.db.Bytes(t, "SELECT document FROM allowlist_versions WHERE workspace_id = ? AND version = ?", r.wsID, v)
			bad := bytes.Clone(doc)
			bad[len(bad)-64-16] ^= 0x01 // inside the encrypted entries, before the signature
			r.db.Exec(t, 1, "UPDATE allowlist_versions SET document = ? WHERE workspace_id = ? AND version = ?", bad, r.wsID, v)
			return func() {
				r.db.Exec(t, 1, "UPDATE allowlist_versions SET document = ? WHERE workspace_id = ? AND version = ?", doc, r.wsID, v)
			}
		}, "signature", []string{"allowlist"}, true},

		{"wrapped project key replaced by another project's", func(t *testing.T) func() {
			push("STRIPE_KEY")
			own := r.db.Bytes(t, "SELECT wrapped_key FROM projects WHERE workspace_id = ? AND name = 'default'", r.wsID)
			other := r.db.Bytes(t, "SELECT wrapped_key FROM projects WHERE workspace_id = ? AND name = 'web'", r.wsID)
			r.db.Exec(t, 1, "UPDATE projects SET wrapped_key = ? WHERE workspace_id = ? AND name = 'default'", other, r.wsID)
			return func() {
				r.db.Exec(t, 1, "UPDATE projects SET wrapped_key = ? WHERE workspace_id = ? AND name = 'default'", own, r.wsID)
			}
		}, "decrypt", []string{"project default"}, false},

		{"sealed workspace key replaced by one another account sealed to B", func(t *testing.T) func() {
			push("STRIPE_KEY")
			pub := r.db.Bytes(t, "SELECT seal_pub FROM accounts WHERE id = ?", r.accountID)
			key := make([]byte, 32)
			rand.Read(key)
			forged, err := crypto.SealAnonymous(pub, key)
			must(t, err)
			own := r.db.Bytes(t, "SELECT sealed_key FROM members WHERE workspace_id = ? AND account_id = ?", r.wsID, r.accountID)
			r.db.Exec(t, 1, "UPDATE members SET sealed_key = ? WHERE workspace_id = ? AND account_id = ?", forged, r.wsID, r.accountID)
			return func() {
				r.db.Exec(t, 1, "UPDATE members SET sealed_key = ? WHERE workspace_id = ? AND account_id = ?", own, r.wsID, r.accountID)
			}
		}, "sealed_key", []string{"membership record"}, false},

		{"membership replaced by another account's record and sealed key", func(t *testing.T) func() {
			push("STRIPE_KEY")
			evil := NewSyncAccount(t, r.srv, "file")
			evil.First.Run("workspace", "create", "evil", "--remote").OK(t)
			evilID := r.db.String(t, "SELECT id FROM accounts WHERE email = ?", evil.Email)
			var rec, sealed, ownRec, ownSealed []byte
			must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT record, sealed_key FROM members WHERE account_id = ?"), evilID).Scan(&rec, &sealed))
			must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT record, sealed_key FROM members WHERE workspace_id = ? AND account_id = ?"), r.wsID, r.accountID).Scan(&ownRec, &ownSealed))
			r.db.Exec(t, 1, "UPDATE members SET record = ?, sealed_key = ? WHERE workspace_id = ? AND account_id = ?", rec, sealed, r.wsID, r.accountID)
			return func() {
				r.db.Exec(t, 1, "UPDATE members SET record = ?, sealed_key = ? WHERE workspace_id = ? AND account_id = ?", ownRec, ownSealed, r.wsID, r.accountID)
			}
		}, "unknown_signer", []string{"membership record"}, false},
	}
	editsResponses := map[string]bool{"swapped envelopes of two secrets": true, "old version replayed as the head": true}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if kind != dbSQLite && editsResponses[c.name] {
				t.Skip("edits responses, not the database: run once, on SQLite")
			}
			r.t = t
			undo := c.lie(t)
			r.refused(c.check, c.naming, "secrets", "pull")
			if !c.pullOnly {
				r.refused(c.check, c.naming, "secrets", "diff")
			}
			undo()
			r.pullB()
			if st := secretStates(t, r.b.Run("secrets", "diff")); st["STRIPE_KEY"] != "in_sync" || st["OTHER_KEY"] != "in_sync" {
				t.Fatalf("after the lie was undone and B pulled: %v", st)
			}
		})
	}
}
