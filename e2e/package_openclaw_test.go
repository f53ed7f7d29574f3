package e2e

// The OpenClaw channel: the skill bundle packaging/ writes, unpacked into
// an OpenClaw workspace, is read by the real openclaw CLI, which lists
// every install spec (brew, npm, go, uv) and finds the skill eligible once
// the npm-installed launcher is on PATH, and not before.

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPackageOpenClawSkill(t *testing.T) {
	openclaw := jsTool(t, "openclaw")
	n := installNPM(t)
	root := t.TempDir()
	home := filepath.Join(root, "home")
	skills := filepath.Join(home, ".openclaw", "workspace", "skills")
	must(t, os.MkdirAll(skills, 0o755))

	f, err := os.Open(filepath.Join(n.Build.Out, "agentsecrets-skill_"+n.Build.Version+".tar.gz"))
	must(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	must(t, err)
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if !filepath.IsLocal(h.Name) || h.Typeflag != tar.TypeReg {
			t.Fatalf("skill bundle entry %q (type %c)", h.Name, h.Typeflag)
		}
		data, err := io.ReadAll(tr)
		must(t, err)
		must(t, os.MkdirAll(filepath.Join(skills, filepath.Dir(h.Name)), 0o755))
		must(t, os.WriteFile(filepath.Join(skills, h.Name), data, 0o644))
	}
	if got, _ := os.ReadFile(filepath.Join(skills, "agentsecrets", "SKILL.md")); string(got) != string(readSkill(t)) {
		t.Fatal("the bundle's agentsecrets/SKILL.md is not skill/SKILL.md")
	}

	// node for the launcher's #!/usr/bin/env node; nothing else of ours.
	nodeDir := filepath.Dir(jsTool(t, "node"))
	info := func(path string) map[string]any {
		t.Helper()
		return openclawSkillInfo(t, openclaw, home, root, path)
	}
	m := info(nodeDir + ":/usr/bin:/bin")
	if m["eligible"] != false {
		t.Errorf("eligible before the npm install is on PATH: %v", m)
	}
	m = info(filepath.Join(n.Global, "bin") + ":" + nodeDir + ":/usr/bin:/bin")
	if m["eligible"] != true {
		t.Errorf("not eligible with the npm-installed agentsecrets on PATH: %v", m)
	}
	// The front matter lists every channel; openclaw offers the one it
	// prefers on this host: npm, where no brew is installed.
	s := string(readSkill(t))
	for _, want := range []string{
		"\"kind\": \"brew\",\n              \"formula\": \"agentsecrets/tap/agentsecrets\"",
		"\"kind\": \"node\",\n              \"package\": \"agentsecrets\"",
		"\"kind\": \"go\",\n              \"module\": \"github.com/agentsecrets/agentsecrets@latest\"",
	} {
		if !strings.Contains(s[:strings.Index(s[4:], "\n---\n")+4], want) {
			t.Errorf("SKILL.md front matter lacks %s", want)
		}
	}
	inst, _ := m["install"].([]any)
	if len(inst) != 1 {
		t.Fatalf("install options %v", m["install"])
	}
	got, _ := inst[0].(map[string]any)
	if got["kind"] != "node" || got["id"] != "node" || !reflect.DeepEqual(got["bins"], []any{"agentsecrets"}) {
		t.Errorf("install option %v, want the npm spec", got)
	}
}
