package e2e

// The skill: SKILL.md at the root and in skill/ are one text; its error
// table is the program's; every command and flag it teaches exists; the
// --select paths it shows work; and the real openclaw CLI finds it
// eligible when agentsecrets is on PATH (and not when it is missing).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func readSkill(t *testing.T) []byte {
	t.Helper()
	root, err := os.ReadFile("../SKILL.md")
	must(t, err)
	bundle, err := os.ReadFile("../skill/SKILL.md")
	must(t, err)
	if !bytes.Equal(root, bundle) {
		t.Fatal("SKILL.md and skill/SKILL.md differ: edit skill/SKILL.md and copy it to the root")
	}
	return root
}

func TestSkillFrontMatter(t *testing.T) {
	s := string(readSkill(t))
	if !strings.HasPrefix(s, "---\n") {
		t.Fatal("no front matter")
	}
	end := strings.Index(s[4:], "\n---\n")
	if end < 0 {
		t.Fatal("front matter not closed")
	}
	fm := s[4 : 4+end]
	for _, want := range []string{"\nname: agentsecrets\n", "\ndescription: ", `"requires": { "bins": ["agentsecrets"] }`, `"kind": "go"`, `"module": "github.com/agentsecrets/agentsecrets@latest"`, `"os": ["darwin", "linux", "win32"]`, `"emoji": `} {
		if !strings.Contains("\n"+fm+"\n", want) {
			t.Errorf("front matter lacks %q", want)
		}
	}
	// The skill must never ask OpenClaw to hand it a credential.
	for _, banned := range []string{"primaryEnv", "apiKey", `"env": [`} {
		if strings.Contains(fm, banned) {
			t.Errorf("front matter contains %q", banned)
		}
	}
	for _, l := range strings.Split(fm, "\n") {
		if d, ok := strings.CutPrefix(l, "description: "); ok && (len(d) > 1024 || len(d) < 40) {
			t.Errorf("description is %d characters (AgentSkills allows 1-1024; say what and when)", len(d))
		}
	}
}

// TestSkillErrorTable keeps the skill's table equal to internal/errcode.
func TestSkillErrorTable(t *testing.T) {
	s := string(readSkill(t))
	known := map[string]bool{}
	for _, sp := range errcode.Specs() {
		known[string(sp.Code)] = true
		if row := fmt.Sprintf("| `%s` | %d |", sp.Code, sp.Exit); !strings.Contains(s, row) {
			t.Errorf("SKILL.md lacks the row %q", row)
		}
	}
	for _, line := range strings.Split(s, "\n") {
		var code string
		var exit int
		if n, _ := fmt.Sscanf(line, "| `%s | %d |", &code, &exit); n == 2 && !known[strings.TrimSuffix(code, "`")] {
			t.Errorf("SKILL.md documents unknown error code %q", code)
		}
	}
}

// commandFlags maps every command to its input flags, from `schema`.
func commandFlags(t *testing.T, v *Vault) map[string]map[string]bool {
	t.Helper()
	var res struct {
		Commands []struct {
			Command string `json:"command"`
			Input   struct {
				Properties map[string]any `json:"properties"`
			} `json:"input"`
		} `json:"commands"`
	}
	must(t, json.Unmarshal(v.Run("schema").OK(t).Stdout, &res))
	out := map[string]map[string]bool{}
	for _, c := range res.Commands {
		flags := map[string]bool{}
		for k := range c.Input.Properties {
			flags[strings.ReplaceAll(k, "_", "-")] = true
		}
		out[c.Command] = flags
	}
	return out
}

var globalFlags = map[string]bool{"format": true, "json": true, "select": true, "input": true, "vault-passphrase-file": true, "version": true, "help": true}

// notYet are commands and flags the skill mentions as arriving with other
// parts of issue 4 or with sync (the skill says so where it names them).
var (
	notYet      = map[string]bool{"secrets diff": true}
	notYetFlags = map[string]bool{"release": true, "no-masking": true}
)

// taught extracts every `agentsecrets ...` command line from inline code
// and code blocks of a markdown text.
func taught(md string) []string {
	var out []string
	re := regexp.MustCompile("`([^`\n]*agentsecrets [^`\n]*)`")
	for _, m := range re.FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	inBlock := false
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inBlock = !inBlock
			continue
		}
		if inBlock && strings.HasPrefix(strings.TrimSpace(l), "agentsecrets ") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

