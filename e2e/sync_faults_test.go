package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// indexBytes is a device's index.json, to prove a failed command changed
// nothing.
func indexBytes(t *testing.T, v *Vault) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v.Home, "index.json"))
	must(t, err)
	return b
}

// publishedPair is two signed-in devices sharing workspace acme, where B
// has pulled STRIPE_KEY once.
func publishedPair(t *testing.T, backend string) (*SyncServer, *SyncAccount, *Vault, *Vault) {
	t.Helper()
	srv, acct, a, b := TwoDevices(t, backend)
	a.Run("workspace", "create", "acme", "--switch").OK(t)
	a.RunIn([]byte(randomValue(t, "sk_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	a.Run("workspace", "publish").OK(t)
	b.Run("workspace", "switch", "acme").OK(t)
	b.Run("secrets", "pull").OK(t)
	return srv, acct, a, b
}

// TestSyncServerDown: with the server stopped every remote command fails
// `unavailable` and changes nothing; status and workspace list still work.
func TestSyncServerDown(t *testing.T) { forSyncBackends(t, runSyncServerDown) }

func runSyncServerDown(t *testing.T, backend string) {
	srv, _, a, b := publishedPair(t, backend)
	a.RunIn([]byte(randomValue(t, "sk_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	a.Run("secrets", "push").OK(t)
	srv.Stop()
	for _, d := range []*Vault{a, b} {
		before := indexBytes(t, d)
		for _, args := range [][]string{
			{"secrets", "diff"}, {"secrets", "pull"}, {"secrets", "push"}, {"secrets", "history", "STRIPE_KEY"},
			{"status", "--check"}, {"project", "create", "web"},
		} {
			e := d.Run(args...).ErrorCode(t, "unavailable", 7)
			if args[0] == "project" && args[1] == "create" {
				// The local project stays; the hint says how to finish.
				if !strings.Contains(e["hint"].(string), "project link web") {
					t.Errorf("project create hint: %v", e)
				}
				d.Run("project", "delete", "web").OK(t)
			}
		}
		if after := indexBytes(t, d); !bytes.Equal(before, after) && !onlyRevision(before, after) {
			t.Errorf("a failed command changed the index:\nbefore %s\nafter  %s", before, after)
		}
		l := d.Run("workspace", "list").OK(t)
		if !strings.Contains(field(t, l, "remote_unavailable"), "unavailable") {
			t.Errorf("workspace list without a server: %s", l.Stdout)
		}
		d.Run("status").OK(t)
	}
	// Back up: both devices carry on where they were.
	srv.Start()
	b.Run("secrets", "pull").OK(t)
	if st := secretStates(t, b.Run("secrets", "diff")); st["STRIPE_KEY"] != "in_sync" {
		t.Errorf("after the server came back: %v", st)
	}
}

// onlyRevision: the two indexes differ at most in their revision counter
// (project create + delete bumps it and leaves the rest as it was).
func onlyRevision(a, b []byte) bool {
	strip := func(x []byte) string {
		s := string(x)
		i := strings.Index(s, `"revision":`)
		if i < 0 {
			return s
		}
		j := strings.IndexByte(s[i:], ',')
		return s[:i] + s[i+j:]
	}
	return strip(a) == strip(b)
}

// TestSyncSessionRevoked: a device whose session the account revoked gets
// `unauthorized` with the login hint on every remote command, and nothing
// changes; a second login brings it back.
func TestSyncSessionRevoked(t *testing.T) { forSyncBackends(t, runSyncSessionRevoked) }

func runSyncSessionRevoked(t *testing.T, backend string) {
	_, acct, a, b := publishedPair(t, backend)
	id := field(t, b.Run("account", "show").OK(t), "device_id")
	a.Run("account", "devices", "--revoke", strings.Trim(id, `"`)).OK(t)
	before := indexBytes(t, b)
	for _, args := range [][]string{{"secrets", "diff"}, {"secrets", "pull"}, {"secrets", "push"}, {"status", "--check"}} {
		e := b.Run(args...).ErrorCode(t, "unauthorized", 11)
		if !strings.Contains(e["hint"].(string), "agentsecrets login") {
			t.Errorf("%v: hint %v", args, e["hint"])
		}
	}
	if !bytes.Equal(before, indexBytes(t, b)) && !onlyRevision(before, indexBytes(t, b)) {
		t.Error("a refused command changed the index")
	}
	acct.Login(t, b, "device-b-again").OK(t)
	b.Run("secrets", "diff").OK(t)

	// Signed out: what would need the server is refused before anything
	// is created locally.
	b.Run("logout").OK(t)
	before = indexBytes(t, b)
	b.Run("workspace", "create", "other", "--remote").ErrorCode(t, "unauthorized", 11)
	b.Run("project", "create", "web").ErrorCode(t, "unauthorized", 11)
	b.Run("secrets", "pull").ErrorCode(t, "unauthorized", 11)
	if !bytes.Equal(before, indexBytes(t, b)) {
		t.Error("a refused command changed the index")
	}
	b.Run("status").OK(t)
}

// TestSyncUnknownNames: unknown workspaces, projects and secrets are
// not_found with a hint, locally and on the server; a local-only
// workspace is a usage error naming `workspace publish`.
func TestSyncUnknownNames(t *testing.T) { forSyncBackends(t, runSyncUnknownNames) }

func runSyncUnknownNames(t *testing.T, backend string) {
	_, _, a, b := publishedPair(t, backend)
	b.Run("workspace", "switch", "nope").ErrorCode(t, "not_found", 3)
	b.Run("project", "use", "nope").ErrorCode(t, "not_found", 3)
	b.Run("secrets", "diff", "--project", "nope").ErrorCode(t, "not_found", 3)
	b.Run("secrets", "diff", "NOPE").ErrorCode(t, "not_found", 3)
	b.Run("secrets", "history", "NOPE").ErrorCode(t, "not_found", 3)
	e := a.Run("secrets", "diff", "--workspace", "default").ErrorCode(t, "usage", 2)
	if !strings.Contains(e["hint"].(string), "workspace publish") {
		t.Errorf("local workspace hint: %v", e)
	}
	// workspace create --remote publishes at once; the other device sees it.
	r := a.Run("workspace", "create", "team", "--remote").OK(t)
	if !strings.Contains(string(r.Stdout), `"location":"remote"`) {
		t.Errorf("workspace create --remote: %s", r.Stdout)
	}
	if l := b.Run("workspace", "list").OK(t); !strings.Contains(string(l.Stdout), `"name":"team"`) {
		t.Errorf("B does not see the new remote workspace: %s", l.Stdout)
	}
	// B uses it and pushes before any pull: its empty allowlist is no change.
	b.Run("workspace", "switch", "team").OK(t)
	b.RunIn([]byte(randomValue(t, "sk_")), "secrets", "set", "TEAM_KEY", "--from-stdin").OK(t)
	if r := b.Run("secrets", "push").OK(t); field(t, r, "synced") != "1" || strings.Contains(string(r.Stdout), "allowlist_version") {
		t.Errorf("B's first push: %s", r.Stdout)
	}
	// Publishing an already remote workspace only finishes what is missing.
	r = b.Run("workspace", "publish").OK(t)
	if field(t, r, "created") != "false" {
		t.Errorf("republish: %s", r.Stdout)
	}
}

// TestSyncPushRace: two devices push a change of the same secret at
// once; the server's transaction lets exactly one through and the other
// gets a conflict naming the secret. History gains one version.
func TestSyncPushRace(t *testing.T) { forSyncBackends(t, runSyncPushRace) }

func runSyncPushRace(t *testing.T, backend string) {
	srv, _, a, b := publishedPair(t, backend)
	for round := 0; round < 4; round++ {
		name := fmt.Sprintf("RACE_%d", round)
		a.RunIn([]byte(randomValue(t, "sk_a_")), "secrets", "set", name, "--from-stdin").OK(t)
		b.RunIn([]byte(randomValue(t, "sk_b_")), "secrets", "set", name, "--from-stdin").OK(t)
		results := runAll(t, []*Vault{a, b}, "secrets", "push", name)
		ok, conflicts := 0, 0
		for _, r := range results {
			switch r.Code {
			case 0:
				ok++
			case 6:
				conflicts++
				if !strings.Contains(string(r.Stdout), name) || !strings.Contains(string(r.Stdout), "secrets diff") {
					t.Errorf("conflict does not name the secret or the next step: %s", r.Stdout)
				}
			default:
				t.Fatalf("push: exit %d: %s %s", r.Code, r.Stdout, r.Stderr)
			}
		}
		if ok != 1 || conflicts != 1 {
			t.Fatalf("round %d: %d pushes succeeded, %d conflicted", round, ok, conflicts)
		}
		hist := a.Run("secrets", "history", name).OK(t)
		if n := strings.Count(string(hist.Stdout), `"version":`); n != 1 {
			t.Fatalf("round %d: %d versions stored, want 1: %s", round, n, hist.Stdout)
		}
	}
	// How many losers the server itself refused (the others saw the
	// winner's version already in their diff): both paths are conflicts.
	t.Logf("server-side push conflicts: %d of 4", strings.Count(string(srv.Logs.Bytes()), `/push","status":409`))
}

// TestSyncPullKilled: a pull killed with SIGKILL at any moment leaves each
// secret at its old or its new version: doctor is healthy at once, every
// secret still reads, and the next pull completes.
func TestSyncPullKilled(t *testing.T) { forSyncBackends(t, runSyncPullKilled) }

func runSyncPullKilled(t *testing.T, backend string) {
	_, _, a, b := TwoDevices(t, backend)
	a.Run("workspace", "create", "acme", "--switch").OK(t)
	const n = 40
	write := func(round int) {
		var env strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&env, "KEY_%02d=%s\n", i, randomValue(t, fmt.Sprintf("r%d_", round)))
		}
		p := filepath.Join(a.Dir, "round.env")
		must(t, os.WriteFile(p, []byte(env.String()), 0o600))
		a.Run("secrets", "import", p).OK(t)
		must(t, os.Remove(p))
	}
	write(0)
	a.Run("workspace", "publish").OK(t)
	b.Run("workspace", "switch", "acme").OK(t)
	first := b.Run("secrets", "pull").OK(t)
	if got := strings.Count(string(first.Stdout), `"action":"created"`); got != n || field(t, first, "synced") != fmt.Sprint(n) {
		t.Fatalf("first pull reports %d created of %d: %s", got, n, first.Stdout)
	}
	killed := 0
	for round, delay := range []time.Duration{20, 60, 100, 150, 200, 300, 450, 700} {
		write(round + 1)
		a.Run("secrets", "push").OK(t)
		cmd := exec.Command(binary, "secrets", "pull")
		cmd.Env, cmd.Dir = b.Env(), b.Dir
		must(t, cmd.Start())
		time.Sleep(delay * time.Millisecond)
		if cmd.Process.Signal(syscall.SIGKILL) == nil {
			killed++
		}
		cmd.Wait()
		doc := b.Run("doctor").OK(t)
		if field(t, doc, "healthy") != "true" {
			t.Fatalf("round %d (killed after %v): doctor: %s", round, delay*time.Millisecond, doc.Stdout)
		}
		b.Run("secrets", "list").OK(t)
	}
	if killed == 0 {
		t.Fatal("no pull was killed: the test proved nothing")
	}
	b.Run("secrets", "pull").OK(t)
	st := secretStates(t, b.Run("secrets", "diff"))
	for name, s := range st {
		if s != "in_sync" {
			t.Errorf("%s is %s after the final pull", name, s)
		}
	}
	if len(st) != n {
		t.Errorf("%d names after the final pull, want %d", len(st), n)
	}
	if doc := b.Run("doctor").OK(t); field(t, doc, "healthy") != "true" {
		t.Fatalf("doctor after the final pull: %s", doc.Stdout)
	}
}

// TestSyncBothSides: what both devices did alike settles without a
// conflict: a project both created is one project (the second adopts the
// first's key), and a secret both deleted stays deleted and unlisted.
func TestSyncBothSides(t *testing.T) { forSyncBackends(t, runSyncBothSides) }

func runSyncBothSides(t *testing.T, backend string) {
	_, _, a, b := publishedPair(t, backend)
	a.Run("project", "create", "web").OK(t)
	r := b.Run("project", "create", "web").OK(t)
	if !strings.Contains(string(r.Stdout), `"created":true`) {
		t.Errorf("B's project create: %s", r.Stdout)
	}
	b.Run("secrets", "diff", "--project", "web").OK(t)

	a.Run("secrets", "delete", "STRIPE_KEY", "--yes").OK(t)
	a.Run("secrets", "push").OK(t)
	b.Run("secrets", "delete", "STRIPE_KEY", "--yes").OK(t)
	if st := secretStates(t, b.Run("secrets", "diff")); len(st) != 0 {
		t.Errorf("a deletion made on both sides is listed: %v", st)
	}
	p := b.Run("secrets", "pull").OK(t)
	if field(t, p, "synced") != "0" {
		t.Errorf("pull after both deleted: %s", p.Stdout)
	}
	if r := b.Run("secrets", "push").OK(t); field(t, r, "synced") != "0" {
		t.Errorf("push after both deleted: %s", r.Stdout)
	}
	idx := string(indexBytes(t, b))
	if !strings.Contains(idx, `"STRIPE_KEY":{"version":2`) || !strings.Contains(idx, `"deleted":true`) {
		t.Errorf("B's tombstone does not match the server's deletion: %s", idx)
	}
}

// forSyncBackends runs a sync test on the file backend and on the real
// Secret Service (skipped without a D-Bus session, failed under
// AGENTSECRETS_TEST_REQUIRE_KEYCHAIN=1).
func forSyncBackends(t *testing.T, run func(t *testing.T, backend string)) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) { run(t, backend) })
	}
}

