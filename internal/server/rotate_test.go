package server

import (
	"bytes"
	"net/http"
	"sync"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// rotateRig is a workspace of alice (the creator, admin), bob (member) and
// carol (admin), with project app holding A (2 versions) and B (1).
type rotateRig struct {
	ts                *testServer
	ws                string
	alice, bob, carol *user
	members           map[string]string // account id → role
	heads             map[string]int
}

func newRotateRig(t *testing.T, spec string) *rotateRig {
	ts := startServer(t, spec, Options{Signup: "open"})
	r := &rotateRig{ts: ts, alice: ts.signup(t, "alice@example.com")}
	r.ws = ts.workspace(t, r.alice, "app")
	r.bob, r.carol = ts.signup(t, "bob@example.com"), ts.signup(t, "carol@example.com")
	ts.addMember(t, r.alice, r.ws, r.bob, RoleMember)
	ts.addMember(t, r.alice, r.ws, r.carol, RoleAdmin)
	push := ts.URL + path(syncapi.PathPush, "ws", r.ws, "project", "app")
	call[syncapi.PushResponse](t, "POST", push, r.alice.Session.AccessToken, pushReq(change(t, "A", 0), change(t, "B", 0)))
	call[syncapi.PushResponse](t, "POST", push, r.bob.Session.AccessToken, pushReq(change(t, "A", 1)))
	call[syncapi.AllowlistVersion](t, "POST", ts.URL+path(syncapi.PathAllowlist, "ws", r.ws), r.alice.Session.AccessToken,
		syncapi.AllowlistPushRequest{Document: randomBytes(t, 100)})
	r.members = map[string]string{r.alice.Account.ID: RoleAdmin, r.bob.Account.ID: RoleMember, r.carol.Account.ID: RoleAdmin}
	r.heads = map[string]int{"A": 2, "B": 1}
	return r
}

// request is a rotation removing removed, as a client builds it: every
// other member re-sealed, app's key at version 2 with version 1 kept,
// every head re-sealed.
func (r *rotateRig) request(t *testing.T, removed string) syncapi.RotateRequest {
	req := syncapi.RotateRequest{RemovedAccountID: removed, KeyVersion: 2}
	for id, role := range r.members {
		if id != removed {
			req.Members = append(req.Members, syncapi.RotateMember{AccountID: id, Role: role, Record: randomBytes(t, 200), SealedKey: randomBytes(t, 80)})
		}
	}
	p := syncapi.RotateProject{Name: "app", KeyVersion: 2, WrappedKey: randomBytes(t, 60), PreviousKeys: []syncapi.ProjectKey{{KeyVersion: 1, WrappedKey: randomBytes(t, 60)}},
		Heads: map[string]int{}}
	for n, h := range r.heads {
		p.Heads[n] = h
		p.Changes = append(p.Changes, change(t, n, h))
	}
	req.Projects = []syncapi.RotateProject{p}
	req.Allowlist = &syncapi.AllowlistPushRequest{BaseVersion: 1, Document: randomBytes(t, 100)}
	return req
}

func (r *rotateRig) url() string { return r.ts.URL + path(syncapi.PathRotate, "ws", r.ws) }

// TestRotate: an admin removes a member; the detail then has key version
// 2, the new records and sealed keys as sent (added by the rotating
// admin), the project's new key and its previous key, and the re-sealed
// versions; the removed account's every request on the workspace answers
// unauthorized naming it, while the others go on; the removed account's
// pending invites are canceled; added back, it is a member again.
func TestRotate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		r := newRotateRig(t, spec)
		ts := r.ts
		ts.invite(t, r.alice, r.ws, "dave@example.com", RoleReader)
		req := r.request(t, r.bob.Account.ID)
		res := call[syncapi.RotateResponse](t, "POST", r.url(), r.carol.Session.AccessToken, req)
		if res.KeyVersion != 2 || res.Versions != 2 {
			t.Fatalf("rotate = %+v", res)
		}
		d := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", r.ws), r.alice.Session.AccessToken, nil)
		if d.KeyVersion != 2 || len(d.Members) != 2 || len(d.Projects) != 1 || d.AllowlistVersion != 2 {
			t.Fatalf("detail = %+v", d)
		}
		sent := map[string]syncapi.RotateMember{}
		for _, m := range req.Members {
			sent[m.AccountID] = m
		}
		for _, m := range d.Members {
			s, ok := sent[m.AccountID]
			if !ok || !bytes.Equal(m.Record, s.Record) || !bytes.Equal(m.SealedKey, s.SealedKey) || m.AddedBy != r.carol.Account.ID || m.Role != s.Role {
				t.Fatalf("member %+v, sent %+v", m, s)
			}
		}
		p := d.Projects[0]
		if p.KeyVersion != 2 || !bytes.Equal(p.WrappedKey, req.Projects[0].WrappedKey) || len(p.PreviousKeys) != 1 || p.PreviousKeys[0].KeyVersion != 1 ||
			!bytes.Equal(p.PreviousKeys[0].WrappedKey, req.Projects[0].PreviousKeys[0].WrappedKey) {
			t.Fatalf("project = %+v", p)
		}
		pull := call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", r.ws, "project", "app"), r.alice.Session.AccessToken, syncapi.PullRequest{})
		if versionList(pull.Versions) != "A1 A2 A3 B1 B2" || pull.Heads["A"] != 3 {
			t.Fatalf("versions after the rotation: %s", versionList(pull.Versions))
		}
		// Bob: unauthorized on every workspace route, naming why.
		bobTok := r.bob.Session.AccessToken
		for _, ep := range authedEndpoints(t, r.ws, r.bob.Session.DeviceID, "00000000000000000000000000000009") {
			if !ep.perWorkspace || ep.path == path(syncapi.PathDevice, "id", r.bob.Session.DeviceID) || ep.method == "POST" && ep.path == path(syncapi.PathInviteAccept, "invite", "00000000000000000000000000000009") {
				continue
			}
			e := apiError(t, ep.method, ts.URL+ep.path, bobTok, ep.body, 401, "unauthorized")
			if e.Message != "removed from workspace team" {
				t.Errorf("%s %s: %q", ep.method, ep.path, e.Message)
			}
		}
		if l := call[syncapi.WorkspaceList](t, "GET", ts.URL+syncapi.PathWorkspaces, bobTok, nil); len(l.Workspaces) != 0 {
			t.Fatalf("bob still lists %+v", l)
		}
		// The invite alice made stays; none of bob's existed. Carol can
		// push on the new head.
		if l := call[syncapi.InviteList](t, "GET", ts.URL+path(syncapi.PathInvites, "ws", r.ws), r.alice.Session.AccessToken, nil); len(l.Invites) != 1 {
			t.Fatalf("invites = %+v", l)
		}
		call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", r.ws, "project", "app"), r.carol.Session.AccessToken, pushReq(change(t, "A", 3)))
		// Added back, bob is a member again (not "removed").
		ts.addMember(t, r.alice, r.ws, r.bob, RoleReader)
		call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", r.ws), bobTok, nil)
	})
}

