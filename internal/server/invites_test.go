package server

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

func inviteReq(t testing.TB, email, role string) syncapi.CreateInviteRequest {
	return syncapi.CreateInviteRequest{ID: hexID(t), Email: email, Role: role, Statement: randomBytes(t, 300)}
}

// invite creates an invite of email to ws as admin, through the API.
func (ts *testServer) invite(t testing.TB, admin *user, ws, email, role string) syncapi.Invite {
	t.Helper()
	return call[syncapi.Invite](t, "POST", ts.URL+path(syncapi.PathInvites, "ws", ws), admin.Session.AccessToken, inviteReq(t, email, role))
}

// addMember makes u a member of ws with role the way clients do: admin
// invites, u accepts (the server does not check proofs), admin completes
// (nor records).
func (ts *testServer) addMember(t testing.TB, admin *user, ws string, u *user, role string) syncapi.Member {
	t.Helper()
	inv := ts.invite(t, admin, ws, u.Email, role)
	call[syncapi.Invite](t, "POST", ts.URL+path(syncapi.PathInviteAccept, "invite", inv.ID), u.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: randomBytes(t, 32)})
	return call[syncapi.Member](t, "POST", ts.URL+path(syncapi.PathInviteComplete, "ws", ws, "invite", inv.ID), admin.Session.AccessToken,
		syncapi.CompleteInviteRequest{Record: randomBytes(t, 200), SealedKey: randomBytes(t, 80)})
}

// TestInviteLifecycle: on a closed server an admin invites an email that
// has no account; that email (in any case) may then sign up, sees the
// invite with the statement as sent, accepts it (the server adds the
// account's keys; accepting again replaces the proof); completing it adds
// the member with the invite's role, the caller as adder and the record
// and sealed key as sent, and the invite leaves every listing.
func TestInviteLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{Signup: "closed"})
		admin := ts.signup(t, "alice@example.com")
		ws := ts.workspace(t, admin, "app")
		adminTok := admin.Session.AccessToken
		invitesURL := ts.URL + path(syncapi.PathInvites, "ws", ws)

		req := inviteReq(t, "Bob@Example.com", RoleMember)
		inv := call[syncapi.Invite](t, "POST", invitesURL, adminTok, req)
		if inv.ID != req.ID || inv.Email != "bob@example.com" || inv.Role != RoleMember || inv.State != syncapi.InviteOpen || inv.WorkspaceID != ws ||
			inv.WorkspaceName != "team" || inv.InvitedBy != admin.Account.ID || inv.InvitedByEmail != admin.Email || !bytes.Equal(inv.Statement, req.Statement) ||
			inv.AccountID != "" || inv.PublicKeys != nil || inv.Proof != nil || inv.AcceptedAt != nil {
			t.Fatalf("created invite = %+v", inv)
		}

		// Closed signup: only the invited email gets in.
		apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "carol@example.com", randomBytes(t, 32)), 403, "denied")
		bob := ts.signup(t, "BOB@example.com")
		bobTok := bob.Session.AccessToken

		mine := call[syncapi.InviteList](t, "GET", ts.URL+syncapi.PathMyInvites, bobTok, nil)
		if len(mine.Invites) != 1 || mine.Invites[0].ID != inv.ID || mine.Invites[0].InvitedByEmail != admin.Email || !bytes.Equal(mine.Invites[0].Statement, req.Statement) {
			t.Fatalf("bob's invites = %+v", mine)
		}
		if l := call[syncapi.InviteList](t, "GET", ts.URL+syncapi.PathMyInvites, adminTok, nil); len(l.Invites) != 0 {
			t.Fatalf("the admin's own invites = %+v", l)
		}

		completeURL := ts.URL + path(syncapi.PathInviteComplete, "ws", ws, "invite", inv.ID)
		complete := syncapi.CompleteInviteRequest{Record: randomBytes(t, 200), SealedKey: randomBytes(t, 80)}
		apiError(t, "POST", completeURL, adminTok, complete, 409, "conflict")

		acceptURL := ts.URL + path(syncapi.PathInviteAccept, "invite", inv.ID)
		call[syncapi.Invite](t, "POST", acceptURL, bobTok, syncapi.AcceptInviteRequest{Proof: randomBytes(t, 32)})
		proof := randomBytes(t, 32)
		acc := call[syncapi.Invite](t, "POST", acceptURL, bobTok, syncapi.AcceptInviteRequest{Proof: proof})
		if acc.State != syncapi.InviteAccepted || acc.AccountID != bob.Account.ID || acc.PublicKeys == nil || !bytes.Equal(acc.PublicKeys.Seal, bob.Account.PublicKeys.Seal) ||
			!bytes.Equal(acc.PublicKeys.Sign, bob.Account.PublicKeys.Sign) || !bytes.Equal(acc.Proof, proof) || acc.AcceptedAt == nil {
			t.Fatalf("accepted invite = %+v", acc)
		}
		listed := call[syncapi.InviteList](t, "GET", invitesURL, adminTok, nil)
		if len(listed.Invites) != 1 || listed.Invites[0].State != syncapi.InviteAccepted || !bytes.Equal(listed.Invites[0].Proof, proof) ||
			!bytes.Equal(listed.Invites[0].PublicKeys.Sign, bob.Account.PublicKeys.Sign) {
			t.Fatalf("workspace invites = %+v", listed)
		}
		// Not a member yet.
		apiError(t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), bobTok, nil, 404, "not_found")

		m := call[syncapi.Member](t, "POST", completeURL, adminTok, complete)
		if m.AccountID != bob.Account.ID || m.Email != "bob@example.com" || m.Role != RoleMember || m.AddedBy != admin.Account.ID ||
			!bytes.Equal(m.Record, complete.Record) || !bytes.Equal(m.SealedKey, complete.SealedKey) {
			t.Fatalf("completed member = %+v", m)
		}
		// Every member sees every record and sealed key: each client
		// verifies the whole roster.
		detail := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), bobTok, nil)
		if detail.Workspace.Role != RoleMember || len(detail.Members) != 2 || detail.Members[1].AccountID != bob.Account.ID || !bytes.Equal(detail.Members[1].Record, complete.Record) {
			t.Fatalf("bob's workspace detail = %+v", detail)
		}
		for _, tok := range []string{adminTok, bobTok} {
			if l := call[syncapi.InviteList](t, "GET", ts.URL+syncapi.PathMyInvites, tok, nil); len(l.Invites) != 0 {
				t.Fatalf("a completed invite is still listed: %+v", l)
			}
		}
		if l := call[syncapi.InviteList](t, "GET", invitesURL, adminTok, nil); len(l.Invites) != 0 {
			t.Fatalf("a completed invite is still listed: %+v", l)
		}
		apiError(t, "POST", completeURL, adminTok, complete, 404, "not_found")
		apiError(t, "POST", acceptURL, bobTok, syncapi.AcceptInviteRequest{Proof: proof}, 404, "not_found")
		apiError(t, "DELETE", ts.URL+path(syncapi.PathInvite, "ws", ws, "invite", inv.ID), adminTok, nil, 404, "not_found")
		// The completed invite lets no one else sign up.
		apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "dan@example.com", randomBytes(t, 32)), 403, "denied")
	})
}

