package e2e

// init --agent-files: the instruction files coding agents read, written in
// marked blocks so that reruns update instead of duplicating, the rest of
// each file kept byte for byte, and an existing vault left alone.

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var agentFileNames = []string{"AGENTS.md", "CLAUDE.md", ".cursor/rules/agentsecrets.mdc", ".agent/workflows/agentsecrets.md"}

const (
	blockBegin = "<!-- agentsecrets:begin -->"
	blockEnd   = "<!-- agentsecrets:end -->"
)

func agentFileActions(t *testing.T, r *Result) map[string]string {
	t.Helper()
	r.OK(t)
	out := map[string]string{}
	files, _ := r.JSON(t)["agent_files"].([]any)
	for _, f := range files {
		m := f.(map[string]any)
		out[m["path"].(string)] = m["action"].(string)
	}
	return out
}

func expectAgentActions(t *testing.T, dir string, got map[string]string, want ...string) {
	t.Helper()
	for i, name := range agentFileNames {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if got[p] != want[i] {
			t.Errorf("%s: %q, want %q (all: %v)", name, got[p], want[i], got)
		}
	}
}

func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range agentFileNames {
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); err == nil {
			out[name] = b
		}
	}
	return out
}

func TestAgentFiles(t *testing.T) {
	v := NewVault(t, "file")
	initArgs := []string{"init", "--agent-files", "--backend", "file", "--admin-passphrase-file", v.AdminFile}
	index := readFile(t, filepath.Join(v.Home, "index.json"))
	config := readFile(t, filepath.Join(v.Home, "config.json"))

	// On an existing vault: files written, vault untouched.
	r := v.Run(initArgs...)
	if r.OK(t).JSON(t)["created"] != false {
		t.Errorf("init on an existing vault: %s", r.Stdout)
	}
	expectAgentActions(t, v.Dir, agentFileActions(t, r), "created", "created", "created", "created")
	if !bytes.Equal(readFile(t, filepath.Join(v.Home, "index.json")), index) || !bytes.Equal(readFile(t, filepath.Join(v.Home, "config.json")), config) {
		t.Error("init --agent-files changed the existing vault")
	}
	first := snapshot(t, v.Dir)
	for name, b := range first {
		s := string(b)
		if strings.Count(s, blockBegin) != 1 || strings.Count(s, blockEnd) != 1 {
			t.Errorf("%s: markers %q", name, s)
		}
	}
	if !strings.Contains(string(first["CLAUDE.md"]), "\n@AGENTS.md\n") {
		t.Errorf("CLAUDE.md does not import AGENTS.md:\n%s", first["CLAUDE.md"])
	}
	if s := string(first[".cursor/rules/agentsecrets.mdc"]); !strings.HasPrefix(s, "---\ndescription: ") || !strings.Contains(s, "\nalwaysApply: true\n---\n") {
		t.Errorf("Cursor rule front matter:\n%s", s)
	}
	if s := string(first[".agent/workflows/agentsecrets.md"]); !strings.HasPrefix(s, "---\ndescription: ") {
		t.Errorf("workflow front matter:\n%s", s)
	}
	for _, name := range []string{"AGENTS.md", ".cursor/rules/agentsecrets.mdc", ".agent/workflows/agentsecrets.md"} {
		if s := string(first[name]); !strings.Contains(s, "agentsecrets call --url") || !strings.Contains(s, "secrets bind") {
			t.Errorf("%s does not teach the workflow", name)
		}
	}

	// Rerun: nothing changes.
	expectAgentActions(t, v.Dir, agentFileActions(t, v.Run(initArgs...)), "unchanged", "unchanged", "unchanged", "unchanged")
	for name, b := range snapshot(t, v.Dir) {
		if !bytes.Equal(b, first[name]) {
			t.Errorf("rerun changed %s", name)
		}
	}

	// The user's text around our block survives; a stale block is replaced.
	agents := filepath.Join(v.Dir, "AGENTS.md")
	user := "# Project rules\n\nUse tabs.\n\n"
	tail := "\n## Testing\n\nRun make test.\n"
	block := first["AGENTS.md"]
	stale := bytes.Replace(block, []byte("agentsecrets call --url"), []byte("agentsecrets OLD"), 1)
	must(t, os.WriteFile(agents, append(append([]byte(user), stale...), tail...), 0o644))
	expectAgentActions(t, v.Dir, agentFileActions(t, v.Run(initArgs...)), "updated", "unchanged", "unchanged", "unchanged")
	if got, want := string(readFile(t, agents)), user+string(block)+tail; got != want {
		t.Errorf("AGENTS.md after update:\n%s\nwant\n%s", got, want)
	}

	// Existing files without a block: ours is appended; a CLAUDE.md that
	// already imports AGENTS.md is left alone.
	dir := filepath.Join(v.Dir, "other")
	must(t, os.MkdirAll(dir, 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "AGENTS.md"), []byte("# Rules\nno trailing newline"), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "CLAUDE.md"), []byte("# Claude\n@AGENTS.md\n"), 0o644))
	v2 := *v
	v2.Dir = dir
	expectAgentActions(t, dir, agentFileActions(t, v2.Run(initArgs...)), "added", "unchanged", "created", "created")
	if s := string(readFile(t, filepath.Join(dir, "AGENTS.md"))); !strings.HasPrefix(s, "# Rules\nno trailing newline\n\n"+blockBegin+"\n") {
		t.Errorf("append:\n%s", s)
	}
	if st, _ := os.Stat(filepath.Join(dir, "AGENTS.md")); st.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", st.Mode().Perm())
	}
	if s := string(readFile(t, filepath.Join(dir, "CLAUDE.md"))); s != "# Claude\n@AGENTS.md\n" {
		t.Errorf("CLAUDE.md changed:\n%s", s)
	}

	// Broken markers: refused, and no file is touched.
	broken := filepath.Join(v.Dir, "broken")
	must(t, os.MkdirAll(broken, 0o755))
	must(t, os.WriteFile(filepath.Join(broken, "CLAUDE.md"), []byte("x\n"+blockBegin+"\nhalf a block\n"), 0o644))
	v3 := *v
	v3.Dir = broken
	e := v3.Run(initArgs...).ErrorCode(t, "conflict", 6)
	if !strings.Contains(e["hint"].(string), "init --agent-files") {
		t.Errorf("hint %v", e["hint"])
	}
	entries, _ := os.ReadDir(broken)
	if len(entries) != 1 {
		t.Errorf("a refused run wrote files: %v", entries)
	}
}

// TestAgentFilesFreshInit: one command makes the vault and the files.
func TestAgentFilesFreshInit(t *testing.T) {
	root := t.TempDir()
	v := &Vault{t: t, Home: filepath.Join(root, "home"), Dir: filepath.Join(root, "work"),
		AdminFile: filepath.Join(root, "admin.pass"), VaultFile: filepath.Join(root, "vault.pass"), Backend: "file"}
	must(t, os.MkdirAll(v.Dir, 0o755))
	must(t, os.WriteFile(v.AdminFile, []byte(adminPassphrase+"\n"), 0o600))
	must(t, os.WriteFile(v.VaultFile, []byte(vaultPassphrase+"\n"), 0o600))
	r := v.Run("init", "--agent-files", "--backend", "file", "--admin-passphrase-file", v.AdminFile)
	if r.OK(t).JSON(t)["created"] != true {
		t.Errorf("no vault created: %s", r.Stdout)
	}
	expectAgentActions(t, v.Dir, agentFileActions(t, r), "created", "created", "created", "created")
	v.Run("status").OK(t)
}
