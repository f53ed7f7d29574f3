package server

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

func tokenReq(t testing.TB, name, role string, projects []string, expires time.Time) syncapi.CreateTokenRequest {
	return syncapi.CreateTokenRequest{ID: hexID(t), Name: name, Role: role, Projects: projects, ExpiresAt: expires, AuthKey: randomBytes(t, 32),
		PublicKeys: syncapi.PublicKeys{Seal: randomBytes(t, 32), Sign: randomBytes(t, 32)}, WrappedPrivateKeys: randomBytes(t, 100),
		Record: randomBytes(t, 200), SealedKey: randomBytes(t, 80)}
}

func (ts *testServer) tokenLogin(t testing.TB, id string, authKey []byte) syncapi.SessionResponse {
	t.Helper()
	return call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: id, AuthKey: authKey})
}

// TestServiceTokens: an admin creates a scoped reader token; it signs in
// with its auth key (an access token only, its keys returned), sees and
// pulls its project only, cannot push, manage anything or reach another
// workspace; after revocation neither its old session nor a new login
// works and its membership is gone. Creation, listing and revocation need
// a session and an admin; bodies are checked; expiry ends sign-in and
// sessions; a member token pushes.
func TestServiceTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		ts := startServer(t, spec, Options{Now: clk.Now})
		admin := ts.signup(t, "alice@example.com")
		adminTok := admin.Session.AccessToken
		ws := ts.workspace(t, admin, "app")
		call[syncapi.Project](t, "POST", ts.URL+path(syncapi.PathProjects, "ws", ws), adminTok, syncapi.CreateProjectRequest{Name: "other", WrappedKey: randomBytes(t, 60), KeyVersion: 1})
		otherWS := ts.workspace(t, admin, "app")
		member := ts.signup(t, "bob@example.com")
		ts.addMember(t, admin, ws, member, RoleMember)
		tokensURL := ts.URL + path(syncapi.PathTokens, "ws", ws)
		push := func(project string) syncapi.PushRequest {
			return syncapi.PushRequest{Changes: []syncapi.PushChange{{Name: "A_" + strings.ToUpper(project), Envelope: randomBytes(t, 40)}}}
		}
		call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "other"), adminTok, push("other"))

		req := tokenReq(t, "ci", RoleReader, []string{"app"}, clk.Now().Add(30*24*time.Hour))
		// No session, or not an admin.
		apiError(t, "POST", tokensURL, "", req, 401, "unauthorized")
		apiError(t, "GET", tokensURL, "", nil, 401, "unauthorized")
		apiError(t, "POST", tokensURL, member.Session.AccessToken, req, 403, "denied")
		apiError(t, "GET", tokensURL, member.Session.AccessToken, nil, 403, "denied")

		tok := call[syncapi.Token](t, "POST", tokensURL, adminTok, req)
		if tok.ID != req.ID || tok.Name != "ci" || tok.Role != RoleReader || strings.Join(tok.Projects, ",") != "app" || tok.AccountID != TokenAccountPrefix+req.ID ||
			tok.CreatedBy != admin.Account.ID || tok.CreatedByEmail != admin.Email || !tok.ExpiresAt.Equal(req.ExpiresAt) || tok.RevokedAt != nil || tok.LastUsedAt != nil {
			t.Fatalf("created token = %+v", tok)
		}
		apiError(t, "DELETE", ts.URL+path(syncapi.PathToken, "ws", ws, "token", tok.ID), member.Session.AccessToken, nil, 403, "denied")

		// Sign-in: wrong key or id, then the right one.
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: req.ID, AuthKey: randomBytes(t, 32)}, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: hexID(t), AuthKey: req.AuthKey}, 401, "unauthorized")
		res := ts.tokenLogin(t, req.ID, req.AuthKey)
		if res.Session.RefreshToken != "" || !res.Session.AccessExpiresAt.Equal(clk.Now().Add(DefaultAccessTTL)) || res.Account.ID != tok.AccountID ||
			res.Account.Email != "token:ci" || string(res.Account.PublicKeys.Seal) != string(req.PublicKeys.Seal) || string(res.Account.WrappedPrivateKeys) != string(req.WrappedPrivateKeys) {
			t.Fatalf("token session = %+v", res)
		}
		access := res.Session.AccessToken

		// Its workspace, scoped to its project; its membership listed as
		// its record names it.
		d := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), access, nil)
		if len(d.Projects) != 1 || d.Projects[0].Name != "app" || d.Workspace.Role != RoleReader {
			t.Fatalf("token's detail: %+v", d)
		}
		found := false
		for _, m := range d.Members {
			found = found || m.AccountID == tok.AccountID && m.Email == "token:ci" && m.Role == RoleReader && m.AddedBy == admin.Account.ID
		}
		if !found {
			t.Fatalf("token member not listed: %+v", d.Members)
		}
		if full := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), adminTok, nil); len(full.Projects) != 2 {
			t.Fatalf("admin's detail lost projects: %+v", full.Projects)
		}
		call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), access, syncapi.PullRequest{})
		for _, c := range []struct {
			method, url string
			body        any
			status      int
			code        string
		}{
			{"POST", path(syncapi.PathPull, "ws", ws, "project", "other"), syncapi.PullRequest{}, 404, "not_found"},
			{"GET", path(syncapi.PathHistory, "ws", ws, "project", "other", "name", "A_OTHER"), nil, 404, "not_found"},
			{"POST", path(syncapi.PathPush, "ws", ws, "project", "other"), push("other"), 404, "not_found"},
			{"POST", path(syncapi.PathPush, "ws", ws, "project", "app"), push("app"), 403, "denied"},
			{"GET", path(syncapi.PathWorkspace, "ws", otherWS), nil, 404, "not_found"},
			{"POST", path(syncapi.PathPull, "ws", otherWS, "project", "app"), syncapi.PullRequest{}, 404, "not_found"},
			// Management stays with people.
			{"POST", syncapi.PathWorkspaces, syncapi.CreateWorkspaceRequest{ID: hexID(t), Name: "x", Record: []byte{1}, SealedKey: []byte{1}}, 403, "denied"},
			{"POST", path(syncapi.PathProjects, "ws", ws), syncapi.CreateProjectRequest{Name: "new", WrappedKey: []byte{1}, KeyVersion: 1}, 403, "denied"},
			{"GET", syncapi.PathDevices, nil, 403, "denied"},
			{"DELETE", syncapi.PathSessionCurrent, nil, 403, "denied"},
			{"GET", path(syncapi.PathTokens, "ws", ws), nil, 403, "denied"},
			{"GET", syncapi.PathMyInvites, nil, 403, "denied"},
			{"POST", path(syncapi.PathInvites, "ws", ws), inviteReq(t, "eve@example.com", RoleReader), 403, "denied"},
		} {
			apiError(t, c.method, ts.URL+c.url, access, c.body, c.status, c.code)
		}
		// The session survived the refusals (a token's device is shared
		// by all its sessions: logout must not end it).
		if a := call[syncapi.Account](t, "GET", ts.URL+syncapi.PathAccount, access, nil); a.ID != tok.AccountID || a.Email != "token:ci" {
			t.Fatalf("token's account = %+v", a)
		}

		list := call[syncapi.TokenList](t, "GET", tokensURL, adminTok, nil)
		if len(list.Tokens) != 1 || list.Tokens[0].LastUsedAt == nil || list.Tokens[0].RevokedAt != nil {
			t.Fatalf("token list = %+v", list)
		}

		// Refused bodies.
		for name, mod := range map[string]func(r *syncapi.CreateTokenRequest){
			"admin role":      func(r *syncapi.CreateTokenRequest) { r.Role = RoleAdmin },
			"bad name":        func(r *syncapi.CreateTokenRequest) { r.Name = "no spaces" },
			"bad id":          func(r *syncapi.CreateTokenRequest) { r.ID = "XYZ" },
			"short auth key":  func(r *syncapi.CreateTokenRequest) { r.AuthKey = r.AuthKey[:16] },
			"expired":         func(r *syncapi.CreateTokenRequest) { r.ExpiresAt = clk.Now().Add(-time.Second) },
			"over a year":     func(r *syncapi.CreateTokenRequest) { r.ExpiresAt = clk.Now().Add(400 * 24 * time.Hour) },
			"project twice":   func(r *syncapi.CreateTokenRequest) { r.Projects = []string{"app", "app"} },
			"bad project":     func(r *syncapi.CreateTokenRequest) { r.Projects = []string{"../x"} },
			"no record":       func(r *syncapi.CreateTokenRequest) { r.Record = nil },
			"short seal key":  func(r *syncapi.CreateTokenRequest) { r.PublicKeys.Seal = r.PublicKeys.Seal[:31] },
			"no wrapped keys": func(r *syncapi.CreateTokenRequest) { r.WrappedPrivateKeys = nil },
		} {
			r := tokenReq(t, "x", RoleReader, nil, clk.Now().Add(time.Hour))
			mod(&r)
			if e := apiError(t, "POST", tokensURL, adminTok, r, 400, "usage"); e.Message == "" {
				t.Errorf("%s: no message", name)
			}
		}
		apiError(t, "POST", tokensURL, adminTok, tokenReq(t, "ci", RoleReader, nil, clk.Now().Add(time.Hour)), 409, "conflict")
		apiError(t, "POST", tokensURL, adminTok, tokenReq(t, "y", RoleReader, []string{"nope"}, clk.Now().Add(time.Hour)), 404, "not_found")

		// A member token pushes, within its (whole-workspace) scope.
		mreq := tokenReq(t, "deploy", RoleMember, nil, clk.Now().Add(time.Hour))
		call[syncapi.Token](t, "POST", tokensURL, adminTok, mreq)
		macc := ts.tokenLogin(t, mreq.ID, mreq.AuthKey).Session.AccessToken
		call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "other"), macc, push("other2"))

		// Revocation: the old session, a new login and the membership end
		// together; a second revoke is a no-op; the name is free again.
		revokeURL := ts.URL + path(syncapi.PathToken, "ws", ws, "token", tok.ID)
		apiError(t, "DELETE", revokeURL, "", nil, 401, "unauthorized")
		if st, raw := do(t, "DELETE", revokeURL, adminTok, nil); st != http.StatusNoContent {
			t.Fatalf("revoke: %d %s", st, raw)
		}
		apiError(t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), access, nil, 401, "unauthorized")
		apiError(t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), access, syncapi.PullRequest{}, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: req.ID, AuthKey: req.AuthKey}, 401, "unauthorized")
		d = call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), adminTok, nil)
		for _, m := range d.Members {
			if m.AccountID == tok.AccountID {
				t.Fatalf("revoked token still a member")
			}
		}
		if st, _ := do(t, "DELETE", revokeURL, adminTok, nil); st != http.StatusNoContent {
			t.Fatalf("second revoke: %d", st)
		}
		apiError(t, "DELETE", ts.URL+path(syncapi.PathToken, "ws", ws, "token", hexID(t)), adminTok, nil, 404, "not_found")
		list = call[syncapi.TokenList](t, "GET", tokensURL, adminTok, nil)
		revoked := map[string]bool{}
		for _, x := range list.Tokens {
			revoked[x.Name] = x.RevokedAt != nil
		}
		if len(list.Tokens) != 2 || !revoked["ci"] || revoked["deploy"] {
			t.Fatalf("list after revoke = %+v", list)
		}
		call[syncapi.Token](t, "POST", tokensURL, adminTok, tokenReq(t, "ci", RoleReader, nil, clk.Now().Add(time.Hour)))

		// Expiry: a session never outlives the token, and sign-in ends.
		ereq := tokenReq(t, "short", RoleReader, nil, clk.Now().Add(10*time.Minute))
		call[syncapi.Token](t, "POST", tokensURL, adminTok, ereq)
		es := ts.tokenLogin(t, ereq.ID, ereq.AuthKey).Session
		if !es.AccessExpiresAt.Equal(ereq.ExpiresAt) {
			t.Fatalf("session of a token expiring in 10 min ends %v, want %v", es.AccessExpiresAt, ereq.ExpiresAt)
		}
		clk.Add(10 * time.Minute)
		apiError(t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), es.AccessToken, nil, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: ereq.ID, AuthKey: ereq.AuthKey}, 401, "unauthorized")

		// The log names token ids, never an auth key or keys.
		logs := ts.Log.String()
		if !strings.Contains(logs, req.ID) {
			t.Errorf("the log does not name the token id")
		}
		for _, b := range [][]byte{req.AuthKey, req.WrappedPrivateKeys, req.Record, req.SealedKey} {
			if strings.Contains(logs, base64.StdEncoding.EncodeToString(b)) {
				t.Errorf("the log holds token material")
			}
		}
	})
}

