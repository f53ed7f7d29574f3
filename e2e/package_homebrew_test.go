package e2e

// The Homebrew channel: the formula packaging/ writes parses with the real
// ruby, names every macOS and Linux archive of the release at its
// published URL with that archive's checksum, and tests `version`.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestPackageHomebrewFormula(t *testing.T) {
	ruby, err := exec.LookPath("ruby")
	if err != nil {
		if os.Getenv("AGENTSECRETS_TEST_REQUIRE_RUBY") != "" {
			t.Fatal("ruby is required here (apt install ruby)")
		}
		t.Skip("no ruby: install it or run `make test`")
	}
	b := channels(t, "darwin/amd64", "darwin/arm64", "linux/amd64", "linux/arm64")
	formula := filepath.Join(b.Out, "homebrew", "agentsecrets.rb")
	if out, err := exec.Command(ruby, "-c", formula).CombinedOutput(); err != nil || !strings.Contains(string(out), "Syntax OK") {
		t.Fatalf("ruby -c: %v\n%s", err, out)
	}
	src, err := os.ReadFile(formula)
	must(t, err)
	s := string(src)

	base := "https://github.com/agentsecrets/agentsecrets/releases/download/v" + b.Version + "/"
	pairs := regexp.MustCompile(`url "([^"]+)"\s+sha256 "([0-9a-f]{64})"`).FindAllStringSubmatch(s, -1)
	seen := map[string]bool{}
	for _, p := range pairs {
		name, ok := strings.CutPrefix(p[1], base)
		if !ok {
			t.Errorf("url %s is not under %s", p[1], base)
			continue
		}
		if want := b.ArchiveChecksums[name]; want != p[2] {
			t.Errorf("%s: sha256 %s, checksums.txt says %q", name, p[2], want)
		}
		seen[name] = true
	}
	for platform, name := range b.Archives {
		if strings.HasPrefix(platform, "windows/") {
			continue
		}
		if !seen[name] {
			t.Errorf("the formula does not name %s (%s)", name, platform)
		}
	}
	if len(pairs) != len(seen) {
		t.Errorf("the formula names an archive twice: %v", pairs)
	}
	// Each archive sits under the block of its platform.
	for platform, block := range map[string]string{
		"darwin/arm64": `on_macos do\s+on_arm do\s+url "[^"]+_darwin_arm64\.tar\.gz"`,
		"darwin/amd64": `on_intel do\s+url "[^"]+_darwin_amd64\.tar\.gz"`,
		"linux/arm64":  `on_linux do\s+on_arm do\s+url "[^"]+_linux_arm64\.tar\.gz"`,
		"linux/amd64":  `on_intel do\s+url "[^"]+_linux_amd64\.tar\.gz"`,
	} {
		if !regexp.MustCompile(block).MatchString(s) {
			t.Errorf("%s: no block matching %s", platform, block)
		}
	}
	for _, want := range []string{`version "` + b.Version + `"`, `bin.install "agentsecrets"`, `bin.install "agentsecrets-server"`, "test do", `#{bin}/agentsecrets version`} {
		if !strings.Contains(s, want) {
			t.Errorf("the formula lacks %q", want)
		}
	}
}
