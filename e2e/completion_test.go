package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// completions runs the binary as bash's `complete -C` does: COMP_LINE and
// COMP_POINT in the environment, the command, the word being completed and
// the word before it as arguments.
func (v *Vault) completions(t *testing.T, line string) []string {
	t.Helper()
	words := strings.Fields(line)
	cur, prev := "", words[len(words)-1]
	if !strings.HasSuffix(line, " ") {
		cur = prev
		prev = words[len(words)-2]
	}
	cmd := exec.Command(binary, "agentsecrets", cur, prev)
	cmd.Env = append(v.Env(), "COMP_LINE="+line, "COMP_POINT="+strconv.Itoa(len(line)))
	cmd.Dir = v.Dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("complete %q: %v\n%s", line, err, errb.String())
	}
	if errb.Len() > 0 {
		t.Errorf("complete %q wrote to stderr: %s", line, errb.String())
	}
	return strings.Fields(out.String())
}

// completionVault has two workspaces, two projects and two secrets, one of
// them holding a canary.
func completionVault(t *testing.T) (*Vault, []byte) {
	v := NewVault(t, "file")
	canary := newCanary(t, "completion", "+/=&\"<")
	v.RunIn(append(canary, '\n'), "secrets", "set", "STRIPE_KEY", "--from-stdin").OK(t)
	v.RunIn([]byte("another value\n"), "secrets", "set", "GITHUB_TOKEN", "--from-stdin").OK(t)
	v.Run("project", "create", "web").OK(t)
	v.Run("workspace", "create", "acme").OK(t)
	return v, canary
}

func TestCompletionCandidates(t *testing.T) {
	v, canary := completionVault(t)
	cases := []struct {
		line string
		want []string
	}{
		{"agentsecrets sec", []string{"secrets"}},
		{"agentsecrets secrets del", []string{"delete"}},
		{"agentsecrets call --be", []string{"--bearer"}},
		{"agentsecrets secrets delete ", []string{"GITHUB_TOKEN", "STRIPE_KEY"}},
		{"agentsecrets secrets delete STRIPE_KEY ", []string{"GITHUB_TOKEN", "STRIPE_KEY"}},
		{"agentsecrets secrets delete S", []string{"STRIPE_KEY"}},
		{"agentsecrets call --url https://api.example.com --bearer ", []string{"GITHUB_TOKEN", "STRIPE_KEY"}},
		{"agentsecrets call --basic G", []string{"GITHUB_TOKEN"}},
		{"agentsecrets secrets bind ", []string{"GITHUB_TOKEN", "STRIPE_KEY"}},
		{"agentsecrets secrets unbind ", []string{"GITHUB_TOKEN", "STRIPE_KEY"}},
		{"agentsecrets project use ", []string{"default", "web"}},
		{"agentsecrets project delete w", []string{"web"}},
		{"agentsecrets workspace switch ", []string{"acme", "default"}},
		{"agentsecrets secrets list --workspace ", []string{"acme", "default"}},
		{"agentsecrets secrets list --project ", []string{"default", "web"}},
		// The named project has no secrets: names follow --project.
		{"agentsecrets secrets delete --project web ", nil},
		{"agentsecrets completion ", []string{"bash", "fish", "zsh"}},
	}
	var all []byte
	for _, c := range cases {
		got := v.completions(t, c.line)
		all = append(all, strings.Join(got, "\n")...)
		if strings.Join(sortedCopy(got), " ") != strings.Join(c.want, " ") {
			t.Errorf("complete %q = %q, want %q", c.line, got, c.want)
		}
	}
	assertNoLeak(t, "completion candidates", all, [][]byte{canary})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestCompletionNeverUnlocks: without the vault passphrase, names still
// complete (the index is plain JSON) and nothing prompts or fails.
func TestCompletionNeverUnlocks(t *testing.T) {
	v, canary := completionVault(t)
	must(t, os.Remove(v.VaultFile))
	got := v.completions(t, "agentsecrets secrets delete ")
	if strings.Join(sortedCopy(got), " ") != "GITHUB_TOKEN STRIPE_KEY" {
		t.Errorf("names without the passphrase = %q", got)
	}
	assertNoLeak(t, "completion without passphrase", []byte(strings.Join(got, "\n")), [][]byte{canary})
}

// TestCompletionCanaryEveryPosition completes every name position of every
// command with a canary stored, through each shell's script, and scans all
// the output.
func TestCompletionCanaryEveryPosition(t *testing.T) {
	v, canary := completionVault(t)
	var all []byte
	for _, line := range []string{
		"agentsecrets ", "agentsecrets secrets ", "agentsecrets secrets delete ", "agentsecrets secrets delete STRIPE_KEY ",
		"agentsecrets secrets bind ", "agentsecrets secrets unbind ", "agentsecrets call --bearer ", "agentsecrets call --basic ",
		"agentsecrets project use ", "agentsecrets project delete ", "agentsecrets workspace switch ",
		"agentsecrets secrets list --workspace ", "agentsecrets secrets list --project ", "agentsecrets secrets set ",
		"agentsecrets call --header ", "agentsecrets env --only ", "agentsecrets secrets delete AGS",
	} {
		all = append(all, strings.Join(v.completions(t, line), "\n")...)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := v.Run("completion", shell)
		r.OK(t)
		all = append(all, r.Stdout...)
		all = append(all, r.Stderr...)
	}
	if f, err := exec.LookPath("fish"); err == nil {
		all = append(all, fishComplete(t, v, f, "agentsecrets secrets delete ")...)
	}
	assertNoLeak(t, "completion output", all, [][]byte{canary})
}

// requireShell finds a shell or skips (off Linux) or fails (under make test,
// which installs them).
func requireShell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if runtime.GOOS == "linux" && os.Getenv("AGENTSECRETS_TEST_REQUIRE_SHELLS") != "" {
		t.Fatalf("%s is not installed (scripts/test installs it from apt)", name)
	}
	t.Skipf("%s is not installed: its completion test is SKIPPED", name)
	return ""
}

