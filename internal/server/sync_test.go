package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

func pushReq(changes ...syncapi.PushChange) syncapi.PushRequest {
	return syncapi.PushRequest{Changes: changes}
}

func change(t testing.TB, name string, base int) syncapi.PushChange {
	return syncapi.PushChange{Name: name, BaseVersion: base, Envelope: randomBytes(t, 64)}
}

// TestPushPull: versions are base+1, a pull returns every version after the
// known one (oldest first) and the heads, a stale base is a conflict that
// names every moved secret and stores nothing of the push, history lists
// metadata; the allowlist has its own base-version concurrency.
func TestPushPull(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		u := ts.signup(t, "erin@example.com")
		tok := u.Session.AccessToken
		ws := ts.workspace(t, u, "app")
		pushURL := ts.URL + path(syncapi.PathPush, "ws", ws, "project", "app")
		pullURL := ts.URL + path(syncapi.PathPull, "ws", ws, "project", "app")

		a1, b1 := change(t, "A", 0), change(t, "B", 0)
		res := call[syncapi.PushResponse](t, "POST", pushURL, tok, pushReq(a1, b1))
		if len(res.Versions) != 2 || res.Versions[0].Version != 1 || res.Versions[0].AuthorID != u.Account.ID {
			t.Fatalf("push = %+v", res)
		}
		a2 := change(t, "A", 1)
		call[syncapi.PushResponse](t, "POST", pushURL, tok, pushReq(a2))

		all := call[syncapi.PullResponse](t, "POST", pullURL, tok, syncapi.PullRequest{})
		if got := versionList(all.Versions); got != "A1 A2 B1" || all.Heads["A"] != 2 || all.Heads["B"] != 1 {
			t.Fatalf("pull {} = %s heads %v", got, all.Heads)
		}
		if !bytes.Equal(all.Versions[1].Envelope, a2.Envelope) {
			t.Fatal("envelope changed in storage")
		}
		some := call[syncapi.PullResponse](t, "POST", pullURL, tok, syncapi.PullRequest{Known: map[string]int{"A": 1, "B": 1}})
		if got := versionList(some.Versions); got != "A2" || len(some.Heads) != 2 {
			t.Fatalf("pull {A:1,B:1} = %s heads %v", got, some.Heads)
		}

		// A: base 1 is stale (head 2), B: base 1 is right, C: new. Refused
		// whole, naming A only.
		e := apiError(t, "POST", pushURL, tok, pushReq(change(t, "A", 1), change(t, "B", 1), change(t, "C", 0)), 409, "conflict")
		if !slices.Equal(e.Names, []string{"A"}) {
			t.Fatalf("conflict names %v", e.Names)
		}
		e = apiError(t, "POST", pushURL, tok, pushReq(change(t, "A", 0), change(t, "B", 5)), 409, "conflict")
		if !slices.Equal(e.Names, []string{"A", "B"}) {
			t.Fatalf("conflict names %v", e.Names)
		}
		after := call[syncapi.PullResponse](t, "POST", pullURL, tok, syncapi.PullRequest{})
		if got := versionList(after.Versions); got != "A1 A2 B1" {
			t.Fatalf("a refused push changed storage: %s", got)
		}

		hist := call[syncapi.History](t, "GET", ts.URL+path(syncapi.PathHistory, "ws", ws, "project", "app", "name", "A"), tok, nil)
		if hist.Name != "A" || len(hist.Versions) != 2 || hist.Versions[1].Version != 2 {
			t.Fatalf("history = %+v", hist)
		}
		apiError(t, "GET", ts.URL+path(syncapi.PathHistory, "ws", ws, "project", "app", "name", "NOPE"), tok, nil, 404, "not_found")
		apiError(t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "nope"), tok, syncapi.PullRequest{}, 404, "not_found")
		apiError(t, "POST", ts.URL+path(syncapi.PathPull, "ws", strings.Repeat("0", 32), "project", "app"), tok, syncapi.PullRequest{}, 404, "not_found")
		apiError(t, "POST", ts.URL+path(syncapi.PathProjects, "ws", ws), tok, syncapi.CreateProjectRequest{Name: "app", WrappedKey: []byte{1}, KeyVersion: 1}, 409, "conflict")

		detail := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), tok, nil)
		if detail.Workspace.Role != RoleAdmin || len(detail.Members) != 1 || detail.Members[0].Email != u.Email || len(detail.Projects) != 1 {
			t.Fatalf("workspace detail = %+v", detail)
		}
		list := call[syncapi.WorkspaceList](t, "GET", ts.URL+syncapi.PathWorkspaces, tok, nil)
		if len(list.Workspaces) != 1 || list.Workspaces[0].ID != ws {
			t.Fatalf("workspaces = %+v", list)
		}

		alURL := ts.URL + path(syncapi.PathAllowlist, "ws", ws)
		v1 := call[syncapi.AllowlistVersion](t, "POST", alURL, tok, syncapi.AllowlistPushRequest{BaseVersion: 0, Document: []byte("doc1")})
		call[syncapi.AllowlistVersion](t, "POST", alURL, tok, syncapi.AllowlistPushRequest{BaseVersion: 1, Document: []byte("doc2")})
		apiError(t, "POST", alURL, tok, syncapi.AllowlistPushRequest{BaseVersion: 1, Document: []byte("doc2'")}, 409, "conflict")
		since := call[syncapi.AllowlistVersions](t, "GET", alURL+"?since=1", tok, nil)
		if v1.Version != 1 || len(since.Versions) != 1 || string(since.Versions[0].Document) != "doc2" {
			t.Fatalf("allowlist since=1 = %+v", since)
		}
		apiError(t, "GET", alURL+"?since=-1", tok, nil, 400, "usage")
	})
}

