package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// TestAccountLifecycle walks one account through create, prelogin, login
// on a second device, refresh with rotation, reuse of a rotated refresh
// token (which revokes the device), logout and revoking a device, on both
// backends.
func TestAccountLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		u := ts.signup(t, "Alice@Example.com ")
		if u.Account.Email != "alice@example.com" || u.Account.ID == "" || u.Session.DeviceID == "" {
			t.Fatalf("account = %+v", u.Account)
		}
		if !strings.HasPrefix(u.Session.AccessToken, AccessPrefix) || !strings.HasPrefix(u.Session.RefreshToken, RefreshPrefix) {
			t.Fatalf("token prefixes: %q %q", u.Session.AccessToken[:6], u.Session.RefreshToken[:6])
		}
		// Prelogin returns the parameters the account registered.
		pre := call[syncapi.PreloginResponse](t, "POST", ts.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: "alice@example.com"})
		if !bytes.Equal(pre.KDF.Salt, u.Account.KDF.Salt) {
			t.Fatal("prelogin salt differs from the account's")
		}
		acct := call[syncapi.Account](t, "GET", ts.URL+syncapi.PathAccount, u.Session.AccessToken, nil)
		if acct.ID != u.Account.ID || !bytes.Equal(acct.WrappedPrivateKeys, u.Account.WrappedPrivateKeys) {
			t.Fatalf("GET account = %+v", acct)
		}
		// A second device.
		second := ts.login(t, u, "desktop")
		if second.Session.DeviceID == u.Session.DeviceID {
			t.Fatal("login reused the first device")
		}
		devs := call[syncapi.DeviceList](t, "GET", ts.URL+syncapi.PathDevices, second.Session.AccessToken, nil)
		if len(devs.Devices) != 2 || devs.Devices[0].Current || !devs.Devices[1].Current || devs.Devices[1].Name != "desktop" {
			t.Fatalf("devices = %+v", devs.Devices)
		}
		// Refresh rotates both tokens; the old access token stops working.
		fresh := call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: u.Session.RefreshToken})
		if fresh.Session.DeviceID != u.Session.DeviceID || fresh.Session.RefreshToken == u.Session.RefreshToken || fresh.Account.ID != u.Account.ID {
			t.Fatalf("refresh = %+v", fresh.Session)
		}
		apiError(t, "GET", ts.URL+syncapi.PathAccount, u.Session.AccessToken, nil, 401, "unauthorized")
		call[syncapi.Account](t, "GET", ts.URL+syncapi.PathAccount, fresh.Session.AccessToken, nil)
		// Reusing the rotated refresh token revokes the device: the new
		// tokens die with it.
		e := apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: u.Session.RefreshToken}, 401, "unauthorized")
		if !strings.Contains(e.Message, "already used") {
			t.Fatalf("reuse message = %q", e.Message)
		}
		apiError(t, "GET", ts.URL+syncapi.PathAccount, fresh.Session.AccessToken, nil, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: fresh.Session.RefreshToken}, 401, "unauthorized")
		devs = call[syncapi.DeviceList](t, "GET", ts.URL+syncapi.PathDevices, second.Session.AccessToken, nil)
		if devs.Devices[0].RevokedAt == nil || devs.Devices[1].RevokedAt != nil {
			t.Fatalf("after reuse: devices = %+v", devs.Devices)
		}
		// Revoke a device from another one: its sessions end.
		third := ts.login(t, u, "ci")
		if status, _ := do(t, "DELETE", ts.URL+path(syncapi.PathDevice, "id", third.Session.DeviceID), second.Session.AccessToken, nil); status != http.StatusNoContent {
			t.Fatalf("revoke: status %d", status)
		}
		apiError(t, "GET", ts.URL+syncapi.PathAccount, third.Session.AccessToken, nil, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: third.Session.RefreshToken}, 401, "unauthorized")
		apiError(t, "DELETE", ts.URL+path(syncapi.PathDevice, "id", "0123456789abcdef0123456789abcdef"), second.Session.AccessToken, nil, 404, "not_found")
		// Logout ends this device's session.
		if status, _ := do(t, "DELETE", ts.URL+syncapi.PathSessionCurrent, second.Session.AccessToken, nil); status != http.StatusNoContent {
			t.Fatalf("logout: status %d", status)
		}
		apiError(t, "GET", ts.URL+syncapi.PathAccount, second.Session.AccessToken, nil, 401, "unauthorized")
		apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: second.Session.RefreshToken}, 401, "unauthorized")
		// The account itself still works.
		ts.login(t, u, "again")
		// A second account with the same email is a conflict.
		apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "alice@example.com", randomBytes(t, 32)), 409, "conflict")
	})
}