// TestRotateRefusals: the rotation is checked against the workspace in
// its transaction, and a refused one changes nothing.
func TestRotateRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		r := newRotateRig(t, spec)
		ts := r.ts
		bob := r.bob.Account.ID
		cases := []struct {
			name   string
			token  string
			edit   func(*syncapi.RotateRequest)
			status int
			code   string
		}{
			{"a member may not rotate", r.bob.Session.AccessToken, func(q *syncapi.RotateRequest) { q.RemovedAccountID = r.carol.Account.ID }, 403, "denied"},
			{"the creator cannot be removed", r.carol.Session.AccessToken, func(q *syncapi.RotateRequest) {
				*q = r.request(t, r.alice.Account.ID)
			}, 409, "conflict"},
			{"an admin cannot remove themself", r.carol.Session.AccessToken, func(q *syncapi.RotateRequest) { q.RemovedAccountID = r.carol.Account.ID }, 409, "conflict"},
			{"not a member", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.RemovedAccountID = "nobody" }, 404, "not_found"},
			{"stale key version", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.KeyVersion = 3 }, 409, "conflict"},
			{"a member missing", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Members = q.Members[:1] }, 409, "conflict"},
			{"an extra member", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) {
				q.Members = append(q.Members, syncapi.RotateMember{AccountID: bob, Role: RoleMember, Record: []byte{1}, SealedKey: []byte{1}})
			}, 409, "conflict"},
			{"a role changed", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) {
				for i := range q.Members {
					q.Members[i].Role = RoleReader
				}
			}, 409, "conflict"},
			{"a project missing", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Projects = nil }, 409, "conflict"},
			{"a project key of the wrong version", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Projects[0].KeyVersion = 3 }, 409, "conflict"},
			{"a previous key missing", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Projects[0].PreviousKeys = nil }, 409, "conflict"},
			{"a head missing", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { delete(q.Projects[0].Heads, "B") }, 409, "conflict"},
			{"a stale base", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) {
				q.Projects[0].Changes[0].BaseVersion = 7
				q.Projects[0].Heads[q.Projects[0].Changes[0].Name] = 7
			}, 409, "conflict"},
			{"the allowlist not re-sealed", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Allowlist = nil }, 409, "conflict"},
			{"the allowlist on a stale base", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Allowlist.BaseVersion = 2 }, 409, "conflict"},
			{"the allowlist on base 0", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Allowlist.BaseVersion = 0 }, 400, "usage"},
			{"no members", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Members = nil }, 400, "usage"},
			{"a bad project name", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.Projects[0].Name = "../x" }, 400, "usage"},
			{"key version 1", r.alice.Session.AccessToken, func(q *syncapi.RotateRequest) { q.KeyVersion = 1 }, 400, "usage"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := r.request(t, bob)
				tc.edit(&req)
				apiError(t, "POST", r.url(), tc.token, req, tc.status, tc.code)
				d := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", r.ws), r.alice.Session.AccessToken, nil)
				if d.KeyVersion != 1 || len(d.Members) != 3 || d.Projects[0].KeyVersion != 1 || d.AllowlistVersion != 1 {
					t.Fatalf("a refused rotation changed the workspace: %+v", d)
				}
			})
		}
		// No token: unauthorized; another account: not_found.
		apiError(t, "POST", r.url(), "", r.request(t, bob), 401, "unauthorized")
		other := ts.signup(t, "eve@example.com")
		apiError(t, "POST", r.url(), other.Session.AccessToken, r.request(t, bob), 404, "not_found")
	})
}