// shellScript writes `agentsecrets completion SHELL` to a file.
func shellScript(t *testing.T, v *Vault, shell string) string {
	t.Helper()
	r := v.Run("completion", shell)
	r.OK(t)
	p := v.Dir + "/completion." + shell
	must(t, os.WriteFile(p, r.Stdout, 0o644))
	return p
}

func TestCompletionBash(t *testing.T) {
	bash := requireShell(t, "bash")
	v, _ := completionVault(t)
	script := shellScript(t, v, "bash")
	// bash registers the binary as the completer; the candidates then come
	// from running it with COMP_LINE, as TestCompletionCandidates does.
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", `source "$1" && complete -p agentsecrets`, "bash", script)
	cmd.Env = v.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if want := "complete -C " + binary + " agentsecrets"; !strings.Contains(string(out), want) && !strings.Contains(string(out), "complete -C '"+binary+"' agentsecrets") {
		t.Fatalf("complete -p = %q, want %q", out, want)
	}
	// Run the registered command as bash's completion does: COMP_LINE and
	// COMP_POINT exported, the command, current and previous word as
	// arguments.
	cmd = exec.Command(bash, "--norc", "--noprofile", "-c",
		`source "$1"; eval "set -- $(complete -p agentsecrets | sed -e 's/^complete -C //' -e 's/ agentsecrets$//')"; `+
			`COMP_LINE="agentsecrets project use " COMP_POINT=25 "$1" agentsecrets "" use`,
		"bash", script)
	cmd.Env = v.Env()
	cmd.Dir = v.Dir
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if got := strings.Join(sortedCopy(strings.Fields(string(out))), " "); got != "default web" {
		t.Errorf("bash completer for `project use` = %q, want default web", out)
	}
}

func TestCompletionZsh(t *testing.T) {
	zsh := requireShell(t, "zsh")
	v, _ := completionVault(t)
	script := shellScript(t, v, "zsh")
	cmd := exec.Command(zsh, "-f", "-c", `source "$1" && complete -p agentsecrets; print -r -- ${_comps[agentsecrets]}`, "zsh", script)
	cmd.Env = v.Env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "complete -C") || !strings.Contains(string(out), "_bash_complete") {
		t.Fatalf("zsh did not register the completer: %q", out)
	}
}

func fishComplete(t *testing.T, v *Vault, fish, line string) []byte {
	t.Helper()
	script := shellScript(t, v, "fish")
	cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C "$argv[2]"`, script, line)
	cmd.Env = v.Env()
	cmd.Dir = v.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fish: %v\n%s", err, out)
	}
	return out
}

func TestCompletionFish(t *testing.T) {
	fish := requireShell(t, "fish")
	v, _ := completionVault(t)
	cases := map[string]string{
		"agentsecrets secrets delete ": "GITHUB_TOKEN STRIPE_KEY",
		"agentsecrets workspace sw":    "switch",
		"agentsecrets project use ":    "default web",
	}
	for line, want := range cases {
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(string(fishComplete(t, v, fish, line))), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				names = append(names, f[0])
			}
		}
		if got := strings.Join(sortedCopy(names), " "); got != want {
			t.Errorf("fish complete %q = %q, want %q", line, got, want)
		}
	}
}
