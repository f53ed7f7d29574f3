package e2e

import (
	"crypto/subtle"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// tokenUpstream is a real HTTP server on 127.0.0.1 that answers 200 only
// to the bearer token it currently expects, and never echoes it.
type tokenUpstream struct {
	*httptest.Server
	mu   sync.Mutex
	want string
}

func newTokenUpstream(t *testing.T) *tokenUpstream {
	u := &tokenUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		want := "Bearer " + u.want
		u.mu.Unlock()
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			http.Error(w, `{"error":"bad token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *tokenUpstream) expect(v []byte) {
	u.mu.Lock()
	u.want = string(v)
	u.mu.Unlock()
}

func (u *tokenUpstream) hostport() string {
	_, port, _ := net.SplitHostPort(u.Listener.Addr().String())
	return "127.0.0.1:" + port
}

// syncRun records every command of both devices for the leak scan.
type syncRun struct {
	t        *testing.T
	outputs  []*Result
	canaries [][]byte
}

func (s *syncRun) run(v *Vault, args ...string) *Result {
	s.t.Helper()
	r := v.Run(args...)
	s.outputs = append(s.outputs, r)
	return r
}

func (s *syncRun) runIn(v *Vault, stdin []byte, args ...string) *Result {
	s.t.Helper()
	r := v.RunIn(stdin, args...)
	s.outputs = append(s.outputs, r)
	return r
}

func (s *syncRun) canary(label string) []byte {
	c := newCanary(s.t, label, "")
	s.canaries = append(s.canaries, c)
	return c
}

// scan checks every output, every file under the devices' roots (index,
// config, audit log, vault.enc as ciphertext), the server's database
// files and its log, for every canary in every encoding.
func (s *syncRun) scan(srv *SyncServer, devices ...*Vault) {
	s.t.Helper()
	for _, r := range s.outputs {
		where := "agentsecrets " + strings.Join(r.Args, " ")
		assertNoLeak(s.t, "stdout of "+where, r.Stdout, s.canaries)
		assertNoLeak(s.t, "stderr of "+where, r.Stderr, s.canaries)
	}
	roots := []string{filepath.Dir(srv.Home)}
	for _, d := range devices {
		roots = append(roots, filepath.Dir(d.Home))
	}
	files := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			assertNoLeak(s.t, "file "+p, b, s.canaries)
			return nil
		})
		if err != nil {
			s.t.Errorf("walk %s: %v", root, err)
		}
	}
	if srv.Path != "" {
		if _, err := os.Stat(srv.Path); err != nil {
			s.t.Errorf("the server's SQLite file was not scanned: %v", err)
		}
	}
	assertNoLeak(s.t, "the server's log", srv.Logs.Bytes(), s.canaries)
	s.t.Logf("scanned %d outputs, %d files and the server log for %d canaries", 2*len(s.outputs), files, len(s.canaries))
}

// TestSyncOperatorFlow is the operator and onboarding loop on two devices
// of one account against a real server: A creates, sets and publishes; B
// logs in, switches, uses, pulls, lists and calls an upstream with the
// pulled secret; A changes it, B sees the drift, diffs, pulls; both change
// it and get a conflict. It runs on SQLite and on PostgreSQL, with every
// request going through a recording proxy. No value reaches any output,
// file, HTTP request or response, the server's database or its log.
func TestSyncOperatorFlow(t *testing.T) {
	for _, c := range []struct{ backend, db string }{
		{"file", dbSQLite}, {"keychain", dbSQLite}, {"keychain", dbPostgres},
	} {
		t.Run(c.backend+"/"+c.db, func(t *testing.T) { runSyncOperatorFlow(t, c.backend, c.db) })
	}
}

func runSyncOperatorFlow(t *testing.T, backend, dbKind string) {
	if backend == "keychain" {
		requireKeychain(t)
	}
	db := NewSyncDB(t, dbKind)
	srv := StartSyncServer(t, db.Spec)
	traffic := RecordTraffic(t, srv)
	acct := NewSyncAccount(t, srv, backend)
	a, b := acct.First, acct.NewDevice(t, backend, "device-b")
	s := &syncRun{t: t}
	up := newTokenUpstream(t)
	v1 := s.canary("STRIPE_KEY.v1")
	up.expect(v1)

	// Device A: a local workspace with policy and a secret, then published.
	s.run(a, "workspace", "create", "acme", "--switch").OK(t)
	s.run(a, "workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", a.AdminFile).OK(t)
	s.runIn(a, v1, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.run(a, "secrets", "bind", "STRIPE_KEY", up.hostport(), "--passphrase-file", a.AdminFile).OK(t)
	pub := s.run(a, "workspace", "publish").OK(t)
	if got := field(t, pub, "created"); got != "true" {
		t.Fatalf("publish: %s", pub.Stdout)
	}
	s.runIn(a, s.canary("PAYSTACK.local"), "secrets", "set", "PAYSTACK_TEST_KEY", "--from-stdin").OK(t)
	if st := secretStates(t, s.run(a, "secrets", "diff")); st["STRIPE_KEY"] != "in_sync" || st["PAYSTACK_TEST_KEY"] != "local_only" {
		t.Fatalf("A's diff after publish: %v", st)
	}
	txt := s.run(a, "secrets", "diff", "--format", "text").OK(t)
	if !strings.Contains(string(txt.Stdout), "LOCAL ONLY: PAYSTACK_TEST_KEY") {
		t.Errorf("text diff: %s", txt.Stdout)
	}

	// Device B: the remote workspace shows up, and is fetched on first use.
	list := s.run(b, "workspace", "list").OK(t)
	if !strings.Contains(string(list.Stdout), `"name":"acme"`) || !strings.Contains(string(list.Stdout), `"remote_only"`) {
		t.Fatalf("B's workspace list: %s", list.Stdout)
	}
	if got := field(t, s.run(b, "workspace", "switch", "acme").OK(t), "fetched"); got != "true" {
		t.Errorf("workspace switch did not fetch")
	}
	s.run(b, "project", "use", "default").OK(t)
	if st := secretStates(t, s.run(b, "secrets", "diff")); st["STRIPE_KEY"] != "remote_only" {
		t.Fatalf("B's diff before the first pull: %v", st)
	}
	pull := s.run(b, "secrets", "pull", "--format", "text").OK(t)
	if !strings.Contains(string(pull.Stdout), "Synced 1 secrets") {
		t.Errorf("pull text: %s", pull.Stdout)
	}
	ls := s.run(b, "secrets", "list").OK(t)
	if !strings.Contains(string(ls.Stdout), `"name":"STRIPE_KEY"`) || !strings.Contains(string(ls.Stdout), up.hostport()[len("127.0.0.1:"):]) {
		t.Errorf("B's list lacks the pulled secret or its binding: %s", ls.Stdout)
	}
	s.run(b, "call", "--url", up.URL+"/v1/charges", "--bearer", "STRIPE_KEY", "--select", "status").OK(t)
	if logs := s.run(b, "proxy", "logs").OK(t); !strings.Contains(string(logs.Stdout), "STRIPE_KEY") {
		t.Errorf("B's audit lacks the call: %s", logs.Stdout)
	}
	s.run(a, "project", "create", "web").OK(t) // created on the server too
	if got := field(t, s.run(b, "project", "use", "web").OK(t), "fetched"); got != "true" {
		t.Errorf("project use did not fetch the remote project web")
	}
	s.run(b, "project", "use", "default").OK(t)

	// A value-release approval stays on the device that gave it.
	s.run(a, "secrets", "bind", "STRIPE_KEY", "--release", "env", "--passphrase-file", a.AdminFile).OK(t)
	s.run(a, "secrets", "push").OK(t)

	// A changes the value with auto-push on; B sees the drift.
	s.run(a, "project", "link", "--auto-push").OK(t)
	v2 := s.canary("STRIPE_KEY.v2")
	set := s.runIn(a, v2, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	if !strings.Contains(field(t, set, "push"), `"synced":1`) {
		t.Fatalf("auto-push: %s", set.Stdout)
	}
	if st := s.run(b, "status").OK(t); strings.Contains(string(st.Stdout), "remote_newer") {
		t.Errorf("status without --check knew of the change: it made a network call")
	}
	check := s.run(b, "status", "--check", "--format", "text").OK(t)
	if !strings.Contains(string(check.Stdout), "OUT OF SYNC: STRIPE_KEY (remote is newer)") {
		t.Errorf("status --check: %s", check.Stdout)
	}
	if st := s.run(b, "status").OK(t); !strings.Contains(string(st.Stdout), `"remote_newer"`) {
		t.Errorf("status does not show the recorded drift: %s", st.Stdout)
	}
	if st := secretStates(t, s.run(b, "secrets", "diff")); st["STRIPE_KEY"] != "remote_newer" {
		t.Fatalf("B's diff after A's change: %v", st)
	}
	s.run(b, "secrets", "pull").OK(t)
	if rel := field(t, s.run(b, "status").OK(t), "value_release"); rel != "[]" {
		t.Errorf("a release approval travelled to B: %s", rel)
	}
	if st := secretStates(t, s.run(b, "secrets", "diff")); st["STRIPE_KEY"] != "in_sync" {
		t.Fatalf("B's diff after the pull: %v", st)
	}
	up.expect(v2)
	s.run(b, "call", "--url", up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)

	// Both change the same secret to different values: a conflict that
	// neither pull nor push settles alone.
	s.runIn(a, s.canary("STRIPE_KEY.v3a"), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	s.runIn(b, s.canary("STRIPE_KEY.v3b"), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	if st := secretStates(t, s.run(b, "secrets", "diff")); st["STRIPE_KEY"] != "conflict" {
		t.Fatalf("diff after both changed: %v", st)
	}
	e := s.run(b, "secrets", "pull").ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["message"].(string), "STRIPE_KEY") || !strings.Contains(e["hint"].(string), "secrets diff") {
		t.Errorf("pull conflict: %v", e)
	}
	e = s.run(b, "secrets", "push").ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["message"].(string), "STRIPE_KEY") {
		t.Errorf("push conflict: %v", e)
	}
	s.run(b, "secrets", "push", "--force").ErrorCode(t, "approval_required", 5)
	s.run(b, "secrets", "pull", "--force").ErrorCode(t, "approval_required", 5)

	// Both change another secret to the same value: in sync by the keyed
	// fingerprint, without either value shown.
	same := s.canary("SAME.both")
	s.runIn(a, same, "secrets", "set", "SHARED", "--from-stdin").OK(t) // auto-pushed
	s.runIn(b, same, "secrets", "set", "SHARED", "--from-stdin").OK(t)
	if st := secretStates(t, s.run(b, "secrets", "diff", "SHARED")); st["SHARED"] != "in_sync" {
		t.Errorf("same value on both sides: %v", st)
	}

	s.run(b, "secrets", "pull", "SHARED").OK(t) // adopts the common version

	// A deletes a secret and narrows the allowlist; B's pull follows both.
	s.run(a, "secrets", "delete", "SHARED", "--yes").OK(t)
	s.run(a, "workspace", "allowlist", "remove", up.hostport()).OK(t)
	push := s.run(a, "secrets", "push").OK(t)
	if field(t, push, "allowlist_version") != "2" || !strings.Contains(string(push.Stdout), `"action":"deleted"`) {
		t.Errorf("push of a deletion and an allowlist change: %s", push.Stdout)
	}
	d := s.run(b, "secrets", "diff", "SHARED").OK(t)
	if !strings.Contains(string(d.Stdout), `"deleted":"remote"`) || secretStates(t, d)["SHARED"] != "remote_newer" {
		t.Errorf("diff of a remote deletion: %s", d.Stdout)
	}
	s.run(b, "secrets", "pull", "SHARED").OK(t)
	if ls := s.run(b, "secrets", "list").OK(t); strings.Contains(string(ls.Stdout), `"SHARED"`) {
		t.Errorf("SHARED survived its deletion: %s", ls.Stdout)
	}
	if al := s.run(b, "workspace", "allowlist", "list").OK(t); strings.Contains(string(al.Stdout), up.hostport()) {
		t.Errorf("the pulled allowlist still allows the removed host: %s", al.Stdout)
	}
	s.run(b, "call", "--url", up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").ErrorCode(t, "denied", 4)

	hist := s.run(a, "secrets", "history", "STRIPE_KEY").OK(t)
	if !strings.Contains(string(hist.Stdout), acct.Email) || !strings.Contains(string(hist.Stdout), `"version":3`) {
		t.Errorf("history: %s", hist.Stdout)
	}
	for _, d := range []*Vault{a, b} {
		if doc := s.run(d, "doctor").OK(t); field(t, doc, "healthy") != "true" {
			t.Errorf("doctor: %s", doc.Stdout)
		}
	}
	s.scan(srv, a, b)
	s.scanServer(db, traffic)
}