func versionList(vs []syncapi.SecretVersion) string {
	var parts []string
	for _, v := range vs {
		parts = append(parts, fmt.Sprintf("%s%d", v.Name, v.Version))
	}
	return strings.Join(parts, " ")
}

// endpoint is one authenticated route with a valid body.
type endpoint struct {
	method, path string
	body         any
	// perWorkspace: another account's token gets not_found (the
	// workspace is not theirs), not the resource.
	perWorkspace bool
}

func authedEndpoints(t *testing.T, ws, device, invite string) []endpoint {
	return []endpoint{
		{"DELETE", syncapi.PathSessionCurrent, nil, false},
		{"GET", syncapi.PathAccount, nil, false},
		{"GET", syncapi.PathDevices, nil, false},
		{"DELETE", path(syncapi.PathDevice, "id", device), nil, true},
		{"GET", syncapi.PathWorkspaces, nil, false},
		{"POST", syncapi.PathWorkspaces, syncapi.CreateWorkspaceRequest{ID: hex.EncodeToString(randomBytes(t, 16)), Name: "w", Record: []byte{1}, SealedKey: []byte{1}}, false},
		{"GET", path(syncapi.PathWorkspace, "ws", ws), nil, true},
		{"POST", path(syncapi.PathProjects, "ws", ws), syncapi.CreateProjectRequest{Name: "p2", WrappedKey: []byte{1}, KeyVersion: 1}, true},
		{"POST", path(syncapi.PathPull, "ws", ws, "project", "app"), syncapi.PullRequest{}, true},
		{"POST", path(syncapi.PathPush, "ws", ws, "project", "app"), pushReq(change(t, "A", 0)), true},
		{"GET", path(syncapi.PathHistory, "ws", ws, "project", "app", "name", "A"), nil, true},
		{"GET", path(syncapi.PathAllowlist, "ws", ws), nil, true},
		{"POST", path(syncapi.PathAllowlist, "ws", ws), syncapi.AllowlistPushRequest{Document: []byte{1}}, true},
		{"GET", path(syncapi.PathInvites, "ws", ws), nil, true},
		{"POST", path(syncapi.PathInvites, "ws", ws), inviteReq(t, "invitee@example.com", RoleMember), true},
		{"DELETE", path(syncapi.PathInvite, "ws", ws, "invite", invite), nil, true},
		{"POST", path(syncapi.PathInviteComplete, "ws", ws, "invite", invite), syncapi.CompleteInviteRequest{Record: []byte{1}, SealedKey: []byte{1}}, true},
		{"GET", syncapi.PathMyInvites, nil, false},
		// Addressed to a third email: other's token finds nothing.
		{"POST", path(syncapi.PathInviteAccept, "invite", invite), syncapi.AcceptInviteRequest{Proof: make([]byte, 32)}, true},
		{"POST", path(syncapi.PathRotate, "ws", ws), syncapi.RotateRequest{RemovedAccountID: "x", KeyVersion: 2}, true},
	}
}