// checkTaught fails for a command or flag in lines the binary lacks.
func checkTaught(t *testing.T, where string, lines []string, cmds map[string]map[string]bool) {
	t.Helper()
	names := make([]string, 0, len(cmds))
	for c := range cmds {
		names = append(names, c)
	}
	// Longest command first, so "secrets list" wins over "secrets".
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	checked := 0
	for _, line := range lines {
		i := strings.Index(line, "agentsecrets ")
		rest := line[i+len("agentsecrets "):]
		words := strings.Fields(rest)
		var path []string
		for _, w := range words {
			if strings.HasPrefix(w, "-") || strings.ToUpper(w) == w || strings.ContainsAny(w, "'\"{}.=/[") {
				break
			}
			path = append(path, w)
		}
		joined := strings.Join(path, " ")
		if joined == "" || joined == "COMMAND" || notYet[joined] {
			continue
		}
		cmd := ""
		for _, n := range names {
			if joined == n || strings.HasPrefix(joined, n+" ") {
				cmd = n
				break
			}
		}
		if cmd == "" {
			t.Errorf("%s teaches `agentsecrets %s`, which is not a command", where, joined)
			continue
		}
		checked++
		for _, w := range words {
			if f, ok := strings.CutPrefix(w, "--"); ok {
				f, _, _ = strings.Cut(f, "=")
				if f != "" && !cmds[cmd][f] && !globalFlags[f] && !notYetFlags[f] {
					t.Errorf("%s: `agentsecrets %s` has no flag --%s (in %q)", where, cmd, f, line)
				}
			}
		}
	}
	if checked < 10 {
		t.Errorf("%s: only %d commands checked; the extraction is broken", where, checked)
	}
}

func TestSkillCommandsExist(t *testing.T) {
	v := NewVault(t, "file")
	checkTaught(t, "SKILL.md", taught(string(readSkill(t))), commandFlags(t, v))

	// The --select examples work on a fresh vault, as shown.
	r := v.Run("status", "--select", "{initialised,backend.kind,workspace,project,secrets}").OK(t)
	var st map[string]any
	must(t, json.Unmarshal(r.Stdout, &st))
	if st["initialised"] != true || st["kind"] != "file" || st["project"] != "default" {
		t.Errorf("status --select: %s", r.Stdout)
	}
	if r := v.Run("secrets", "list", "--select", "secrets.#.name").OK(t); strings.TrimSpace(string(r.Stdout)) != "[]" {
		t.Errorf("secrets list --select: %s", r.Stdout)
	}
	if r := v.Run("proxy", "logs", "--last", "5", "--select", "records.#.decision").OK(t); strings.TrimSpace(string(r.Stdout)) != "[]" {
		t.Errorf("proxy logs --select: %s", r.Stdout)
	}
}

// TestSkillOpenClawEligible: the real openclaw CLI discovers the skill in
// an OpenClaw workspace's skills/ directory and reports it eligible only
// when the agentsecrets binary is on PATH.
func TestSkillOpenClawEligible(t *testing.T) {
	openclaw := jsTool(t, "openclaw")
	root := t.TempDir()
	home := filepath.Join(root, "home")
	skillDir := filepath.Join(home, ".openclaw", "workspace", "skills", "agentsecrets")
	must(t, os.MkdirAll(skillDir, 0o755))
	must(t, os.WriteFile(filepath.Join(skillDir, "SKILL.md"), readSkill(t), 0o644))
	withBin := filepath.Join(root, "bin")
	must(t, os.MkdirAll(withBin, 0o755))
	must(t, os.Symlink(binary, filepath.Join(withBin, "agentsecrets")))
	empty := filepath.Join(root, "empty")
	must(t, os.MkdirAll(empty, 0o755))

	info := func(pathDir string) map[string]any {
		t.Helper()
		return openclawSkillInfo(t, openclaw, home, root, pathDir+":/usr/bin:/bin")
	}
	m := info(withBin)
	if m["eligible"] != true || m["name"] != "agentsecrets" || m["source"] != "openclaw-workspace" {
		t.Errorf("with agentsecrets on PATH: eligible=%v name=%v source=%v", m["eligible"], m["name"], m["source"])
	}
	req, _ := m["requirements"].(map[string]any)
	if !reflect.DeepEqual(req["bins"], []any{"agentsecrets"}) || !reflect.DeepEqual(req["env"], []any{}) {
		t.Errorf("requirements %v", req)
	}
	inst, _ := m["install"].([]any)
	// openclaw offers one spec per host: npm, where no brew is installed.
	if len(inst) != 1 || inst[0].(map[string]any)["kind"] != "node" {
		t.Errorf("install %v", m["install"])
	}
	if m["emoji"] == nil || m["emoji"] == "" {
		t.Error("no emoji")
	}
	m = info(empty)
	missing, _ := m["missing"].(map[string]any)
	if m["eligible"] != false || !reflect.DeepEqual(missing["bins"], []any{"agentsecrets"}) {
		t.Errorf("without agentsecrets on PATH: eligible=%v missing=%v", m["eligible"], m["missing"])
	}
}

// openclawSkillInfo is `openclaw skills info agentsecrets --json` as the
// real CLI reports it for the skills under root, with only path on PATH.
func openclawSkillInfo(t *testing.T, openclaw, home, root, path string) map[string]any {
	t.Helper()
	cmd := exec.Command(openclaw, "skills", "info", "agentsecrets", "--json")
	cmd.Env = []string{"HOME=" + home, "PATH=" + path, "NO_COLOR=1"}
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openclaw skills info: %v\n%s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("openclaw skills info --json: %v\n%s", err, out)
	}
	return m
}
