package e2e

// Signed policy in a team (issue 11, stage D): in a remote workspace,
// bindings (and the allowlist) change only by an admin's signature. A
// member's client refuses to bind and to push changed bindings; every
// client refuses a version whose bindings a non-admin changed, and a
// server that rolls back the policy.

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	syncpkg "github.com/agentsecrets/agentsecrets/internal/sync"
)

// TestSyncTeamPolicy: alice (admin) and bob (member) share acme with a
// bound STRIPE_KEY. Bob's bind is refused before any passphrase; a version
// with widened bindings that bob's real key signs, stored on the server
// behind his client's back, is refused by alice's diff and pull with the
// policy check, her index untouched and her calls still injecting the
// old value; alice's own change of the bindings reaches bob and applies;
// bob's push of a local unbind is denied; bob's new value (bindings
// kept) reaches alice, even while she has an unpushed bind of her own (a
// conflict to settle, not a policy refusal); a server rolling back
// the secret to the version with the older bindings, or the allowlist
// document bob has seen, is refused by bob. No value anywhere.
func TestSyncTeamPolicy(t *testing.T) {
	for _, kind := range []string{dbSQLite, dbPostgres} {
		t.Run(kind, func(t *testing.T) { runSyncTeamPolicy(t, kind) })
	}
}