// TestEveryEndpointNeedsItsOwner: every authenticated route refuses a
// missing, malformed or unknown token (401 unauthorized), and every
// workspace or device route answers another account's valid token with
// not_found, leaving the owner's data alone.
func TestEveryEndpointNeedsItsOwner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		owner := ts.signup(t, "owner@example.com")
		ws := ts.workspace(t, owner, "app")
		call[syncapi.PushResponse](t, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), owner.Session.AccessToken, pushReq(change(t, "A", 0)))
		other := ts.signup(t, "other@example.com")
		// An invite of a third email, so that other's token (not the
		// invitee) is refused by accept too.
		invite := ts.invite(t, owner, ws, "invitee@example.com", RoleMember).ID
		eps := authedEndpoints(t, ws, owner.Session.DeviceID, invite)
		for _, ep := range eps {
			for _, tok := range []string{"", "garbage", AccessPrefix + strings.Repeat("A", 43), owner.Session.RefreshToken} {
				apiError(t, ep.method, ts.URL+ep.path, tok, ep.body, 401, "unauthorized")
			}
			if ep.perWorkspace {
				apiError(t, ep.method, ts.URL+ep.path, other.Session.AccessToken, ep.body, 404, "not_found")
			}
		}
		// The owner's data is intact and their session alive.
		pull := call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), owner.Session.AccessToken, syncapi.PullRequest{})
		if versionList(pull.Versions) != "A1" {
			t.Fatalf("owner's data changed: %s", versionList(pull.Versions))
		}
		if list := call[syncapi.WorkspaceList](t, "GET", ts.URL+syncapi.PathWorkspaces, other.Session.AccessToken, nil); len(list.Workspaces) != 0 {
			t.Fatalf("other account lists %+v", list.Workspaces)
		}
	})
}

// TestMalformedBodies: every route with a body refuses broken JSON, unknown
// fields, trailing data, a wrong type (usage) and a body over MaxBody
// (too_large), and its error quotes nothing of the body.
func TestMalformedBodies(t *testing.T) {
	ts := startServer(t, backends()[0].spec(t), Options{})
	u := ts.signup(t, "frank@example.com")
	ws := ts.workspace(t, u, "app")
	// Not shaped like a field name: such a key could be a pasted value.
	const marker = "MARKER-d2e3f"
	routes := []string{syncapi.PathPrelogin, syncapi.PathAccounts, syncapi.PathSessions, syncapi.PathRefresh, syncapi.PathWorkspaces,
		path(syncapi.PathProjects, "ws", ws), path(syncapi.PathPull, "ws", ws, "project", "app"),
		path(syncapi.PathPush, "ws", ws, "project", "app"), path(syncapi.PathAllowlist, "ws", ws),
		path(syncapi.PathInvites, "ws", ws), path(syncapi.PathInviteComplete, "ws", ws, "invite", hexID(t)), path(syncapi.PathInviteAccept, "invite", hexID(t)),
		path(syncapi.PathRotate, "ws", ws)}
	// A rotation carries every secret of the workspace: its bound is
	// syncapi.MaxRotateBody, too large to send here.
	bigger := map[string]bool{path(syncapi.PathRotate, "ws", ws): true}
	cases := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"empty", []byte{}, 400, "usage"},
		{"not JSON", []byte("{" + marker), 400, "usage"},
		{"unknown field", []byte(`{"` + marker + `x": 1}`), 400, "usage"},
		{"trailing data", []byte(`{} {"` + marker + `": 1}`), 400, "usage"},
		{"wrong type", []byte(`["` + marker + `"]`), 400, "usage"},
		{"too large", append(append([]byte(`{"email":"`), bytes.Repeat([]byte("a"), syncapi.MaxBody)...), '"', '}'), 413, "too_large"},
	}
	for _, route := range routes {
		for _, c := range cases {
			if c.code == "too_large" && bigger[route] {
				continue
			}
			t.Run(route+"/"+c.name, func(t *testing.T) {
				e := apiError(t, "POST", ts.URL+route, u.Session.AccessToken, c.body, c.status, c.code)
				if strings.Contains(e.Message, marker) {
					t.Fatalf("error quotes the body: %q", e.Message)
				}
			})
		}
	}
}

