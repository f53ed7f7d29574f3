package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkListVsStart measures `secrets list` over 1,000 secrets as a ratio
// to `agentsecrets --version` (bare process start), both timed in the same
// run, interleaved, so machine load affects both alike. The list runs with
// no vault passphrase and no D-Bus session: if it touched the backend it
// would fail, which proves it reads only the index.
func BenchmarkListVsStart(b *testing.B) {
	root := b.TempDir()
	home := filepath.Join(root, "home")
	pass := filepath.Join(root, "pass")
	if err := os.WriteFile(pass, []byte("benchmark passphrase\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var env strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&env, "SECRET_%04d=value-%d-%d\n", i, i, time.Now().UnixNano())
	}
	envFile := filepath.Join(root, "big.env")
	if err := os.WriteFile(envFile, []byte(env.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	setup := []string{"AGENTSECRETS_HOME=" + home, "AGENTSECRETS_VAULT_PASSPHRASE_FILE=" + pass, "PATH=" + os.Getenv("PATH")}
	for _, args := range [][]string{
		{"init", "--backend", "file", "--admin-passphrase-file", pass},
		{"secrets", "import", envFile},
	} {
		cmd := exec.Command(binary, args...)
		cmd.Env = setup
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	bare := []string{"AGENTSECRETS_HOME=" + home, "PATH=" + os.Getenv("PATH")}
	run := func(args ...string) time.Duration {
		cmd := exec.Command(binary, args...)
		cmd.Env = bare
		start := time.Now()
		out, err := cmd.Output()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%v: %v\n%s", args, err, out)
		}
		return d
	}
	if n := strings.Count(string(mustOutput(b, bare, "secrets", "list", "--select", "secrets.#.name")), "SECRET_"); n != 1000 {
		b.Fatalf("list shows %d secrets, want 1000", n)
	}
	var start, list []time.Duration
	for range 5 { // warm the page cache
		run("--version")
		run("secrets", "list")
	}
	b.ResetTimer()
	for range b.N {
		start = append(start, run("--version"))
		list = append(list, run("secrets", "list"))
	}
	b.StopTimer()
	ps, pl := median(start), median(list)
	b.ReportMetric(float64(ps.Microseconds())/1000, "start_p50_ms")
	b.ReportMetric(float64(pl.Microseconds())/1000, "list_p50_ms")
	b.ReportMetric(float64(pl)/float64(ps), "list/start")
}

func mustOutput(b *testing.B, env []string, args ...string) []byte {
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out)
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