func runSyncTeamPolicy(t *testing.T, kind string) {
	r := newTeamRig(t, "keychain", kind)
	a, s := r.a, r.s
	bobEmail := randomEmail(t, "bob")
	code := r.invite(a, bobEmail, "member")
	_, b := r.account("keychain", bobEmail)
	s.runIn(b, []byte(code), "workspace", "join", "acme", "--code", "-").OK(t)
	s.run(a, "workspace", "members").OK(t) // completes bob's invite
	s.run(b, "workspace", "switch", "acme").OK(t)
	s.run(b, "project", "use", "payments").OK(t)
	s.run(b, "secrets", "pull").OK(t)
	s.run(b, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	bobID := r.accountID(bobEmail)

	// Bob's bind is refused whether or not he could approve it: without a
	// passphrase file (an agent) it is denied, not approval_required.
	for _, args := range [][]string{
		{"secrets", "bind", "STRIPE_KEY", "evil.example"},
		{"secrets", "bind", "STRIPE_KEY", "evil.example", "--passphrase-file", b.AdminFile},
	} {
		before := indexBytes(t, b)
		e := s.run(b, args...).ErrorCode(t, "denied", 4)
		if msg := e["message"].(string); !strings.Contains(msg, "only a workspace admin can change bindings") || !strings.Contains(msg, "STRIPE_KEY") {
			t.Errorf("bob's bind: %v", e)
		}
		if !strings.Contains(e["hint"].(string), "secrets unbind STRIPE_KEY") {
			t.Errorf("bob's bind hint: %v", e["hint"])
		}
		if !bytes.Equal(before, indexBytes(t, b)) {
			t.Errorf("a refused bind changed bob's index")
		}
	}

	// A version with widened bindings, signed by bob's real key and
	// stored straight in the database (a client that skips its checks).
	head := r.headVersion(t, "payments", "STRIPE_KEY")
	evil := s.canary("STRIPE_KEY.widened")
	env := r.sealAs(t, b, bobID, "payments", "STRIPE_KEY", head, syncpkg.SecretContent{Value: secret.New(evil), UpdatedAt: time.Now().UTC(),
		Bindings: []policy.Binding{
			{Host: "127.0.0.1", Port: r.upPort(t), Methods: []string{}, Surfaces: []string{"header"}, CreatedAt: time.Now().UTC()},
			{Host: "evil.example", Methods: []string{}, Surfaces: []string{"header"}, CreatedAt: time.Now().UTC()},
		}})
	r.db.Exec(t, 1, "INSERT INTO secret_versions (workspace_id, project, name, version, envelope, author_id, created_at) VALUES (?, 'payments', 'STRIPE_KEY', ?, ?, ?, ?)",
		r.wsID, head+1, env, bobID, time.Now().Unix())
	before := indexBytes(t, a)
	for _, args := range [][]string{{"secrets", "diff"}, {"secrets", "pull"}} {
		e := s.run(a, args...).ErrorCode(t, "conflict", 6)
		msg := e["message"].(string)
		if !strings.Contains(msg, "failed the policy check") || !strings.Contains(msg, "STRIPE_KEY") || !strings.Contains(msg, bobID) {
			t.Errorf("%v: %q", args, msg)
		}
		if !strings.Contains(e["hint"].(string), "nothing was changed locally") {
			t.Errorf("%v: hint %q", args, e["hint"])
		}
		if !bytes.Equal(before, indexBytes(t, a)) {
			t.Errorf("%v: the refused command changed alice's index", args)
		}
	}
	r.up.expect(r.stripe)
	s.run(a, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	r.db.Exec(t, 1, "DELETE FROM secret_versions WHERE workspace_id = ? AND author_id = ?", r.wsID, bobID)
	s.run(a, "secrets", "pull").OK(t)

	// Alice moves the binding to /v2 (unbind, bind: her admin approval)
	// and pushes; bob's pull applies it: /v1 is refused, /v2 injects.
	s.run(a, "secrets", "unbind", "STRIPE_KEY", r.up.hostport()).OK(t)
	s.run(a, "secrets", "bind", "STRIPE_KEY", r.up.hostport()+"/v2", "--passphrase-file", a.AdminFile).OK(t)
	s.run(a, "secrets", "push").OK(t)
	s.run(b, "secrets", "pull").OK(t)
	if got := bindingTargets(t, s.run(b, "secrets", "list")); got != r.up.hostport()+"/v2" {
		t.Fatalf("bob's bindings after alice's push: %q", got)
	}
	s.run(b, "call", "--url", r.up.URL+"/v2/charges", "--bearer", "STRIPE_KEY").OK(t)
	if res := s.run(b, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY"); res.Code == 0 {
		t.Fatalf("bob's call outside the new binding succeeded: %s", res.Stdout)
	}

	// Bob may narrow locally (unbind), but his client refuses to push the
	// change: nothing reaches the server. The test then puts his index
	// back as it was (going back is a human's `secrets pull --force`).
	head = r.headVersion(t, "payments", "STRIPE_KEY")
	kept := indexBytes(t, b)
	s.run(b, "secrets", "unbind", "STRIPE_KEY", r.up.hostport()+"/v2").OK(t)
	e := s.run(b, "secrets", "push").ErrorCode(t, "denied", 4)
	if msg := e["message"].(string); !strings.Contains(msg, "only a workspace admin can change bindings") || !strings.Contains(msg, "STRIPE_KEY") ||
		!strings.Contains(e["hint"].(string), "secrets pull --force STRIPE_KEY") {
		t.Errorf("bob's push of changed bindings: %v", e)
	}
	if got := r.headVersion(t, "payments", "STRIPE_KEY"); got != head {
		t.Fatalf("bob's refused push stored version %d", got)
	}
	must(t, os.WriteFile(filepath.Join(b.Home, "index.json"), kept, 0o600))

	// The server rolls STRIPE_KEY back to the version with the older
	// (wider) binding: bob refuses it, his index untouched.
	row := r.db.Bytes(t, "SELECT envelope FROM secret_versions WHERE workspace_id = ? AND project = 'payments' AND name = 'STRIPE_KEY' AND version = ?", r.wsID, head)
	aliceID := r.accountID(r.alice.Email)
	r.db.Exec(t, 1, "DELETE FROM secret_versions WHERE workspace_id = ? AND project = 'payments' AND name = 'STRIPE_KEY' AND version = ?", r.wsID, head)
	r.refusedB(b, "rollback", "STRIPE_KEY")
	r.db.Exec(t, 1, "INSERT INTO secret_versions (workspace_id, project, name, version, envelope, author_id, created_at) VALUES (?, 'payments', 'STRIPE_KEY', ?, ?, ?, ?)",
		r.wsID, head, row, aliceID, time.Now().Unix())

	// Bob (a member) sets a new value, bindings kept: it pushes, and
	// alice accepts it. She had bound /v3 here meanwhile (not pushed), so
	// her device compares bob's bindings with the digest it kept of the
	// synced ones: a conflict to settle, not a policy refusal; once she
	// unbinds /v3 again, the pull applies.
	s.run(a, "secrets", "bind", "STRIPE_KEY", r.up.hostport()+"/v3", "--passphrase-file", a.AdminFile).OK(t)
	v2 := s.canary("STRIPE_KEY.bob")
	s.runIn(b, v2, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(b, "secrets", "push").OK(t)
	if got := secretStates(t, s.run(a, "secrets", "diff").OK(t)); got["STRIPE_KEY"] != "conflict" {
		t.Fatalf("alice's diff with a local bind and bob's new value: %v", got)
	}
	s.run(a, "secrets", "unbind", "STRIPE_KEY", r.up.hostport()+"/v3").OK(t)
	s.run(a, "secrets", "pull").OK(t)
	r.up.expect(v2)
	s.run(a, "call", "--url", r.up.URL+"/v2/charges", "--bearer", "STRIPE_KEY").OK(t)

	// The server rolls back the allowlist document bob has seen.
	s.run(a, "workspace", "allowlist", "add", "api.example.com", "--passphrase-file", a.AdminFile).OK(t)
	s.run(a, "secrets", "push").OK(t)
	s.run(b, "secrets", "pull").OK(t)
	var av int
	must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT MAX(version) FROM allowlist_versions WHERE workspace_id = ?"), r.wsID).Scan(&av))
	doc := r.db.Bytes(t, "SELECT document FROM allowlist_versions WHERE workspace_id = ? AND version = ?", r.wsID, av)
	r.db.Exec(t, 1, "DELETE FROM allowlist_versions WHERE workspace_id = ? AND version = ?", r.wsID, av)
	r.refusedB(b, "rollback", "allowlist")
	r.db.Exec(t, 1, "INSERT INTO allowlist_versions (workspace_id, version, document, author_id, created_at) VALUES (?, ?, ?, ?, ?)",
		r.wsID, av, doc, aliceID, time.Now().Unix())
	s.run(b, "secrets", "pull").OK(t)

	s.scan(r.srv, a, b)
	s.scanServer(r.db, r.proxy)
}

// refusedB runs bob's pull, which must fail the check naming what, and
// change nothing in his index.
func (r *teamRig) refusedB(b *Vault, check, what string) {
	t := r.t
	t.Helper()
	before := indexBytes(t, b)
	e := r.s.run(b, "secrets", "pull").ErrorCode(t, "conflict", 6)
	if msg := e["message"].(string); !strings.Contains(msg, "failed the "+check+" check") && !strings.Contains(msg, "("+check+")") || !strings.Contains(msg, what) {
		t.Errorf("bob's pull, %s of %s: %q", check, what, msg)
	}
	if !bytes.Equal(before, indexBytes(t, b)) {
		t.Errorf("the refused pull changed bob's index")
	}
}

// headVersion is the newest stored version of a secret.
func (r *teamRig) headVersion(t *testing.T, project, name string) int {
	t.Helper()
	var v int
	must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT MAX(version) FROM secret_versions WHERE workspace_id = ? AND project = ? AND name = ?"),
		r.wsID, project, name).Scan(&v))
	return v
}

// sealAs seals version head+1 of a secret with the identity dev holds (as
// accountID), under the project key its membership opens: what a client
// that skips its own checks would push.
func (r *teamRig) sealAs(t *testing.T, dev *Vault, accountID, project, name string, head int, c syncpkg.SecretContent) []byte {
	t.Helper()
	st, _ := openStore(t, dev)
	id, err := syncpkg.LoadIdentity(context.Background(), st)
	must(t, err)
	wsKey, err := syncpkg.OpenWorkspaceKey(id, r.db.Bytes(t, "SELECT sealed_key FROM members WHERE workspace_id = ? AND account_id = ?", r.wsID, accountID))
	must(t, err)
	var kv int
	must(t, r.db.open(t).QueryRow(r.db.rebind("SELECT key_version FROM projects WHERE workspace_id = ? AND name = ?"), r.wsID, project).Scan(&kv))
	pk, err := syncpkg.UnwrapProjectKey(wsKey, r.wsID, project, kv,
		r.db.Bytes(t, "SELECT wrapped_key FROM projects WHERE workspace_id = ? AND name = ?", r.wsID, project))
	must(t, err)
	prev := r.db.Bytes(t, "SELECT envelope FROM secret_versions WHERE workspace_id = ? AND project = ? AND name = ? AND version = ?", r.wsID, project, name, head)
	env, err := syncpkg.SealSecret(id, syncpkg.SecretHeader{SecretRef: syncpkg.SecretRef{WorkspaceID: r.wsID, Project: project, Name: name},
		Version: head + 1, Prev: syncpkg.EnvelopeHash(prev), AuthorID: accountID, KeyVersion: kv, CreatedAt: time.Now().UTC()}, pk, c)
	must(t, err)
	return env
}

func (r *teamRig) upPort(t *testing.T) int {
	t.Helper()
	tg, err := policy.ParseTarget(r.up.hostport())
	must(t, err)
	return tg.Port
}

// bindingTargets is the targets STRIPE_KEY is bound to in a `secrets list`.
func bindingTargets(t *testing.T, res *Result) string {
	t.Helper()
	var out struct {
		Secrets []struct {
			Name     string           `json:"name"`
			Bindings []policy.Binding `json:"bindings"`
		} `json:"secrets"`
	}
	must(t, json.Unmarshal(res.OK(t).Stdout, &out))
	var ts []string
	for _, s := range out.Secrets {
		if s.Name == "STRIPE_KEY" {
			for _, b := range s.Bindings {
				ts = append(ts, b.Target().String())
			}
		}
	}
	return strings.Join(ts, ",")
}