// TestReplicasRace: two real servers on one PostgreSQL database, one
// client alternating between them, then many concurrent pushes of the same
// base racing through both: exactly one wins per version, every loser gets
// conflict naming the secret, and no version is lost or doubled.
func TestReplicasRace(t *testing.T) {
	spec := pgDatabase(t)
	r1 := startServer(t, spec, Options{})
	r2 := startServer(t, spec, Options{})
	replicas := []*testServer{r1, r2}
	u := r1.signup(t, "grace@example.com")
	tok := u.Session.AccessToken
	ws := r2.workspace(t, u, "app")
	rel := path(syncapi.PathPush, "ws", ws, "project", "app")
	// Alternating, sequential: each sees the other's writes.
	for v := 0; v < 6; v++ {
		call[syncapi.PushResponse](t, "POST", replicas[v%2].URL+rel, tok, pushReq(change(t, "SEQ", v)))
	}
	// Racing: rounds of 8 pushers on the same base.
	const rounds, racers = 5, 8
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		statuses := make([]int, racers)
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				statuses[i], _ = do(t, "POST", replicas[i%2].URL+rel, tok, pushReq(change(t, "RACE", round), change(t, fmt.Sprintf("OWN%d_%d", round, i), 0)))
			}(i)
		}
		wg.Wait()
		won := 0
		for _, s := range statuses {
			switch s {
			case http.StatusOK:
				won++
			case http.StatusConflict:
			default:
				t.Fatalf("round %d: status %d", round, s)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d pushes won, want exactly 1 (%v)", round, won, statuses)
		}
	}
	pull := call[syncapi.PullResponse](t, "POST", r2.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), tok, syncapi.PullRequest{})
	if pull.Heads["SEQ"] != 6 || pull.Heads["RACE"] != rounds {
		t.Fatalf("heads %v", pull.Heads)
	}
	own := 0
	for name := range pull.Heads {
		if strings.HasPrefix(name, "OWN") {
			own++
		}
	}
	if own != rounds {
		t.Fatalf("%d OWN secrets stored, want one per round (losers' pushes must leave nothing)", own)
	}
}

// TestGracefulShutdown: a push whose body is still arriving when the
// server is told to stop is finished and committed whole, the server then
// stops, and a restarted server sees every change of it.
func TestGracefulShutdown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		// entered is closed when the push has reached the handler: from
		// then on it is in flight.
		entered := make(chan struct{})
		var once sync.Once
		probe := func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/push") {
					once.Do(func() { close(entered) })
				}
				next.ServeHTTP(w, r)
			})
		}
		ts := startServer(t, spec, Options{}, probe)
		u := ts.signup(t, "heidi@example.com")
		ws := ts.workspace(t, u, "app")
		var changes []syncapi.PushChange
		for i := 0; i < 300; i++ {
			changes = append(changes, change(t, fmt.Sprintf("S%03d", i), 0))
		}
		body := mustJSON(t, pushReq(changes...))
		pr, pw := ioPipe()
		req, _ := http.NewRequest("POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), pr)
		req.Header.Set("Authorization", "Bearer "+u.Session.AccessToken)
		req.ContentLength = int64(len(body))
		type result struct {
			status int
			err    error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- result{err: err}
				return
			}
			resp.Body.Close()
			done <- result{status: resp.StatusCode}
		}()
		half := len(body) / 2
		pw.Write(body[:half])
		<-entered
		stopped := make(chan struct{})
		go func() { ts.Shutdown(t); close(stopped) }()
		waitFor(t, func() bool {
			// The listener is closed once shutdown has begun.
			_, err := http.Get(ts.URL + syncapi.PathHealth)
			return err != nil
		})
		pw.Write(body[half:])
		pw.Close()
		r := <-done
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("in-flight push: status %d, err %v", r.status, r.err)
		}
		<-stopped
		ts2 := startServer(t, spec, Options{})
		login := ts2.login(t, u, "after")
		pull := call[syncapi.PullResponse](t, "POST", ts2.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), login.Session.AccessToken, syncapi.PullRequest{})
		if len(pull.Heads) != len(changes) {
			t.Fatalf("after restart: %d secrets, want %d", len(pull.Heads), len(changes))
		}
	})
}