// TestTokenLoginRateLimit: token sign-in takes from the same per-account
// bucket as a password login, keyed by the token id.
func TestTokenLoginRateLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{AccountLimit: Limit{Burst: 2, Every: time.Hour}})
		admin := ts.signup(t, "alice@example.com")
		ws := ts.workspace(t, admin, "app")
		req := tokenReq(t, "ci", RoleReader, nil, time.Now().Add(time.Hour))
		call[syncapi.Token](t, "POST", ts.URL+path(syncapi.PathTokens, "ws", ws), admin.Session.AccessToken, req)
		ts.tokenLogin(t, req.ID, req.AuthKey)
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: req.ID, AuthKey: randomBytes(t, 32)}, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathTokenLogin, "", syncapi.TokenLoginRequest{TokenID: req.ID, AuthKey: req.AuthKey}, 429, "rate_limited")
	})
}

func FuzzDecodeCreateToken(f *testing.F) {
	fuzzBody(f, func(fx *fuzzFixture) string { return path(syncapi.PathTokens, "ws", fx.ws) },
		syncapi.CreateTokenRequest{ID: "00000000000000000000000000000009", Name: "ci", Role: RoleReader, Projects: []string{"app"},
			ExpiresAt: time.Now().Add(time.Hour), AuthKey: make([]byte, 32), PublicKeys: syncapi.PublicKeys{Seal: make([]byte, 32), Sign: make([]byte, 32)},
			WrappedPrivateKeys: []byte{1}, Record: []byte{1}, SealedKey: []byte{1}})
}

func FuzzDecodeTokenLogin(f *testing.F) {
	fuzzBody(f, static(syncapi.PathTokenLogin), syncapi.TokenLoginRequest{TokenID: "00000000000000000000000000000009", AuthKey: make([]byte, 32)})
}
