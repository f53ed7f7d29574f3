package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// leakForms lists the spellings of b that must not appear: raw, base64
// (both alphabets, padded or not, and its whole 3-byte groups as they
// appear inside a longer stream), hex, URL-escaped and JSON-escaped.
func leakForms(b []byte) map[string][]byte {
	aligned := b[:len(b)/3*3]
	js, _ := json.Marshal(string(b))
	out := map[string][]byte{
		"raw":                 b,
		"base64 std":          []byte(base64.StdEncoding.EncodeToString(b)),
		"base64 std unpadded": []byte(base64.RawStdEncoding.EncodeToString(b)),
		"base64 url":          []byte(base64.URLEncoding.EncodeToString(b)),
		"base64 url unpadded": []byte(base64.RawURLEncoding.EncodeToString(b)),
		"base64 std groups":   []byte(base64.RawStdEncoding.EncodeToString(aligned)),
		"base64 url groups":   []byte(base64.RawURLEncoding.EncodeToString(aligned)),
		"hex":                 []byte(hex.EncodeToString(b)),
		"HEX":                 []byte(strings.ToUpper(hex.EncodeToString(b))),
		"url-escaped":         []byte(url.QueryEscape(string(b))),
		"JSON-escaped":        js[1 : len(js)-1],
	}
	return out
}

func assertNoLeak(t *testing.T, where string, data []byte, secrets map[string][]byte) {
	t.Helper()
	for what, s := range secrets {
		for form, enc := range leakForms(s) {
			if len(enc) >= 8 && bytes.Contains(data, enc) {
				t.Errorf("%s contains %s (%s)", where, what, form)
			}
		}
	}
}

// TestNoSecretInLogsOrDatabase drives every kind of request (signup, login,
// a wrong key, refresh, reuse, push, pull, allowlist, invites, logout) and
// scans the server's whole log for every token, auth key, envelope,
// wrapped or sealed key, allowlist document, invite statement, proof and
// membership record it saw, in every encoding; and the
// database (the SQLite files, a pg_dump) for every token and auth key (the
// server keeps only hashes of them).
func TestNoSecretInLogsOrDatabase(t *testing.T) {
	forEachBackend(t, testNoSecretInLogsOrDatabase)
}

// databaseBytes is everything the database holds: the SQLite files, or a
// pg_dump of the PostgreSQL database.
func databaseBytes(t *testing.T, spec string) map[string][]byte {
	out := map[string][]byte{}
	if path, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		files, _ := filepath.Glob(path + "*")
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(f)] = data
		}
		return out
	}
	dump, err := exec.Command("pg_dump", "--dbname", spec).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	out["pg_dump"] = dump
	return out
}