// TestMigrationsIdempotent: opening a database again (a restart, or a
// second replica) applies nothing twice and keeps the data.
func TestMigrationsIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ctx := context.Background()
		for i := 0; i < 3; i++ {
			st, err := Open(ctx, spec)
			if err != nil {
				t.Fatalf("open %d: %v", i, err)
			}
			v, err := st.SchemaVersion(ctx)
			if err != nil || v != int64(MigrationCount()) {
				t.Fatalf("open %d: schema version %d (%v), want %d", i, v, err, MigrationCount())
			}
			if _, err := st.ServerKey(ctx, "k", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			key, _ := st.ServerKey(ctx, "k", []byte{9})
			if !bytes.Equal(key, []byte{0}) {
				t.Fatalf("open %d: server key %v, want the first one kept", i, key)
			}
			st.Close()
		}
	})
}

// TestConcurrentStartPostgres: replicas starting at once on an empty
// database take goose's lock in turn, and all of them come up.
func TestConcurrentStartPostgres(t *testing.T) {
	spec := pgDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := Open(context.Background(), spec)
			if err == nil {
				st.Close()
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr string
		tls  bool
		ok   bool
	}{
		{"127.0.0.1:8787", false, true},
		{"127.0.0.2:0", false, true},
		{"[::1]:8787", false, true},
		{"localhost:8787", false, true},
		{"0.0.0.0:8787", false, false},
		{":8787", false, false},
		{"[::]:8787", false, false},
		{"192.168.1.5:8787", false, false},
		{"sync.example.com:443", false, false},
		{"0.0.0.0:8787", true, true},
		{"no-port", false, false},
	} {
		if err := CheckListen(c.addr, c.tls); (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, tls=%v) = %v, want ok=%v", c.addr, c.tls, err, c.ok)
		}
	}
}

// TestHealthAndReady: /healthz answers while the process is up, /readyz
// only while the database is reachable.
func TestHealthAndReady(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		if status, _ := do(t, "GET", ts.URL+syncapi.PathReady, "", nil); status != 200 {
			t.Fatalf("readyz: %d", status)
		}
		ts.Store.Close()
		apiError(t, "GET", ts.URL+syncapi.PathReady, "", nil, 503, "unavailable")
		if status, _ := do(t, "GET", ts.URL+syncapi.PathHealth, "", nil); status != 200 {
			t.Fatalf("healthz: %d", status)
		}
	})
}

// TestRequestLog: one JSON line per request with the route template (not
// the path), status, duration, client IP and, once authenticated, the
// account and device.
func TestRequestLog(t *testing.T) {
	ts := startServer(t, backends()[0].spec(t), Options{})
	u := ts.signup(t, "judy@example.com")
	ws := ts.workspace(t, u, "app")
	call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), u.Session.AccessToken, syncapi.PullRequest{})
	var found bool
	for _, l := range ts.Log.lines(t) {
		if l["msg"] != "request" || l["route"] != "POST "+syncapi.PathPull {
			continue
		}
		found = true
		if l["status"] != float64(200) || l["account"] != u.Account.ID || l["device"] != u.Session.DeviceID || l["ip"] != "127.0.0.1" || l["method"] != "POST" {
			t.Fatalf("pull log line %v", l)
		}
		if _, ok := l["duration_ms"].(float64); !ok {
			t.Fatalf("no duration: %v", l)
		}
	}
	if !found {
		t.Fatalf("no pull line in\n%s", ts.Log)
	}
	if strings.Contains(ts.Log.String(), ws) {
		t.Fatal("the log carries a raw path (workspace id) instead of the route template")
	}
}

