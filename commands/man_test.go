package commands

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateMan = flag.Bool("update-man", false, "rewrite docs/agentsecrets.1 from the grammar")

// TestManPage fails when docs/agentsecrets.1 is not what the grammar and
// examples.go make; `make man` rewrites it.
func TestManPage(t *testing.T) {
	got, err := ManPage()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "docs", "agentsecrets.1")
	if *updateMan {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make man`)", err)
	}
	if string(want) != got {
		t.Fatalf("%s is stale: run `make man` and commit it", path)
	}
	for _, w := range []string{".SS \"secrets generate\"", "(default: 32)", "agentsecrets secrets generate WEBHOOK_SECRET", ".SS \"completion\""} {
		if !strings.Contains(got, strings.ReplaceAll(w, "-", `\-`)) && !strings.Contains(got, w) {
			t.Errorf("man page lacks %q", w)
		}
	}
}

// TestManPageRenders checks the roff with groff, where it is installed.
func TestManPageRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed (apt-get install groff-base)")
	}
	page, err := ManPage()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(groff, "-z", "-man", "-ww", "-b")
	cmd.Stdin = strings.NewReader(page)
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("groff -z -man: %v\n%s", err, out)
	}
}
