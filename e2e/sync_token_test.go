package e2e

// Service tokens (issue 11, stage B): a CI job with only a token file and
// an encrypted file vault pulls and calls, within its project scope and
// role, until an admin revokes the token.

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestSyncServiceToken: alice (Secret Service) creates a reader token for
// project payments; a CI home with only the token file and a file vault
// switches to the workspace, uses the project, pulls, lists and makes a
// call against a local upstream; its push is denied, the other project is
// not visible. A member token's push is verified by alice's client through
// the roster and used. After `workspace token revoke` it can neither sign in nor
// pull, and a session it obtained before the revoke is refused. The token
// and the values never reach any output, file (but the token file and the
// encrypted vault), request or response, the database or the server log.
func TestSyncServiceToken(t *testing.T) {
	for _, kind := range []string{dbSQLite, dbPostgres} {
		t.Run(kind, func(t *testing.T) { runSyncServiceToken(t, kind) })
	}
}

func runSyncServiceToken(t *testing.T, dbKind string) {
	r := newTeamRig(t, "keychain", dbKind)
	a, s := r.a, r.s
	billing := s.canary("BILLING_KEY.team")
	s.run(a, "project", "create", "billing", "--use").OK(t)
	s.runIn(a, billing, "secrets", "set", "BILLING_KEY", "--from-stdin").OK(t)
	s.run(a, "secrets", "push").OK(t)
	s.run(a, "project", "use", "payments").OK(t)

	// Not on a terminal and no --out: refused before anything is made;
	// without the admin passphrase: approval required.
	s.run(a, "workspace", "token", "create", "ci", "--role", "reader").ErrorCode(t, "approval_required", 5)
	tokFile := filepath.Join(t.TempDir(), "ci.token")
	s.run(a, "workspace", "token", "create", "ci", "--role", "admin", "--out", tokFile, "--passphrase-file", a.AdminFile).ErrorCode(t, "usage", 2)
	created := s.run(a, "workspace", "token", "create", "ci", "--role", "reader", "--project", "payments", "--expires", "30d",
		"--out", tokFile, "--passphrase-file", a.AdminFile).OK(t)
	st, err := os.Stat(tokFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, st)
	}
	text, err := os.ReadFile(tokFile)
	must(t, err)
	tok := strings.TrimSpace(string(text))
	server, raw, err := agsync.ParseToken(tok)
	if err != nil || server != r.srv.URL {
		t.Fatalf("token: %v, server %q want %q", err, server, r.srv.URL)
	}
	secPart := tok[strings.LastIndexByte(tok, '.')+1:]
	// Whole, and one character short (the damaged token below).
	s.canaries = append(s.canaries, []byte(tok), []byte(secPart), raw, []byte(secPart[:len(secPart)-1]))
	keys, err := agsync.DeriveTokenKeys(raw)
	must(t, err)
	var out struct {
		Token struct {
			ID       string   `json:"id"`
			Role     string   `json:"role"`
			Projects []string `json:"projects"`
		} `json:"token"`
		Out      string `json:"out"`
		Approved bool   `json:"approved"`
	}
	if err := json.Unmarshal(created.Stdout, &out); err != nil || out.Token.ID != keys.ID || out.Token.Role != "reader" ||
		strings.Join(out.Token.Projects, ",") != "payments" || out.Out != tokFile || !out.Approved {
		t.Fatalf("create: %v %s", err, created.Stdout)
	}
	// The server keeps the SHA-256 of the auth key, never the secret.
	if n := r.db.String(t, "SELECT CAST(COUNT(*) AS TEXT) FROM service_tokens WHERE id = ? AND revoked_at IS NULL", keys.ID); n != "1" {
		t.Fatalf("service_tokens rows: %s", n)
	}
	list := s.run(a, "workspace", "token", "list").OK(t)
	if !strings.Contains(string(list.Stdout), `"name":"ci"`) || strings.Contains(string(list.Stdout), "revoked_at") {
		t.Fatalf("token list: %s", list.Stdout)
	}
	if m, _ := members(t, s.run(a, "workspace", "members")); m["token:ci"] != "reader/pinned" {
		t.Fatalf("alice's members: %v", m)
	}

	// The CI home: a file vault and the token file, nothing else.
	ci := NewVault(t, "file")
	ci.ExtraEnv = append(ci.ExtraEnv, agsync.TokenFileEnv+"="+tokFile)
	// The token file is a secret: group- or world-readable is refused,
	// as a passphrase file is, and a damaged token is refused unechoed.
	must(t, os.Chmod(tokFile, 0o644))
	s.run(ci, "workspace", "switch", "acme").ErrorCode(t, "usage", 2)
	must(t, os.Chmod(tokFile, 0o600))
	bad := filepath.Join(t.TempDir(), "bad.token")
	must(t, os.WriteFile(bad, []byte(tok[:len(tok)-1]+"\n"), 0o600))
	badCI := NewVault(t, "file")
	badCI.ExtraEnv = append(badCI.ExtraEnv, agsync.TokenFileEnv+"="+bad)
	s.run(badCI, "workspace", "switch", "acme").ErrorCode(t, "usage", 2)
	if got := field(t, s.run(ci, "workspace", "switch", "acme").OK(t), "fetched"); got != "true" {
		t.Fatalf("CI switch did not fetch acme")
	}
	s.run(ci, "project", "use", "billing").ErrorCode(t, "not_found", 3)
	s.run(ci, "project", "use", "payments").OK(t)
	s.run(ci, "secrets", "pull").OK(t)
	if l := s.run(ci, "secrets", "list").OK(t); !strings.Contains(string(l.Stdout), "STRIPE_KEY") {
		t.Fatalf("CI list: %s", l.Stdout)
	}
	s.run(ci, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	if m, _ := members(t, s.run(ci, "workspace", "members")); m["token:ci"] != "reader/self" || m[r.alice.Email] != "admin/pinned" {
		t.Fatalf("CI's members: %v", m)
	}
	// A reader's push is denied by the server.
	s.runIn(ci, s.canary("STRIPE_KEY.ci"), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(ci, "secrets", "push").ErrorCode(t, "denied", 4)
	// A token manages nothing: the server allows it no such route.
	s.run(ci, "workspace", "token", "list").ErrorCode(t, "denied", 4)

	// A member token pushes; alice's client verifies the version it
	// signed through the roster like any member's, and uses it.
	deployFile := filepath.Join(t.TempDir(), "deploy.token")
	s.run(a, "workspace", "token", "create", "deploy", "--role", "member", "--out", deployFile, "--passphrase-file", a.AdminFile).OK(t)
	dtext, err := os.ReadFile(deployFile)
	must(t, err)
	dtok := strings.TrimSpace(string(dtext))
	_, draw, err := agsync.ParseToken(dtok)
	must(t, err)
	s.canaries = append(s.canaries, []byte(dtok), []byte(dtok[strings.LastIndexByte(dtok, '.')+1:]), draw)
	deploy := NewVault(t, "file")
	deploy.ExtraEnv = append(deploy.ExtraEnv, agsync.TokenFileEnv+"="+deployFile)
	s.run(deploy, "workspace", "switch", "acme").OK(t)
	s.run(deploy, "project", "use", "payments").OK(t)
	s.run(deploy, "secrets", "pull").OK(t)
	v2 := s.canary("STRIPE_KEY.deploy")
	s.runIn(deploy, v2, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(deploy, "secrets", "push").OK(t)
	s.run(a, "secrets", "pull").OK(t)
	r.up.expect(v2)
	s.run(a, "call", "--url", r.up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)

	// A session obtained before the revoke.
	access := tokenLogin(t, r.srv.URL, keys)
	if code := getWorkspace(t, r.srv.URL, r.wsID, access); code != http.StatusOK {
		t.Fatalf("token session before revoke: %d", code)
	}
	s.run(a, "workspace", "token", "revoke", "ci").ErrorCode(t, "approval_required", 5)
	rv := s.run(a, "workspace", "token", "revoke", "ci", "--passphrase-file", a.AdminFile).OK(t)
	if !strings.Contains(string(rv.Stdout), `"revoked_at"`) {
		t.Fatalf("revoke: %s", rv.Stdout)
	}
	// Revoking rotated every key like a removal; only the token's project
	// is marked rotate_upstream (the server never answered it for billing).
	var revoked struct {
		Rotation *struct {
			KeyVersion int `json:"key_version"`
			Projects   []struct {
				Project        string   `json:"project"`
				RotateUpstream []string `json:"rotate_upstream"`
			} `json:"projects"`
		} `json:"rotation"`
	}
	must(t, json.Unmarshal(rv.Stdout, &revoked))
	if revoked.Rotation == nil || revoked.Rotation.KeyVersion != 2 {
		t.Fatalf("revoke did not rotate the keys: %s", rv.Stdout)
	}
	for _, p := range revoked.Rotation.Projects {
		if marked := len(p.RotateUpstream) > 0; marked != (p.Project == "payments") {
			t.Errorf("project %s marked %v after revoking a token scoped to payments", p.Project, p.RotateUpstream)
		}
	}
	if n := r.db.String(t, "SELECT CAST(key_version AS TEXT) FROM workspaces WHERE id = ?", r.wsID); n != "2" {
		t.Fatalf("workspace key version after revoke: %s", n)
	}
	if l := s.run(a, "secrets", "list").OK(t); !strings.Contains(string(l.Stdout), `"rotate_upstream":true`) {
		t.Fatalf("payments secrets not marked after the revoke: %s", l.Stdout)
	}
	if l := s.run(a, "secrets", "list", "--project", "billing").OK(t); strings.Contains(string(l.Stdout), `"rotate_upstream":true`) {
		t.Fatalf("billing marked after revoking a payments token: %s", l.Stdout)
	}
	if code := getWorkspace(t, r.srv.URL, r.wsID, access); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token's session answered %d", code)
	}
	e := s.run(ci, "secrets", "pull").ErrorCode(t, "unauthorized", 11)
	if !strings.Contains(e["hint"].(string), "workspace token create") {
		t.Errorf("revoked token's hint: %v", e)
	}
	s.run(ci, "workspace", "list").OK(t)
	if m, _ := members(t, s.run(a, "workspace", "members")); m["token:ci"] != "" {
		t.Fatalf("a revoked token is still a member: %v", m)
	}
	if n := r.memberRows(agsync.TokenAccountPrefix + keys.ID); n != "0" {
		t.Fatalf("member rows of the revoked token: %s", n)
	}

	s.scan(r.srv, a, ci, badCI, deploy)
	s.scanServer(r.db, r.proxy)
}

// tokenLogin signs a token in over the API and returns its access token.
func tokenLogin(t *testing.T, url string, keys agsync.TokenKeys) string {
	t.Helper()
	body, _ := json.Marshal(syncapi.TokenLoginRequest{TokenID: keys.ID, AuthKey: keys.AuthKey})
	resp, err := http.Post(url+syncapi.PathTokenLogin, "application/json", bytes.NewReader(body))
	must(t, err)
	defer resp.Body.Close()
	var out syncapi.SessionResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Session.AccessToken == "" || out.Session.RefreshToken != "" {
		t.Fatalf("token login: %d %v", resp.StatusCode, err)
	}
	return out.Session.AccessToken
}

func getWorkspace(t *testing.T, url, wsID, access string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url+strings.Replace(syncapi.PathWorkspace, "{ws}", wsID, 1), nil)
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