// TestLoginFailures: a wrong auth key and an unknown email get the same
// answer; prelogin for an unknown email has the shape of a real answer,
// stays the same across calls, and differs between emails.
func TestLoginFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		ts := startServer(t, spec, Options{})
		u := ts.signup(t, "bob@example.com")
		wrong := apiError(t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: u.Email, AuthKey: randomBytes(t, 32), DeviceName: "x"}, 401, "unauthorized")
		unknown := apiError(t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: "nobody@example.com", AuthKey: randomBytes(t, 32), DeviceName: "x"}, 401, "unauthorized")
		if wrong.Code != unknown.Code || wrong.Message != unknown.Message {
			t.Fatalf("wrong key %+v != unknown email %+v", wrong, unknown)
		}
		_, real := do(t, "POST", ts.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: u.Email})
		_, fake1 := do(t, "POST", ts.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: "nobody@example.com"})
		_, fake2 := do(t, "POST", ts.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: "NOBODY@example.com"})
		_, other := do(t, "POST", ts.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: "someone@example.com"})
		if !bytes.Equal(fake1, fake2) {
			t.Fatalf("prelogin for one unknown email changed: %s vs %s", fake1, fake2)
		}
		if bytes.Equal(fake1, other) {
			t.Fatal("prelogin gives two unknown emails the same salt")
		}
		if shape(t, real) != shape(t, fake1) || len(real) != len(fake1) {
			t.Fatalf("prelogin shapes differ: %s vs %s", real, fake1)
		}
		// A restarted server (new process, same database) answers the same:
		// the key lives in the database.
		ts.Shutdown(t)
		ts2 := startServer(t, spec, Options{})
		if _, again := do(t, "POST", ts2.URL+syncapi.PathPrelogin, "", syncapi.PreloginRequest{Email: "nobody@example.com"}); !bytes.Equal(again, fake1) {
			t.Fatalf("prelogin after restart: %s vs %s", again, fake1)
		}
	})
}

// shape is the sorted key structure of a JSON document, values dropped.
func shape(t *testing.T, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var walk func(v any) string
	walk = func(v any) string {
		m, ok := v.(map[string]any)
		if !ok {
			return "."
		}
		var parts []string
		for k, c := range m {
			parts = append(parts, k+":"+walk(c))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ",") + "}"
	}
	return walk(v)
}

// TestExpiry: an access token dies after 15 minutes and a refresh token
// after 30 days, by the server's clock.
func TestExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, spec string) {
		clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		ts := startServer(t, spec, Options{Now: clk.Now})
		u := ts.signup(t, "carol@example.com")
		if !u.Session.AccessExpiresAt.Equal(clk.Now().Add(15*time.Minute)) || !u.Session.RefreshExpiresAt.Equal(clk.Now().Add(30*24*time.Hour)) {
			t.Fatalf("expiries %v %v", u.Session.AccessExpiresAt, u.Session.RefreshExpiresAt)
		}
		clk.Add(15*time.Minute - time.Second)
		call[syncapi.Account](t, "GET", ts.URL+syncapi.PathAccount, u.Session.AccessToken, nil)
		clk.Add(time.Second)
		apiError(t, "GET", ts.URL+syncapi.PathAccount, u.Session.AccessToken, nil, 401, "unauthorized")
		fresh := call[syncapi.SessionResponse](t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: u.Session.RefreshToken})
		call[syncapi.Account](t, "GET", ts.URL+syncapi.PathAccount, fresh.Session.AccessToken, nil)
		clk.Add(30 * 24 * time.Hour)
		apiError(t, "POST", ts.URL+syncapi.PathRefresh, "", syncapi.RefreshRequest{RefreshToken: fresh.Session.RefreshToken}, 401, "unauthorized")
	})
}

// TestSignupClosed: a closed server takes its first account and refuses
// the next, except an email with an open invite (in any case); a canceled
// invite lets no one in.
func TestSignupClosed(t *testing.T) {
	ts := startServer(t, backends()[0].spec(t), Options{Signup: "closed"})
	first := ts.signup(t, "first@example.com")
	apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "second@example.com", randomBytes(t, 32)), 403, "denied")
	ws := ts.workspace(t, first, "app")
	canceled := ts.invite(t, first, ws, "second@example.com", RoleMember)
	do(t, "DELETE", ts.URL+path(syncapi.PathInvite, "ws", ws, "invite", canceled.ID), first.Session.AccessToken, nil)
	apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "second@example.com", randomBytes(t, 32)), 403, "denied")
	ts.invite(t, first, ws, "Third@Example.com", RoleReader)
	ts.signup(t, "third@EXAMPLE.com")
	apiError(t, "POST", ts.URL+syncapi.PathAccounts, "", createAccountRequest(t, "fourth@example.com", randomBytes(t, 32)), 403, "denied")
}

