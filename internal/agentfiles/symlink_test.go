//go:build unix

package agentfiles

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestWriteNeverLeavesTheRepository: every agent file, and every directory
// on its way, that is a symlink out of the repository (or to something that
// is not a regular file) makes Write refuse and change nothing; symlinks
// that stay inside the repository are followed.
func TestWriteNeverLeavesTheRepository(t *testing.T) {
	type plant func(t *testing.T, repo, outside string)
	link := func(rel, target string) plant {
		return func(t *testing.T, repo, outside string) {
			p := filepath.Join(repo, rel)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(filepath.Join(outside, target), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	var cases = map[string]plant{}
	for _, f := range files() {
		cases[f.rel+" -> outside file"] = link(f.rel, "bashrc")
		cases[f.rel+" -> outside missing file"] = link(f.rel, "new")
	}
	cases[".cursor -> outside dir"] = link(".cursor", "dir")
	cases[".agent -> outside dir"] = link(".agent", "dir")
	cases["AGENTS.md -> FIFO in repo"] = func(t *testing.T, repo, _ string) {
		syscall.Mkfifo(filepath.Join(repo, "fifo"), 0o600)
		os.Symlink("fifo", filepath.Join(repo, "AGENTS.md"))
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			repo, outside := t.TempDir(), t.TempDir()
			os.WriteFile(filepath.Join(outside, "bashrc"), []byte("export A=1\n"), 0o644)
			os.Mkdir(filepath.Join(outside, "dir"), 0o755)
			setup(t, repo, outside)
			if _, err := Write(repo); err == nil {
				t.Fatal("Write followed a symlink out of the repository")
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 2 {
				t.Errorf("files created outside: %v", entries)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "bashrc")); string(b) != "export A=1\n" {
				t.Errorf("outside file changed: %q", b)
			}
			if d, _ := os.ReadDir(filepath.Join(outside, "dir")); len(d) != 0 {
				t.Errorf("written into the outside directory: %v", d)
			}
		})
	}
	t.Run("symlink inside the repository", func(t *testing.T) {
		repo := t.TempDir()
		os.WriteFile(filepath.Join(repo, "RULES.md"), []byte("# rules\n"), 0o644)
		os.Symlink("RULES.md", filepath.Join(repo, "AGENTS.md"))
		if _, err := Write(repo); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(repo, "AGENTS.md")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Error("the in-repo link was replaced")
		}
		if b, _ := os.ReadFile(filepath.Join(repo, "RULES.md")); len(b) <= len("# rules\n") {
			t.Error("the link's target was not written")
		}
	})
}