// TestInviteRefusals: what each invite endpoint refuses, and with which
// code: roles (only admins manage invites), the invitee's email on
// accept, a second pending invite, an invite of a member, completion
// before acceptance, cancelation, and malformed fields.
func TestInviteRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		admin := ts.signup(t, "admin@example.com")
		ws := ts.workspace(t, admin, "app")
		adminTok := admin.Session.AccessToken
		member, reader, outsider := ts.signup(t, "member@example.com"), ts.signup(t, "reader@example.com"), ts.signup(t, "outsider@example.com")
		ts.addMember(t, admin, ws, member, RoleMember)
		ts.addMember(t, admin, ws, reader, RoleReader)
		bob, carol := ts.signup(t, "bob@example.com"), ts.signup(t, "carol@example.com")
		inv := ts.invite(t, admin, ws, bob.Email, RoleReader)
		invitesURL := ts.URL + path(syncapi.PathInvites, "ws", ws)
		cancelURL := ts.URL + path(syncapi.PathInvite, "ws", ws, "invite", inv.ID)
		completeURL := ts.URL + path(syncapi.PathInviteComplete, "ws", ws, "invite", inv.ID)
		acceptURL := ts.URL + path(syncapi.PathInviteAccept, "invite", inv.ID)
		complete := syncapi.CompleteInviteRequest{Record: []byte{1}, SealedKey: []byte{1}}

		// Roles: a member or reader is denied (with the hint), an
		// outsider sees no workspace at all.
		for _, c := range []struct {
			u      *user
			status int
			code   string
		}{{member, 403, "denied"}, {reader, 403, "denied"}, {outsider, 404, "not_found"}} {
			tok := c.u.Session.AccessToken
			apiError(t, "POST", invitesURL, tok, inviteReq(t, "new@example.com", RoleMember), c.status, c.code)
			apiError(t, "GET", invitesURL, tok, nil, c.status, c.code)
			apiError(t, "DELETE", cancelURL, tok, nil, c.status, c.code)
			apiError(t, "POST", completeURL, tok, complete, c.status, c.code)
		}
		if e := apiError(t, "GET", invitesURL, member.Session.AccessToken, nil, 403, "denied"); !strings.Contains(e.Message, "(member)") {
			t.Fatalf("denied answer %q does not name the role", e.Message)
		}

		for _, c := range []struct {
			name   string
			req    syncapi.CreateInviteRequest
			status int
			code   string
		}{
			{"pending invite, other case", inviteReq(t, "BOB@example.com", RoleMember), 409, "conflict"},
			{"a member", inviteReq(t, "Member@example.com", RoleAdmin), 409, "conflict"},
			{"the admin", inviteReq(t, admin.Email, RoleAdmin), 409, "conflict"},
			{"same id", syncapi.CreateInviteRequest{ID: inv.ID, Email: "x@example.com", Role: RoleMember, Statement: []byte{1}}, 409, "conflict"},
			{"bad id", syncapi.CreateInviteRequest{ID: "ABC", Email: "x@example.com", Role: RoleMember, Statement: []byte{1}}, 400, "usage"},
			{"bad email", syncapi.CreateInviteRequest{ID: hexID(t), Email: "x", Role: RoleMember, Statement: []byte{1}}, 400, "usage"},
			{"bad role", syncapi.CreateInviteRequest{ID: hexID(t), Email: "x@example.com", Role: "owner", Statement: []byte{1}}, 400, "usage"},
			{"no statement", syncapi.CreateInviteRequest{ID: hexID(t), Email: "x@example.com", Role: RoleMember}, 400, "usage"},
			{"statement too long", syncapi.CreateInviteRequest{ID: hexID(t), Email: "x@example.com", Role: RoleMember, Statement: make([]byte, maxStatement+1)}, 400, "usage"},
		} {
			t.Run(c.name, func(t *testing.T) { apiError(t, "POST", invitesURL, adminTok, c.req, c.status, c.code) })
		}

		// Accept: only the invited email, only a 32-byte proof.
		apiError(t, "POST", acceptURL, carol.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 404, "not_found")
		apiError(t, "POST", acceptURL, admin.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 404, "not_found")
		apiError(t, "POST", acceptURL, bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 31)}, 400, "usage")
		apiError(t, "POST", ts.URL+path(syncapi.PathInviteAccept, "invite", "nothex"), bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 400, "usage")
		apiError(t, "POST", ts.URL+path(syncapi.PathInviteAccept, "invite", hexID(t)), bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 404, "not_found")

		// Complete: not before acceptance; then not without a record.
		apiError(t, "POST", completeURL, adminTok, complete, 409, "conflict")
		call[syncapi.Invite](t, "POST", acceptURL, bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)})
		apiError(t, "POST", completeURL, adminTok, syncapi.CompleteInviteRequest{SealedKey: []byte{1}}, 400, "usage")
		apiError(t, "POST", completeURL, adminTok, syncapi.CompleteInviteRequest{Record: []byte{1}, SealedKey: make([]byte, maxSealed+1)}, 400, "usage")
		apiError(t, "POST", ts.URL+path(syncapi.PathInviteComplete, "ws", ws, "invite", hexID(t)), adminTok, complete, 404, "not_found")

		// Cancel an accepted invite: gone from the listings, cannot be
		// accepted or completed; the email may be invited again.
		if status, raw := do(t, "DELETE", cancelURL, adminTok, nil); status != http.StatusNoContent || len(raw) != 0 {
			t.Fatalf("cancel: %d %s", status, raw)
		}
		apiError(t, "DELETE", cancelURL, adminTok, nil, 404, "not_found")
		apiError(t, "POST", completeURL, adminTok, complete, 404, "not_found")
		apiError(t, "POST", acceptURL, bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 404, "not_found")
		if l := call[syncapi.InviteList](t, "GET", ts.URL+syncapi.PathMyInvites, bob.Session.AccessToken, nil); len(l.Invites) != 0 {
			t.Fatalf("a canceled invite is listed: %+v", l)
		}
		if l := call[syncapi.InviteList](t, "GET", invitesURL, adminTok, nil); len(l.Invites) != 0 {
			t.Fatalf("a canceled invite is listed: %+v", l)
		}
		again := ts.invite(t, admin, ws, bob.Email, RoleMember)
		// An invite of another workspace is not this one's to cancel.
		other := ts.workspace(t, carol, "app")
		apiError(t, "DELETE", ts.URL+path(syncapi.PathInvite, "ws", other, "invite", again.ID), carol.Session.AccessToken, nil, 404, "not_found")
		apiError(t, "POST", ts.URL+path(syncapi.PathInviteComplete, "ws", other, "invite", again.ID), carol.Session.AccessToken, complete, 404, "not_found")
	})
}