// TestRateLimit: a brute force on one account is cut off by the per-account
// bucket, one from one IP on many accounts by the per-IP bucket; both
// answer 429 rate_limited with Retry-After and log a line saying which.
func TestRateLimit(t *testing.T) {
	ts := startServer(t, backends()[0].spec(t), Options{AccountLimit: Limit{Burst: 3, Every: time.Hour}, IPLimit: Limit{Burst: 7, Every: time.Hour}, LimitLoopback: true})
	// Signing up takes a token from both buckets; a refused attempt still
	// takes one from the IP's.
	u := ts.signup(t, "dave@example.com")
	guess := func(email string) (int, http.Header) {
		raw, _ := json.Marshal(syncapi.LoginRequest{Email: email, AuthKey: randomBytes(t, 32), DeviceName: "x"})
		resp, err := http.Post(ts.URL+syncapi.PathSessions, "application/json", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for i := 0; i < 2; i++ {
		if status, _ := guess(u.Email); status != 401 {
			t.Fatalf("guess %d: status %d", i, status)
		}
	}
	status, hdr := guess(u.Email)
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("3rd guess: status %d, Retry-After %q", status, hdr.Get("Retry-After"))
	}
	e := apiError(t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: u.Email, AuthKey: u.AuthKey, DeviceName: "x"}, 429, "rate_limited")
	if e.Message == "" {
		t.Fatal("empty message")
	}
	// Other accounts from the same IP until the IP's bucket is empty.
	for _, email := range []string{"e1@example.com", "e2@example.com"} {
		if status, _ := guess(email); status != 401 {
			t.Fatalf("%s: status %d", email, status)
		}
	}
	if status, _ := guess("e3@example.com"); status != http.StatusTooManyRequests {
		t.Fatalf("IP bucket: status %d", status)
	}
	scopes := map[string]bool{}
	for _, l := range ts.Log.lines(t) {
		if l["msg"] == "rate limited" {
			scopes[l["scope"].(string)] = true
		}
	}
	if !scopes["account"] || !scopes["ip"] {
		t.Fatalf("rate-limit log lines by scope: %v\n%s", scopes, ts.Log.String())
	}
}

// TestLoopbackExemptFromIPLimit: by default clients on loopback (all of
// them, behind a local TLS proxy) share no IP bucket; each account still
// has its own.
func TestLoopbackExemptFromIPLimit(t *testing.T) {
	ts := startServer(t, backends()[0].spec(t), Options{AccountLimit: Limit{Burst: 2, Every: time.Hour}, IPLimit: Limit{Burst: 2, Every: time.Hour}})
	for i := 0; i < 4; i++ {
		ts.signup(t, fmt.Sprintf("user%d@example.com", i))
	}
	u := ts.signup(t, "kim@example.com")
	ts.login(t, u, "second")
	apiError(t, "POST", ts.URL+syncapi.PathSessions, "", syncapi.LoginRequest{Email: u.Email, AuthKey: u.AuthKey, DeviceName: "x"}, 429, "rate_limited")
}

func TestLimiterRefills(t *testing.T) {
	clk := &clock{t: time.Unix(0, 0)}
	l := newLimiter(Limit{Burst: 2, Every: time.Second}, clk.Now)
	for i, want := range []bool{true, true, false} {
		if ok, _ := l.allow("k"); ok != want {
			t.Fatalf("attempt %d: %v", i, ok)
		}
	}
	if _, wait := l.allow("k"); wait <= 0 || wait > time.Second {
		t.Fatalf("wait %v", wait)
	}
	clk.Add(time.Second)
	if ok, _ := l.allow("k"); !ok {
		t.Fatal("no refill after a second")
	}
	if ok, _ := l.allow("other"); !ok {
		t.Fatal("buckets are shared between keys")
	}
}

// TestClosedSignupRace: first signups racing on two replicas of one
// PostgreSQL database create exactly one account.
func TestClosedSignupRace(t *testing.T) {
	spec := pgDatabase(t)
	replicas := []*testServer{startServer(t, spec, Options{Signup: "closed"}), startServer(t, spec, Options{Signup: "closed"})}
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i], _ = do(t, "POST", replicas[i%2].URL+syncapi.PathAccounts, "", createAccountRequest(t, fmt.Sprintf("first%d@example.com", i), randomBytes(t, 32)))
		}(i)
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		switch s {
		case 200:
			created++
		case 403:
		default:
			t.Fatalf("status %d", s)
		}
	}
	if created != 1 {
		t.Fatalf("%d first accounts created (%v)", created, statuses)
	}
}
