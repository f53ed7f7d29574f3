package e2e

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// runAll runs the same command on several devices at once and returns
// their results in order.
func runAll(t *testing.T, devs []*Vault, args ...string) []*Result {
	t.Helper()
	results := make([]*Result, len(devs))
	var wg sync.WaitGroup
	for i, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(binary, args...)
			cmd.Env, cmd.Dir = d.Env(), d.Dir
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				code = -1
			}
			results[i] = &Result{Args: args, Stdout: out.Bytes(), Stderr: errb.Bytes(), Code: code}
		}()
	}
	wg.Wait()
	return results
}

// historyLen is how many versions the server holds of name.
func historyLen(t *testing.T, d *Vault, name string) int {
	t.Helper()
	return strings.Count(string(d.Run("secrets", "history", name).OK(t).Stdout), `"version":`)
}

// TestSyncReplicas: two `agentsecrets server` processes on one PostgreSQL
// database behind a round-robin balancer (the recording proxy), so each
// device's consecutive requests alternate between the replicas. Writes
// alternate between the devices and every one reaches the other device
// (no lost update: each pull injects the newest value and history grows
// by exactly one per push); two pushes racing, one through each replica,
// let exactly one through and give the other a `conflict` naming the
// secret.
func TestSyncReplicas(t *testing.T) {
	db := NewSyncDB(t, dbPostgres)
	r1 := StartSyncServer(t, db.Spec)
	r2 := StartSyncServer(t, db.Spec)
	lb := NewTrafficProxy(t, r1.URL, r2.URL)
	r1.URL = lb.URL // accounts and devices use the balancer
	acct := NewSyncAccount(t, r1, "file")
	a, b := acct.First, acct.NewDevice(t, "file", "device-b")
	up := newTokenUpstream(t)

	a.Run("workspace", "create", "acme", "--switch").OK(t)
	a.Run("workspace", "allowlist", "add", up.hostport(), "--allow-http", "--allow-private", "--passphrase-file", a.AdminFile).OK(t)
	a.RunIn([]byte(randomValue(t, "sk_")), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	a.Run("secrets", "bind", "STRIPE_KEY", up.hostport(), "--passphrase-file", a.AdminFile).OK(t)
	a.Run("workspace", "publish").OK(t)
	b.Run("workspace", "switch", "acme").OK(t)
	b.Run("secrets", "pull").OK(t)

	// Alternate the writer, hence the replica that stores the version.
	devs := []*Vault{a, b}
	for round := range 4 {
		w, r := devs[round%2], devs[(round+1)%2]
		v := []byte(randomValue(t, fmt.Sprintf("sk_round%d_", round)))
		before := historyLen(t, r, "STRIPE_KEY")
		w.RunIn(v, "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
		w.Run("secrets", "push").OK(t)
		if got := historyLen(t, r, "STRIPE_KEY"); got != before+1 {
			t.Fatalf("round %d: the other replica lists %d versions, want %d", round, got, before+1)
		}
		if st := secretStates(t, r.Run("secrets", "diff")); st["STRIPE_KEY"] != "remote_newer" {
			t.Fatalf("round %d: the reader's diff through the other replica: %v", round, st)
		}
		r.Run("secrets", "pull").OK(t)
		up.expect(v)
		r.Run("call", "--url", up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
	}

	// Racing pushes through the two replicas: the balancer holds both until
	// both arrive and sends one to each replica; the unique version key in
	// PostgreSQL lets one commit.
	lb.Gate("/push", 2)
	for round := range 3 {
		vals := make([][]byte, len(devs))
		for i, d := range devs {
			vals[i] = []byte(randomValue(t, fmt.Sprintf("sk_race%d_%d_", round, i)))
			d.RunIn(vals[i], "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
		}
		before := historyLen(t, a, "STRIPE_KEY")
		lb.Reset()
		res := runAll(t, devs, "secrets", "push")
		served := map[string]bool{}
		for _, e := range lb.Exchanges() {
			if e.Method == "POST" && strings.HasSuffix(e.Path, "/push") {
				served[e.Target] = true
			}
		}
		if len(served) != 2 {
			t.Fatalf("round %d: the racing pushes did not go through both replicas: %v", round, served)
		}
		won := -1
		for i, r := range res {
			switch r.Code {
			case 0:
				if won >= 0 {
					t.Fatalf("round %d: both racing pushes succeeded: a lost update", round)
				}
				won = i
			case 6:
				if !strings.Contains(string(r.Stdout), `"code":"conflict"`) || !strings.Contains(string(r.Stdout), "STRIPE_KEY") {
					t.Errorf("round %d: conflict does not name the secret: %s", round, r.Stdout)
				}
			default:
				t.Fatalf("round %d: push exit %d: %s %s", round, r.Code, r.Stdout, r.Stderr)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither racing push succeeded: %s / %s", round, res[0].Stdout, res[1].Stdout)
		}
		if got := historyLen(t, b, "STRIPE_KEY"); got != before+1 {
			t.Fatalf("round %d: history went from %d to %d versions", round, before, got)
		}
		// The loser sees the conflict, settles it by taking the winner's
		// value (equal values are in sync by the keyed fingerprint) and
		// pulls; then both inject the winner's value.
		loser := devs[1-won]
		if st := secretStates(t, loser.Run("secrets", "diff")); st["STRIPE_KEY"] != "conflict" {
			t.Fatalf("round %d: the loser's diff: %v", round, st)
		}
		loser.RunIn(vals[won], "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
		loser.Run("secrets", "pull").OK(t)
		up.expect(vals[won])
		for _, d := range devs {
			if st := secretStates(t, d.Run("secrets", "diff")); st["STRIPE_KEY"] != "in_sync" {
				t.Fatalf("round %d: after settling: %v", round, st)
			}
			d.Run("call", "--url", up.URL+"/v1/charges", "--bearer", "STRIPE_KEY").OK(t)
		}
	}
	served := map[string]int{}
	for _, e := range lb.Exchanges() {
		served[e.Target]++
	}
	if served[r2.URL] == 0 {
		t.Fatalf("replica 2 served nothing: %v", served)
	}
}