// TestRotateRaces: of a push and a rotation built on the same heads, and
// of two rotations, exactly one wins; the loser gets a conflict and
// stores nothing.
func TestRotateRaces(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { rotateRaces(t, b) })
	}
}

func rotateRaces(t *testing.T, b backend) {
	{
		for round := range 5 {
			r := newRotateRig(t, b.spec(t))
			ts := r.ts
			req := r.request(t, r.bob.Account.ID)
			req2 := r.request(t, r.bob.Account.ID)
			var wg sync.WaitGroup
			statuses := make([]int, 3)
			wg.Add(3)
			go func() {
				defer wg.Done()
				statuses[0], _ = do(t, "POST", r.url(), r.alice.Session.AccessToken, req)
			}()
			go func() {
				defer wg.Done()
				statuses[1], _ = do(t, "POST", r.url(), r.carol.Session.AccessToken, req2)
			}()
			go func() {
				defer wg.Done()
				statuses[2], _ = do(t, "POST", ts.URL+path(syncapi.PathPush, "ws", r.ws, "project", "app"), r.bob.Session.AccessToken, pushReq(change(t, "B", 1)))
			}()
			wg.Wait()
			ok := 0
			for _, s := range statuses {
				switch s {
				case http.StatusOK:
					ok++
				case http.StatusConflict, http.StatusUnauthorized:
				default:
					t.Fatalf("round %d: statuses %v", round, statuses)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d winners (statuses %v)", round, ok, statuses)
			}
			d := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", r.ws), r.alice.Session.AccessToken, nil)
			pull := call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", r.ws, "project", "app"), r.alice.Session.AccessToken, syncapi.PullRequest{})
			rotated := statuses[0] == http.StatusOK || statuses[1] == http.StatusOK
			if rotated != (d.KeyVersion == 2) || rotated != (versionList(pull.Versions) == "A1 A2 A3 B1 B2") || !rotated && versionList(pull.Versions) != "A1 A2 B1 B2" {
				t.Fatalf("round %d: statuses %v, key version %d, versions %s", round, statuses, d.KeyVersion, versionList(pull.Versions))
			}
		}
	}
}