// TestInviteBounds: a workspace holds at most maxPendingInvites pending
// invites, and invite creation and acceptance take from the caller's
// write bucket (rate_limited with Retry-After once it is empty).
func TestInviteBounds(t *testing.T) {
	huge := Limit{Burst: 1 << 20, Every: time.Nanosecond}
	ts := startServer(t, backends()[0].spec(t), Options{AccountLimit: huge})
	admin := ts.signup(t, "admin@example.com")
	ws := ts.workspace(t, admin, "app")
	for i := 0; i < maxPendingInvites; i++ {
		ts.invite(t, admin, ws, "u"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))+"@example.com", RoleMember)
	}
	apiError(t, "POST", ts.URL+path(syncapi.PathInvites, "ws", ws), admin.Session.AccessToken, inviteReq(t, "last@example.com", RoleMember), 413, "too_large")

	ts = startServer(t, backends()[0].spec(t), Options{AccountLimit: Limit{Burst: 3, Every: time.Hour}})
	admin = ts.signup(t, "admin@example.com") // takes the email's auth bucket, not the writes'
	ws = ts.workspace(t, admin, "app")
	bob := ts.signup(t, "bob@example.com")
	inv := ts.invite(t, admin, ws, bob.Email, RoleMember)
	ts.invite(t, admin, ws, "c@example.com", RoleMember)
	ts.invite(t, admin, ws, "d@example.com", RoleMember)
	e := apiError(t, "POST", ts.URL+path(syncapi.PathInvites, "ws", ws), admin.Session.AccessToken, inviteReq(t, "e@example.com", RoleMember), 429, "rate_limited")
	if !strings.Contains(e.Message, "invite requests") {
		t.Fatalf("rate limit message %q", e.Message)
	}
	// Bob's bucket is his own.
	for i := 0; i < 3; i++ {
		call[syncapi.Invite](t, "POST", ts.URL+path(syncapi.PathInviteAccept, "invite", inv.ID), bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)})
	}
	apiError(t, "POST", ts.URL+path(syncapi.PathInviteAccept, "invite", inv.ID), bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, 429, "rate_limited")
}

