package e2e

// Teams (issue 11, stage A): invites with a code the server never sees,
// members verified from the creator through admins, pinned keys, roles.

import (
	"encoding/base32"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// teamRig is a real server (--signup closed) behind a recording and
// editing proxy, with alice's workspace acme (project payments, a bound
// STRIPE_KEY) published on it.
type teamRig struct {
	t      *testing.T
	s      *syncRun
	db     *SyncDB
	srv    *SyncServer
	proxy  *TrafficProxy
	alice  *SyncAccount
	a      *Vault
	up     *tokenUpstream
	stripe []byte
	wsID   string
}

func newTeamRig(t *testing.T, backend, dbKind string) *teamRig {
	if backend == "keychain" {
		requireKeychain(t)
	}
	r := &teamRig{t: t, s: &syncRun{t: t}, db: NewSyncDB(t, dbKind), up: newTokenUpstream(t)}
	r.srv = StartSyncServer(t, r.db.Spec, "--signup", "closed")
	r.proxy = RecordTraffic(t, r.srv)
	r.alice = NewSyncAccount(t, r.srv, backend) // the first account of an empty server
	r.a = r.alice.First
	a, s := r.a, r.s
	r.stripe = s.canary("STRIPE_KEY.team")
	r.up.expect(r.stripe)
	s.run(a, "workspace", "create", "acme", "--switch").OK(t)
	s.run(a, "workspace", "allowlist", "add", r.up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", a.AdminFile).OK(t)
	s.run(a, "project", "create", "payments", "--use").OK(t)
	s.runIn(a, r.stripe, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(a, "secrets", "bind", "STRIPE_KEY", r.up.hostport(), "--passphrase-file", a.AdminFile).OK(t)
	s.run(a, "workspace", "publish").OK(t)
	r.wsID = r.db.String(t, "SELECT id FROM workspaces WHERE name = 'acme'")
	return r
}

// invite makes an invite on dev (with the admin passphrase) and returns
// the code. Every spelling of the code becomes a canary: it is a secret
// that only this command's output may show.
func (r *teamRig) invite(dev *Vault, email, role string) string {
	r.t.Helper()
	res := dev.Run("workspace", "invite", email, "--role", role, "--passphrase-file", dev.AdminFile).OK(r.t)
	var out struct {
		Code     string `json:"code"`
		InviteID string `json:"invite_id"`
		State    string `json:"state"`
		Approved bool   `json:"approved"`
	}
	if err := json.Unmarshal(res.Stdout, &out); err != nil || !strings.HasPrefix(out.Code, "asinv-") || out.State != "open" || !out.Approved {
		r.t.Fatalf("invite: %v %s", err, res.Stdout)
	}
	b32 := strings.ReplaceAll(strings.TrimPrefix(out.Code, "asinv-"), "-", "")
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(b32))
	if err != nil || len(raw) != 20 {
		r.t.Fatalf("invite code %d bytes: %v", len(raw), err)
	}
	r.s.canaries = append(r.s.canaries, []byte(out.Code), []byte(b32), []byte(strings.ToUpper(b32)), raw)
	return out.Code
}

// account creates an account for email on a new vault.
func (r *teamRig) account(backend, email string) (*SyncAccount, *Vault) {
	r.t.Helper()
	acct, res := CreateSyncAccount(r.t, r.srv, backend, email)
	res.OK(r.t)
	return acct, acct.First
}

func (r *teamRig) accountID(email string) string {
	return r.db.String(r.t, "SELECT id FROM accounts WHERE email = ?", email)
}

func (r *teamRig) memberRows(accountID string) string {
	return r.db.String(r.t, "SELECT CAST(COUNT(*) AS TEXT) FROM members WHERE workspace_id = ? AND account_id = ?", r.wsID, accountID)
}

// members runs `workspace members` and maps email → verification.
func members(t *testing.T, res *Result) (map[string]string, []string) {
	t.Helper()
	var out struct {
		Members []struct {
			Email        string `json:"email"`
			Role         string `json:"role"`
			Verification string `json:"verification"`
		} `json:"members"`
		Completed []struct {
			Email string `json:"email"`
		} `json:"completed_invites"`
	}
	if err := json.Unmarshal(res.OK(t).Stdout, &out); err != nil {
		t.Fatalf("%v: %s", err, res.Stdout)
	}
	m := map[string]string{}
	for _, x := range out.Members {
		m[x.Email] = x.Role + "/" + x.Verification
	}
	var done []string
	for _, c := range out.Completed {
		done = append(done, c.Email)
	}
	return m, done
}

func randomEmail(t *testing.T, who string) string {
	return who + "-" + strings.ToLower(randomB64(t, 6)) + "@example.com"
}

// TestSyncTeamOnboarding is the onboarding of a teammate: alice invites
// bob before he has an account (the code shown once, the server never
// seeing it), bob signs up on a closed server because he is invited, sees
// the invite, joins with the code; alice's next workspace command
// completes it; bob switches, uses the project, pulls and calls an
// upstream with the secret; alice checks bob's fingerprint in person; bob
// (a member) pushes and alice pulls. No value and no invite code reaches
// any output, file, request, response, the database or the server log.
func TestSyncTeamOnboarding(t *testing.T) {
	for _, c := range []struct{ backend, db string }{
		{"file", dbSQLite}, {"keychain", dbSQLite}, {"keychain", dbPostgres},
	} {
		t.Run(c.backend+"/"+c.db, func(t *testing.T) { runSyncTeamOnboarding(t, c.backend, c.db) })
	}
}

func runSyncTeamOnboarding(t *testing.T, backend, dbKind string) {
	r := newTeamRig(t, backend, dbKind)
	a, s := r.a, r.s
	bobEmail := randomEmail(t, "bob")

	// Closed signup: nobody invited bob yet.
	_, res := CreateSyncAccount(t, r.srv, backend, bobEmail)
	res.ErrorCode(t, "denied", 4)

	// An agent (no terminal, no passphrase file) cannot invite.
	s.run(a, "workspace", "invite", bobEmail).ErrorCode(t, "approval_required", 5)
	code := r.invite(a, bobEmail, "member")
	if n := r.db.String(t, "SELECT CAST(COUNT(*) AS TEXT) FROM invites WHERE email = ? AND state = 'open'", bobEmail); n != "1" {
		t.Fatalf("open invites of bob: %s", n)
	}

	_, b := r.account(backend, bobEmail)
	inv := s.run(b, "workspace", "invites").OK(t)
	if !strings.Contains(field(t, inv, "mine"), `"workspace":"acme"`) || !strings.Contains(field(t, inv, "mine"), `"state":"open"`) {
		t.Fatalf("bob's invites: %s", inv.Stdout)
	}
	// A wrong code is refused and nothing is accepted.
	wrong := "asinv-" + strings.Repeat("abcd-", 7) + "abcd"
	e := s.runIn(b, []byte(wrong+"\n"), "workspace", "join", "acme", "--code", "-").ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["message"].(string), "invite_code") {
		t.Errorf("wrong code: %v", e)
	}
	if st := r.db.String(t, "SELECT state FROM invites WHERE email = ?", bobEmail); st != "open" {
		t.Fatalf("a wrong code changed the invite: %s", st)
	}
	j := s.runIn(b, []byte(code+"\n"), "workspace", "join", "acme", "--code", "-").OK(t)
	if field(t, j, "state") != `"accepted"` || !strings.Contains(field(t, j, "next"), r.alice.Email) {
		t.Fatalf("join: %s", j.Stdout)
	}
	s.run(b, "workspace", "switch", "acme").ErrorCode(t, "not_found", 3)

	// Alice's next workspace command completes the invite.
	m, done := members(t, s.run(a, "workspace", "members"))
	if len(done) != 1 || done[0] != bobEmail || m[bobEmail] != "member/pinned" || m[r.alice.Email] != "admin/self" {
		t.Fatalf("alice's members: %v, completed %v", m, done)
	}
	if got := field(t, s.run(a, "workspace", "invites").OK(t), "sent"); got != "[]" {
		t.Errorf("the completed invite is still listed: %s", got)
	}

	// Bob is in.
	if got := field(t, s.run(b, "workspace", "switch", "acme").OK(t), "fetched"); got != "true" {
		t.Errorf("switch did not fetch acme")
	}
	s.run(b, "project", "use", "payments").OK(t)
	s.run(b, "secrets", "pull").OK(t)
	s.run(b, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	m, _ = members(t, s.run(b, "workspace", "members"))
	if m[r.alice.Email] != "admin/pinned" || m[bobEmail] != "member/self" {
		t.Errorf("bob's members: %v", m)
	}

	// In person: bob reads his fingerprint, alice checks it.
	fp := strings.Trim(field(t, s.run(b, "account", "show").OK(t), "fingerprint"), `"`)
	s.run(a, "workspace", "members", "--verify", bobEmail, "--fingerprint", "0000 0000 0000 0000 0000 0000 0000 0000").ErrorCode(t, "conflict", 6)
	ver := s.run(a, "workspace", "members", "--verify", strings.ToUpper(bobEmail), "--fingerprint", strings.ReplaceAll(fp, " ", "")).OK(t)
	if m, _ := members(t, ver); m[bobEmail] != "member/verified" {
		t.Errorf("verify: %s", ver.Stdout)
	}

	// A member pushes; the admin pulls and injects the new value.
	v2 := s.canary("STRIPE_KEY.bob")
	s.runIn(b, v2, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(b, "secrets", "push").OK(t)
	s.run(a, "secrets", "pull").OK(t)
	r.up.expect(v2)
	s.run(a, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	// A member may not change the allowlist: the server says denied.
	s.run(b, "workspace", "allowlist", "add", "api.example.com", "--passphrase-file", b.AdminFile).OK(t)
	s.run(b, "secrets", "push").ErrorCode(t, "denied", 4)
	s.run(b, "workspace", "allowlist", "remove", "api.example.com").OK(t)

	s.scan(r.srv, a, b)
	s.scanServer(r.db, r.proxy)
}

// TestSyncTeamMaliciousServer: a server that lies about team data cannot
// make a client accept it. Substituted invitee keys fail the invite
// proof (nothing is sealed: no member row), a forged statement fails its
// MAC, a member row no admin signed or a listing that contradicts its
// record fails the roster on every client, another account named as the
// creator fails it too, and a version a reader pushed or an allowlist
// document a member pushed (the server's role check bypassed in the
// database) fails the role check. Each lie is undone afterwards, and the
// honest data is accepted.
func TestSyncTeamMaliciousServer(t *testing.T) {
	for _, kind := range []string{dbSQLite, dbPostgres} {
		t.Run(kind, func(t *testing.T) { runSyncTeamMaliciousServer(t, kind) })
	}
}

func runSyncTeamMaliciousServer(t *testing.T, kind string) {
	r := newTeamRig(t, "file", kind)
	a, s := r.a, r.s
	bobEmail, carolEmail := randomEmail(t, "bob"), randomEmail(t, "carol")
	code := r.invite(a, bobEmail, "member")
	_, b := r.account("file", bobEmail)
	bobID := r.accountID(bobEmail)

	// A forged statement (one byte changed) fails its MAC: bob accepts
	// nothing.
	r.proxy.Edit(func(t testing.TB, method, path string, body []byte) []byte {
		if method != "GET" || path != syncapi.PathMyInvites {
			return body
		}
		var l syncapi.InviteList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Errorf("invites: %v", err)
			return body
		}
		for i := range l.Invites {
			l.Invites[i].Statement[40] ^= 1
		}
		out, _ := json.Marshal(l)
		return out
	})
	e := s.runIn(b, []byte(code), "workspace", "join", "acme", "--code", "-").ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["message"].(string), "invite_code") {
		t.Errorf("forged statement: %v", e)
	}
	r.proxy.Edit(nil)
	s.runIn(b, []byte(code), "workspace", "join", "acme", "--code", "-").OK(t)

	// Substituted invitee keys at completion: the proof fails, nothing is
	// sealed, alice's team commands fail loudly and her pull warns.
	sealPub, _, err := crypto.NewX25519()
	if err != nil {
		t.Fatal(err)
	}
	signPub := make([]byte, 32)
	copy(signPub, sealPub)
	signPub[0] ^= 0xff
	r.proxy.Edit(func(t testing.TB, method, path string, body []byte) []byte {
		if method != "GET" || !strings.HasSuffix(path, "/invites") || path == syncapi.PathMyInvites {
			return body
		}
		var l syncapi.InviteList
		if err := json.Unmarshal(body, &l); err != nil {
			t.Errorf("invites: %v", err)
			return body
		}
		for i := range l.Invites {
			if l.Invites[i].PublicKeys != nil {
				l.Invites[i].PublicKeys = &syncapi.PublicKeys{Seal: sealPub, Sign: signPub}
			}
		}
		out, _ := json.Marshal(l)
		return out
	})
	e = s.run(a, "workspace", "members").ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["message"].(string), "invite_code") || !strings.Contains(e["message"].(string), bobEmail) {
		t.Errorf("substituted keys: %v", e)
	}
	s.run(a, "workspace", "invites").ErrorCode(t, "conflict", 6)
	pull := s.run(a, "secrets", "pull").OK(t)
	if !strings.Contains(field(t, pull, "warnings"), "invite_code") {
		t.Errorf("pull did not warn of the refused invite: %s", pull.Stdout)
	}
	if n := r.memberRows(bobID); n != "0" {
		t.Fatalf("a member row exists for bob after a refused completion: %s", n)
	}
	r.proxy.Edit(nil)
	if _, done := members(t, s.run(a, "workspace", "members")); len(done) != 1 {
		t.Fatalf("the honest completion did not happen: %v", done)
	}
	s.run(b, "workspace", "switch", "acme").OK(t)
	s.run(b, "project", "use", "payments").OK(t)
	s.run(b, "secrets", "pull").OK(t)

	// Database edits of the members table: every client refuses the
	// roster, for every workspace command, until the edit is undone.
	carolCode := r.invite(a, carolEmail, "reader")
	_, c := r.account("file", carolEmail)
	carolID := r.accountID(carolEmail)
	s.run(c, "workspace", "create", "evil", "--remote").OK(t) // a record carol signed herself
	evilID := r.db.String(t, "SELECT id FROM workspaces WHERE name = 'evil'")
	var evilRecord, evilSealed []byte = r.db.Bytes(t, "SELECT record FROM members WHERE workspace_id = ?", evilID),
		r.db.Bytes(t, "SELECT sealed_key FROM members WHERE workspace_id = ?", evilID)
	bobRole := r.db.String(t, "SELECT role FROM members WHERE workspace_id = ? AND account_id = ?", r.wsID, bobID)
	for _, tc := range []struct {
		name, check string
		do, undo    func()
	}{
		{"a row for carol that no admin signed", "unknown_signer", func() {
			r.db.Exec(t, 1, "INSERT INTO members (workspace_id, account_id, role, record, sealed_key, added_by, added_at) VALUES (?, ?, 'admin', ?, ?, ?, 0)",
				r.wsID, carolID, evilRecord, evilSealed, carolID)
		}, func() {
			r.db.Exec(t, 1, "DELETE FROM members WHERE workspace_id = ? AND account_id = ?", r.wsID, carolID)
		}},
		{"bob listed as admin", "metadata", func() {
			r.db.Exec(t, 1, "UPDATE members SET role = 'admin' WHERE workspace_id = ? AND account_id = ?", r.wsID, bobID)
		}, func() {
			r.db.Exec(t, 1, "UPDATE members SET role = ? WHERE workspace_id = ? AND account_id = ?", bobRole, r.wsID, bobID)
		}},
	} {
		tc.do()
		for _, dev := range []*Vault{a, b} {
			for _, args := range [][]string{{"workspace", "members"}, {"secrets", "pull"}} {
				e := s.run(dev, args...).ErrorCode(t, "conflict", 6)
				if !strings.Contains(e["message"].(string), "failed the "+tc.check+" check") {
					t.Errorf("%s: %v: %v", tc.name, args, e["message"])
				}
			}
		}
		tc.undo()
		s.run(a, "secrets", "pull").OK(t)
		s.run(b, "secrets", "pull").OK(t)
	}

	// A reader's pushed version: the server's role check is bypassed by
	// making carol a member in the database, while the proxy shows carol
	// her honest listing; the envelope she signs as a reader is refused by
	// every other client.
	s.runIn(c, []byte(carolCode), "workspace", "join", "acme", "--code", "-").OK(t)
	s.run(a, "workspace", "members").OK(t) // completes carol's invite
	s.run(c, "workspace", "switch", "acme").OK(t)
	s.run(c, "project", "use", "payments").OK(t)
	s.run(c, "secrets", "pull").OK(t)
	s.runIn(c, s.canary("STRIPE_KEY.reader"), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(c, "secrets", "push").ErrorCode(t, "denied", 4)
	r.db.Exec(t, 1, "UPDATE members SET role = 'member' WHERE workspace_id = ? AND account_id = ?", r.wsID, carolID)
	r.editDetail(func(d *syncapi.WorkspaceDetail) {
		for i := range d.Members {
			if d.Members[i].AccountID == carolID {
				d.Members[i].Role = "reader"
			}
		}
	})
	s.run(c, "secrets", "push").OK(t)
	r.proxy.Edit(nil)
	r.db.Exec(t, 1, "UPDATE members SET role = 'reader' WHERE workspace_id = ? AND account_id = ?", r.wsID, carolID)
	for _, dev := range []*Vault{a, b} {
		e := s.run(dev, "secrets", "pull").ErrorCode(t, "conflict", 6)
		if msg := e["message"].(string); !strings.Contains(msg, "failed the role check") || !strings.Contains(msg, "STRIPE_KEY") {
			t.Errorf("reader's version: %v", msg)
		}
	}
	r.db.Exec(t, 1, "DELETE FROM secret_versions WHERE workspace_id = ? AND author_id = ?", r.wsID, carolID)
	s.run(a, "secrets", "pull").OK(t)
	s.run(b, "secrets", "pull").OK(t)
	r.up.expect(r.stripe)
	s.run(b, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)

	// The server names someone else as the creator: every client refuses
	// the roster (the creator's record must be self-signed and anchored).
	r.editDetail(func(d *syncapi.WorkspaceDetail) { d.Workspace.CreatedBy = bobID })
	for _, dev := range []*Vault{a, b} {
		e := s.run(dev, "workspace", "members").ErrorCode(t, "conflict", 6)
		if msg := e["message"].(string); !strings.Contains(msg, "failed the unknown_signer check") {
			t.Errorf("another creator: %v", msg)
		}
	}
	r.proxy.Edit(nil)

	// A member's allowlist document, the server's admin check bypassed in
	// the database while the proxy shows bob his honest listing: the
	// admin refuses it (admins only sign the allowlist). Last: bob keeps a
	// version the server no longer holds once it is undone (as carol
	// does since her reader's version was deleted).
	r.db.Exec(t, 1, "UPDATE members SET role = 'admin' WHERE workspace_id = ? AND account_id = ?", r.wsID, bobID)
	r.editDetail(func(d *syncapi.WorkspaceDetail) {
		for i := range d.Members {
			if d.Members[i].AccountID == bobID {
				d.Members[i].Role = bobRole
			}
		}
	})
	s.run(b, "workspace", "allowlist", "add", "api.example.com", "--passphrase-file", b.AdminFile).OK(t)
	s.run(b, "secrets", "push").OK(t)
	r.proxy.Edit(nil)
	r.db.Exec(t, 1, "UPDATE members SET role = ? WHERE workspace_id = ? AND account_id = ?", bobRole, r.wsID, bobID)
	e = s.run(a, "secrets", "pull").ErrorCode(t, "conflict", 6)
	if msg := e["message"].(string); !strings.Contains(msg, "failed the role check") || !strings.Contains(msg, "allowlist") {
		t.Errorf("member's allowlist: %v", msg)
	}

	s.scan(r.srv, a, b, c)
	s.scanServer(r.db, r.proxy)
}

// editDetail makes the proxy rewrite every answer of GET the workspace.
func (r *teamRig) editDetail(f func(d *syncapi.WorkspaceDetail)) {
	r.proxy.Edit(func(t testing.TB, method, path string, body []byte) []byte {
		if method != "GET" || path != "/v1/workspaces/"+r.wsID {
			return body
		}
		var d syncapi.WorkspaceDetail
		if err := json.Unmarshal(body, &d); err != nil {
			t.Errorf("detail: %v", err)
			return body
		}
		f(&d)
		out, err := json.Marshal(d)
		if err != nil {
			t.Errorf("detail: %v", err)
			return body
		}
		return out
	})
}
