package e2e

// `agentsecrets version` reports what the build recorded: a release's
// -ldflags -X stamps, else the Go toolchain's VCS record. Each test builds
// its own binary, as a release or a user would.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const buildinfoPkg = "github.com/agentsecrets/agentsecrets/internal/buildinfo"

// buildBinary builds the module at dir into a temp file with extra go
// build arguments.
func buildBinary(t *testing.T, dir string, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agentsecrets")
	cmd := exec.Command("go", append(append([]string{"build", "-o", bin}, args...), ".")...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", args, err, out)
	}
	return bin
}

func runVersion(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "AGENTSECRETS_HOME=" + t.TempDir(), "AGENTSECRETS_BROKER=none"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", bin, args, err, out)
	}
	return out
}

type versionResult struct {
	Version, Commit, Date, Go, OS, Arch, Module, Source string
	Modified                                            bool
}

func TestVersionStamped(t *testing.T) {
	bin := buildBinary(t, "..", "-ldflags", "-X "+buildinfoPkg+".version=9.8.7 -X "+buildinfoPkg+".commit=abc1234 -X "+buildinfoPkg+".date=2026-12-01T00:00:00Z")
	var v versionResult
	out := runVersion(t, bin, "version")
	must(t, json.Unmarshal(out, &v))
	want := versionResult{Version: "9.8.7", Commit: "abc1234", Date: "2026-12-01T00:00:00Z", Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		Module: "github.com/agentsecrets/agentsecrets", Source: "release"}
	v.Modified = false // the working tree's state, not the stamp's
	if v != want {
		t.Errorf("version = %+v\nwant      %+v\n%s", v, want, out)
	}
	if got := string(runVersion(t, bin, "--version")); got != "agentsecrets 9.8.7\n" {
		t.Errorf("--version = %q", got)
	}
	text := string(runVersion(t, bin, "--format", "text", "version"))
	for _, w := range []string{"agentsecrets 9.8.7", "abc1234", "2026-12-01T00:00:00Z", runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(text, w) {
			t.Errorf("text version lacks %q:\n%s", w, text)
		}
	}
}

// TestVersionFromVCS: a plain `go build` in a git checkout reports the
// checkout's commit and date, and a version derived from them. The source is copied
// into a fresh repository, as a clone would have it (go build records VCS
// data only where .git is a directory).
func TestVersionFromVCS(t *testing.T) {
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	files := strings.Split(git("..", "ls-files", "-z", "--cached", "--others", "--exclude-standard"), "\x00")
	clone := t.TempDir()
	for _, f := range files {
		if f == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join("..", f))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(clone, filepath.Dir(f)), 0o755))
		must(t, os.WriteFile(filepath.Join(clone, f), b, 0o644))
	}
	git(clone, "init", "-q")
	git(clone, "add", "-A")
	git(clone, "commit", "-q", "-m", "snapshot")
	head := git(clone, "rev-parse", "HEAD")

	// GOFLAGS may turn VCS stamping off; the flag on the command line wins.
	bin := buildBinary(t, clone, "-buildvcs=true")
	var v versionResult
	must(t, json.Unmarshal(runVersion(t, bin, "version"), &v))
	// Go 1.24+ turns the commit into a pseudo-version (0.0.0-DATE-COMMIT12).
	if v.Commit != head || v.Date == "" || v.Modified || v.Source != "vcs" || !strings.Contains(v.Version, head[:12]) {
		t.Errorf("plain build in a checkout at %s: %+v", head, v)
	}
}
