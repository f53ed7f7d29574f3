package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// medianRun runs args n times on v and returns the median wall time.
func medianRun(t *testing.T, v *Vault, n int, args ...string) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		v.Run(args...).OK(t)
		ds = append(ds, time.Since(start))
	}
	return median(ds)
}

// TestSyncDiffSpeed: `secrets diff` of 200 in-sync secrets costs at most
// 1.5× a `status` process: it reads no value and no key, only the index,
// the session token and one answer from the server.
func TestSyncDiffSpeed(t *testing.T) {
	requireKeychain(t)
	_, _, a, b := TwoDevices(t, "keychain")
	a.Run("workspace", "create", "acme", "--switch").OK(t)
	var env strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&env, "KEY_%03d=%s\n", i, randomValue(t, "v_"))
	}
	p := filepath.Join(a.Dir, "many.env")
	must(t, os.WriteFile(p, []byte(env.String()), 0o600))
	a.Run("secrets", "import", p).OK(t)
	must(t, os.Remove(p))
	a.Run("workspace", "publish").OK(t)
	b.Run("workspace", "switch", "acme").OK(t)
	b.Run("secrets", "pull").OK(t)
	const n = 15
	status := medianRun(t, b, n, "status")
	diff := medianRun(t, b, n, "secrets", "diff")
	t.Logf("200 secrets: status %v, secrets diff %v (%.2f×)", status, diff, float64(diff)/float64(status))
	if os.Getenv("SYNC_PERF_DETAIL") != "" {
		t.Logf("history %v, account show %v, secrets list %v, workspace list %v", medianRun(t, b, n, "secrets", "history", "KEY_000"),
			medianRun(t, b, n, "account", "show"), medianRun(t, b, n, "secrets", "list"), medianRun(t, b, n, "workspace", "list"))
	}
	if float64(diff) > 1.5*float64(status) {
		t.Errorf("secrets diff takes %v, more than 1.5× status (%v)", diff, status)
	}
}