// TestSyncForcePTY: a human on a terminal settles a conflict either way.
// push --force builds on the server's head (the other device's pull
// verifies the chain through it); pull --force takes the server's version
// over the local change. A wrong confirmation changes nothing.
func TestSyncForcePTY(t *testing.T) {
	_, _, a, b := publishedPair(t, "file")
	conflict := func() {
		a.RunIn([]byte(randomValue(t, "sk_a_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
		a.Run("secrets", "push").OK(t)
		b.RunIn([]byte(randomValue(t, "sk_b_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
		if st := secretStates(t, b.Run("secrets", "diff")); st["STRIPE_KEY"] != "conflict" {
			t.Fatalf("no conflict: %v", st)
		}
	}
	conflict()
	before := indexBytes(t, b)
	r, _ := ptyRun(t, b.Env(), b.Dir, []ptyStep{{"Type force to confirm:", "no"}}, "secrets", "push", "--force")
	r.ErrorCode(t, "denied", 4)
	if !bytes.Equal(before, indexBytes(t, b)) {
		t.Error("an unconfirmed push --force changed the index")
	}
	r, tty := ptyRun(t, b.Env(), b.Dir, []ptyStep{{"Type force to confirm:", "force"}}, "secrets", "push", "--force")
	if !strings.Contains(string(r.OK(t).Stdout), `"action":"pushed"`) || !strings.Contains(tty, "overwrites newer content on the server") {
		t.Errorf("push --force: %s / %q", r.Stdout, tty)
	}
	if st := secretStates(t, a.Run("secrets", "diff")); st["STRIPE_KEY"] != "remote_newer" {
		t.Fatalf("A after B's forced push: %v", st)
	}
	a.Run("secrets", "pull").OK(t) // verifies the chain through B's version

	conflict()
	r, _ = ptyRun(t, b.Env(), b.Dir, []ptyStep{{"Type force to confirm:", "force"}}, "secrets", "pull", "--force")
	if !strings.Contains(string(r.OK(t).Stdout), `"action":"updated"`) {
		t.Errorf("pull --force: %s", r.Stdout)
	}
	for _, d := range []*Vault{a, b} {
		if st := secretStates(t, d.Run("secrets", "diff")); st["STRIPE_KEY"] != "in_sync" {
			t.Errorf("after pull --force: %v", st)
		}
	}
}