// TestRoles: a reader may read but not push, add a project, change the
// allowlist or manage invites; a member may push and add projects but not
// change the allowlist, which is policy, nor manage invites: both need an
// admin. Members join through the invite endpoints, as clients add them.
func TestRoles(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		admin := ts.signup(t, "admin@example.com")
		ws := ts.workspace(t, admin, "app")
		pending := ts.invite(t, admin, ws, "pending@example.com", RoleMember)
		for _, c := range []struct {
			role                                 string
			push, project, allowlistPut, invites int
		}{
			{RoleReader, 403, 403, 403, 403},
			{RoleMember, 200, 200, 403, 403},
			{RoleAdmin, 200, 200, 200, 200},
		} {
			u := ts.signup(t, "as-"+c.role+"@example.com")
			if m := ts.addMember(t, admin, ws, u, c.role); m.Role != c.role {
				t.Fatalf("added as %q, want %q", m.Role, c.role)
			}
			tok := u.Session.AccessToken
			call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), tok, syncapi.PullRequest{})
			if d := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), tok, nil); d.Workspace.Role != c.role {
				t.Fatalf("%s: detail role %q", c.role, d.Workspace.Role)
			}
			call[syncapi.AllowlistVersions](t, "GET", ts.URL+path(syncapi.PathAllowlist, "ws", ws), tok, nil)
			head := call[syncapi.PullResponse](t, "POST", ts.URL+path(syncapi.PathPull, "ws", ws, "project", "app"), tok, syncapi.PullRequest{}).Heads["A"]
			if head > 0 {
				call[syncapi.History](t, "GET", ts.URL+path(syncapi.PathHistory, "ws", ws, "project", "app", "name", "A"), tok, nil)
			}
			alHead := call[syncapi.WorkspaceDetail](t, "GET", ts.URL+path(syncapi.PathWorkspace, "ws", ws), tok, nil).AllowlistVersion
			for _, r := range []struct {
				method, url string
				body        any
				want        int
			}{
				{"POST", path(syncapi.PathPush, "ws", ws, "project", "app"), pushReq(change(t, "A", head)), c.push},
				{"POST", path(syncapi.PathProjects, "ws", ws), syncapi.CreateProjectRequest{Name: "p-" + c.role, WrappedKey: []byte{1}, KeyVersion: 1}, c.project},
				{"POST", path(syncapi.PathAllowlist, "ws", ws), syncapi.AllowlistPushRequest{BaseVersion: alHead, Document: []byte{1}}, c.allowlistPut},
				{"GET", path(syncapi.PathInvites, "ws", ws), nil, c.invites},
				{"POST", path(syncapi.PathInvites, "ws", ws), inviteReq(t, "new-"+c.role+"@example.com", RoleReader), c.invites},
				{"POST", path(syncapi.PathInviteComplete, "ws", ws, "invite", pending.ID), syncapi.CompleteInviteRequest{Record: []byte{1}, SealedKey: []byte{1}}, map[int]int{403: 403, 200: 409}[c.invites]},
			} {
				status, raw := do(t, r.method, ts.URL+r.url, tok, r.body)
				if status != r.want {
					t.Errorf("%s %s %s: %d %s, want %d", c.role, r.method, r.url, status, raw, r.want)
				}
				if status == 403 && !strings.Contains(string(raw), `"code":"denied"`) {
					t.Errorf("%s %s %s: 403 without code denied: %s", c.role, r.method, r.url, raw)
				}
			}
		}
		// The admin-invited admin could cancel: last, so the pending
		// invite stayed for the rows above.
		if status, raw := do(t, "DELETE", ts.URL+path(syncapi.PathInvite, "ws", ws, "invite", pending.ID), admin.Session.AccessToken, nil); status != 204 {
			t.Fatalf("cancel: %d %s", status, raw)
		}
	})
}