func testNoSecretInLogsOrDatabase(t *testing.T, spec string) {
	ts := startServer(t, spec, Options{})
	secrets := map[string][]byte{}
	keep := func(name string, b []byte) { secrets[name] = b }

	req := createAccountRequest(t, "ivan@example.com", randomBytes(t, 32))
	res := call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathAccounts, "", req)
	u := &user{Email: req.Email, AuthKey: req.AuthKey, Session: res.Session, Account: res.Account}
	keep("auth key", u.AuthKey)
	keep("wrapped private keys", req.WrappedPrivateKeys)
	keep("access token 1", []byte(u.Session.AccessToken))
	keep("refresh token 1", []byte(u.Session.RefreshToken))

	wrong := randomBytes(t, 32)
	keep("wrong auth key", wrong)
	apiError(t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: u.Email, AuthKey: wrong, DeviceName: "x"}, 401, "unauthorized")
	second := ts.login(t, u, "second")
	keep("access token 2", []byte(second.Session.AccessToken))
	keep("refresh token 2", []byte(second.Session.RefreshToken))

	ws := hexID(t)
	record, sealed := randomBytes(t, 200), randomBytes(t, 80)
	keep("membership record", record)
	keep("sealed key", sealed)
	call[syncapi.Workspace](t, "POST", ts.URL+syncapi.PathWorkspaces, second.Session.AccessToken, syncapi.CreateWorkspaceRequest{ID: ws, Name: "w", Record: record, SealedKey: sealed})
	wrapped := randomBytes(t, 60)
	keep("wrapped project key", wrapped)
	call[syncapi.Project](t, "POST", ts.URL+path(syncapi.PathProjects, "ws", ws), second.Session.AccessToken, syncapi.CreateProjectRequest{Name: "app", WrappedKey: wrapped, KeyVersion: 1})
	c := change(t, "A", 0)
	keep("envelope", c.Envelope)
	call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), second.Session.AccessToken, pushReq(c))
	apiError(t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), second.Session.AccessToken, pushReq(c), 409, "conflict")
	call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), second.Session.AccessToken, syncapi.PullRequest{})
	doc := randomBytes(t, 100)
	keep("allowlist document", doc)
	call[syncapi.AllowlistVersion](t, "POST", ts.URL+path(syncapi.PathAllowlist, "ws", ws), second.Session.AccessToken, syncapi.AllowlistPushRequest{Document: doc})

	// An invite through every step, each payload a canary pattern, and
	// refusals that carry one (too long, unknown field, a wrong size).
	canary := func(what string, n int) []byte {
		b := append([]byte("CANARY-"+what+"-"), randomBytes(t, n)...)
		keep(what, b)
		return b
	}
	bob := ts.signup(t, "bob@example.com")
	keep("access token bob", []byte(bob.Session.AccessToken))
	invURL := ts.URL + path(syncapi.PathInvites, "ws", ws)
	apiError(t, "POST", invURL, second.Session.AccessToken, syncapi.CreateInviteRequest{ID: hexID(t), Email: bob.Email, Role: RoleMember, Statement: canary("oversized statement", maxStatement)}, 400, "usage")
	inv := call[syncapi.Invite](t, "POST", invURL, second.Session.AccessToken, syncapi.CreateInviteRequest{ID: hexID(t), Email: bob.Email, Role: RoleMember, Statement: canary("statement", 300)})
	call[syncapi.InviteList](t, "GET", invURL, second.Session.AccessToken, nil)
	call[syncapi.InviteList](t, "GET", ts.URL+syncapi.PathMyInvites, bob.Session.AccessToken, nil)
	acceptURL := ts.URL + path(syncapi.PathInviteAccept, "invite", inv.ID)
	apiError(t, "POST", acceptURL, bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: canary("short proof", 8)}, 400, "usage")
	apiError(t, "POST", acceptURL, bob.Session.AccessToken, []byte(`{"proof":"`+base64.StdEncoding.EncodeToString(canary("proof in a bad body", 24))+`","x":1}`), 400, "usage")
	call[syncapi.Invite](t, "POST", acceptURL, bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: canary("proof", 32-len("CANARY-proof-"))})
	call[syncapi.Member](t, "POST", ts.URL+path(syncapi.PathInviteComplete, "ws", ws, "invite", inv.ID), second.Session.AccessToken,
		syncapi.CompleteInviteRequest{Record: canary("invitee record", 200), SealedKey: canary("invitee sealed key", 80)})

	// A rotation removing bob, every payload a canary; a refused one too.
	rotate := func(tag string, keyVersion int) syncapi.RotateRequest {
		return syncapi.RotateRequest{RemovedAccountID: bob.Account.ID, KeyVersion: keyVersion,
			Members: []syncapi.RotateMember{{AccountID: u.Account.ID, Role: RoleAdmin, Record: canary(tag+"rotated record", 200), SealedKey: canary(tag+"rotated sealed key", 80)}},
			Projects: []syncapi.RotateProject{{Name: "app", KeyVersion: 2, WrappedKey: canary(tag+"rotated project key", 60),
				PreviousKeys: []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: canary(tag+"previous project key", 60)}}, Heads: map[string]int{"A": 1},
				Changes: []syncapi.PushChange{{Name: "A", BaseVersion: 1, Envelope: canary(tag+"re-sealed envelope", 120)}}}},
			Allowlist: &syncapi.AllowlistPushRequest{BaseVersion: 1, Document: canary(tag+"re-sealed allowlist", 100)}}
	}
	rotateURL := ts.URL + path(syncapi.PathRotate, "ws", ws)
	apiError(t, "POST", rotateURL, second.Session.AccessToken, rotate("refused ", 5), 409, "conflict")
	call[syncapi.RotateResponse](t, "POST", rotateURL, second.Session.AccessToken, rotate("", 2))
	apiError(t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), bob.Session.AccessToken, nil, 401, "unauthorized")

	// The database while sessions are live (a pg_dump shows only live
	// rows; logout and reuse below delete them).
	live := databaseBytes(t, spec)

	fresh := call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: u.Session.RefreshToken})
	keep("access token 3", []byte(fresh.Session.AccessToken))
	keep("refresh token 3", []byte(fresh.Session.RefreshToken))
	apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: u.Session.RefreshToken}, 401, "unauthorized")
	apiError(t, "GET", ts.URL+syncapi.PathAccount, fresh.Session.AccessToken, nil, 401, "unauthorized")
	do(t, "DELETE", ts.URL+syncapi.PathSessionCurrent, second.Session.AccessToken, nil)
	ts.Shutdown(t)

	logs := ts.Log.String()
	if !strings.Contains(logs, `"msg":"auth failure"`) || !strings.Contains(logs, `"route":"POST /v1/workspaces/{ws}/projects/{project}/push"`) ||
		!strings.Contains(logs, `"event":"completed"`) || !strings.Contains(logs, `"invite":"`+inv.ID+`"`) || !strings.Contains(logs, `"msg":"rotate"`) {
		t.Fatalf("the log lacks the lines this test drove:\n%s", logs)
	}
	ts.Log.lines(t) // every line is JSON
	assertNoLeak(t, "server log", []byte(logs), secrets)

	for when, snapshot := range map[string]map[string][]byte{"sessions live": live, "at the end": databaseBytes(t, spec)} {
		var all []byte
		for where, data := range snapshot {
			all = append(all, data...)
			for name, s := range secrets {
				if strings.Contains(name, "token") || strings.Contains(name, "auth key") {
					assertNoLeak(t, where+" ("+when+")", data, map[string][]byte{name: s})
				}
			}
		}
		if !bytes.Contains(all, []byte("ivan@example.com")) {
			t.Fatalf("the database (%s) does not hold the account: the scan would prove nothing", when)
		}
	}
}

func hexID(t testing.TB) string { return hex.EncodeToString(randomBytes(t, 16)) }