// TestInviteReplicasRace: two replicas on one PostgreSQL database; racing
// invites of one email leave exactly one pending (the database's unique
// index decides, not a read), and racing completions add the member once.
func TestInviteReplicasRace(t *testing.T) {
	spec := pgDatabase(t)
	huge := Limit{Burst: 1 << 20, Every: time.Nanosecond}
	replicas := []*testServer{startServer(t, spec, Options{AccountLimit: huge}), startServer(t, spec, Options{AccountLimit: huge})}
	admin := replicas[0].signup(t, "admin@example.com")
	ws := replicas[1].workspace(t, admin, "app")
	bob := replicas[0].signup(t, "bob@example.com")
	const racers = 8
	race := func(send func(i int) int) (won int) {
		var wg sync.WaitGroup
		statuses := make([]int, racers)
		for i := range statuses {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				statuses[i] = send(i)
			}(i)
		}
		wg.Wait()
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				won++
			case http.StatusConflict, http.StatusNotFound:
			default:
				t.Fatalf("status %d (%v)", s, statuses)
			}
		}
		return won
	}
	rel := path(syncapi.PathInvites, "ws", ws)
	if won := race(func(i int) int {
		status, _ := do(t, "POST", replicas[i%2].URL+rel, admin.Session.AccessToken, inviteReq(t, "bob@example.com", RoleMember))
		return status
	}); won != 1 {
		t.Fatalf("%d racing invites of one email succeeded, want 1", won)
	}
	list := call[syncapi.InviteList](t, "GET", replicas[0].URL+syncapi.PathMyInvites, bob.Session.AccessToken, nil)
	if len(list.Invites) != 1 {
		t.Fatalf("bob has %d pending invites", len(list.Invites))
	}
	id := list.Invites[0].ID
	call[syncapi.Invite](t, "POST", replicas[1].URL+path(syncapi.PathInviteAccept, "invite", id), bob.Session.AccessToken, syncapi.AcceptInviteRequest{Proof: make([]byte, 32)})
	if won := race(func(i int) int {
		status, _ := do(t, "POST", replicas[i%2].URL+path(syncapi.PathInviteComplete, "ws", ws, "invite", id), admin.Session.AccessToken,
			syncapi.CompleteInviteRequest{Record: randomBytes(t, 100), SealedKey: randomBytes(t, 80)})
		return status
	}); won != 1 {
		t.Fatalf("%d racing completions succeeded, want 1", won)
	}
	if d := call[syncapi.WorkspaceDetail](t, "GET", replicas[0].URL+path(syncapi.PathWorkspace, "ws", ws), bob.Session.AccessToken, nil); len(d.Members) != 2 {
		t.Fatalf("%d members, want 2", len(d.Members))
	}
}
