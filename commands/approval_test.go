package commands

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// promptRun runs one command in dir with a terminal that answers every
// prompt with the admin passphrase and records what it was asked.
func promptRun(t *testing.T, root, dir string, args ...string) (code int, out string, prompts []string) {
	t.Helper()
	env, o, _ := testEnvErr(t, root)
	env.Cwd = dir
	env.IO.Prompt = func(p string) ([]byte, error) {
		prompts = append(prompts, p)
		return []byte("admin passphrase"), nil
	}
	code = Main(args, env)
	return code, o.String(), prompts
}

// TestApprovalPromptsNameWhereAndWhat: an agent-planted project link must
// not steer a human's approval unseen. Every approval prompt names the
// workspace, the project, where that choice came from (the link's path,
// the flags, the current selection) and the whole change; --no-masking
// names the program and its argument count, never the arguments.
func TestApprovalPromptsNameWhereAndWhat(t *testing.T) {
	root, run := fileVault(t)
	run("", "project", "create", "planted")
	for _, p := range []string{"default", "planted"} {
		if code, out, _ := run("tok-value-123\n", "secrets", "set", "TOKEN", "--from-stdin", "--project", p); code != 0 {
			t.Fatalf("set: %s", out)
		}
	}
	repo := filepath.Join(root, "repo")
	link := filepath.Join(repo, LinkDir, LinkFile)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(link, []byte(`{"workspace":"default","project":"planted"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		dir  string
		args []string
		want []string
	}{
		{"bind through a planted link", repo,
			[]string{"secrets", "bind", "TOKEN", "api.example.com/v1", "--method", "GET", "--header-name", "x-api-key", "--allow-range"},
			[]string{"workspace:  default", "project:    planted", "chosen by:  the project link " + link,
				"target api.example.com/v1", "methods GET", "surfaces header", "header names Authorization, X-Api-Key", "Range requests allowed"}},
		{"bind --release through a planted link", repo,
			[]string{"secrets", "bind", "TOKEN", "--release", "env"},
			[]string{"project:    planted", "chosen by:  the project link " + link, "release:    env"}},
		{"bind by flag", repo,
			[]string{"secrets", "bind", "TOKEN", "api.example.com", "--project", "default"},
			[]string{"project:    default", "chosen by:  the --workspace/--project flags", "Range requests not forwarded"}},
		{"bind from the current selection", root,
			[]string{"secrets", "bind", "TOKEN", "api.example.org"},
			[]string{"project:    default", "chosen by:  the current selection"}},
		{"allowlist add through a planted link", repo,
			[]string{"workspace", "allowlist", "add", "api.example.com", "--allow-private"},
			[]string{"workspace:  default", "chosen by:  the project link " + link, "host:       api.example.com", "private:    yes", "plain http: no"}},
		{"env --no-masking names the program, counts its arguments", repo,
			[]string{"env", "--only", "TOKEN", "--no-masking", "--", "true", "ARGTEXT-one", "ARGTEXT-two"},
			[]string{"project:    planted", "chosen by:  the project link " + link, "command:    true with 2 argument(s)", "output:     UNMASKED"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, prompts := promptRun(t, root, c.dir, c.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, out)
			}
			if len(prompts) != 1 {
				t.Fatalf("%d prompts: %q", len(prompts), prompts)
			}
			for _, w := range c.want {
				if !strings.Contains(prompts[0], w) {
					t.Errorf("prompt does not say %q:\n%s", w, prompts[0])
				}
			}
			if strings.Contains(prompts[0], "ARGTEXT") || strings.Contains(prompts[0], "tok-value") {
				t.Fatalf("prompt shows argument text or a value:\n%s", prompts[0])
			}
		})
	}
}

// TestBindPinsHeaderNamesAndLiftsSuspension: --header-name widens (any
// case, canonical), an unchanged re-bind of a suspended binding needs
// approval and lifts the suspension and the tripwire's count; list and
// status show what is suspended and the command that re-approves it.
func TestBindPinsHeaderNamesAndLiftsSuspension(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	run("tok-value-123\n", "secrets", "set", "TOKEN", "--from-stdin")
	steps := []struct {
		args []string
		exit int
		want string
	}{
		{[]string{"api.example.com", "--passphrase-file", admin}, 0, "added"},
		{[]string{"api.example.com", "--header-name", "X-Api-Key"}, 5, "approval_required"},
		{[]string{"api.example.com", "--header-name", "x-api-KEY", "--passphrase-file", admin}, 0, "updated"},
		{[]string{"api.example.com", "--header-name", "X-API-KEY"}, 0, "unchanged"},
		{[]string{"api.example.com", "--header-name", "X-Api-Key", "--allow-range"}, 5, "approval_required"},
		{[]string{"api.example.com", "--header-name", "bad header"}, 2, "usage"},
	}
	for i, s := range steps {
		code, out, _ := run("", append([]string{"secrets", "bind", "TOKEN"}, s.args...)...)
		if code != s.exit {
			t.Fatalf("step %d: exit %d, want %d: %s", i, code, s.exit, out)
		}
		got := ""
		if code == 0 {
			got, _ = field(t, out, "action").(string)
		} else {
			got = errorCode(t, out)
		}
		if got != s.want {
			t.Fatalf("step %d: %s, want %s: %s", i, got, s.want, out)
		}
	}

	// Suspend it as the broker's tripwire does, with events on file.
	env, _, _ := testEnvErr(t, root)
	st, err := env.Store()
	if err != nil {
		t.Fatal(err)
	}
	sel := vault.Selection{Workspace: "default", Project: "default"}
	ev := policy.EchoEvent{Workspace: "default", Project: "default", Secret: "TOKEN", Scheme: "https", Host: "api.example.com", Port: 443, At: time.Now()}
	err = st.Update(context.Background(), func(ix *vault.Index) error {
		log := &policy.EchoLog{}
		log.Record([]policy.EchoEvent{ev, ev, ev}, time.Now())
		if err := broker.WriteEchoLog(st.Dirs, log); err != nil {
			return err
		}
		s, _ := ix.Secret(sel, "TOKEN")
		policy.Suspend(s.Bindings, ev, time.Now())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	reapprove := "agentsecrets secrets bind TOKEN api.example.com --surface header --header-name X-Api-Key --workspace default --project default"
	if code, out, _ := run("", "secrets", "list", "--format", "text"); code != 0 || !strings.Contains(out, "SUSPENDED") || !strings.Contains(out, reapprove) {
		t.Fatalf("list: %s", out)
	}
	if code, out, _ := run("", "status", "--select", "suspended.0.reapprove"); code != 0 || !strings.Contains(out, reapprove) {
		t.Fatalf("status: %s", out)
	}
	if code, out, _ := run("", "secrets", "list", "--select", "secrets.0.bindings.0.suspended_at"); code != 0 || strings.TrimSpace(out) == "null" {
		t.Fatalf("list json: %s", out)
	}
	if code, out, _ := run("", "secrets", "bind", "TOKEN", "api.example.com", "--header-name", "X-Api-Key"); code != 5 {
		t.Fatalf("re-binding a suspended binding must need approval: %d %s", code, out)
	}
	if code, out, _ := run("", "secrets", "bind", "TOKEN", "api.example.com", "--header-name", "X-Api-Key", "--passphrase-file", admin); code != 0 || field(t, out, "action") != "updated" {
		t.Fatalf("re-approve: %d %s", code, out)
	}
	ix, _ := st.Index()
	s, _ := ix.Secret(sel, "TOKEN")
	if s.Bindings[0].Suspended() {
		t.Fatal("re-approval did not lift the suspension")
	}
	err = st.Update(context.Background(), func(*vault.Index) error {
		log, err := broker.ReadEchoLog(st.Dirs)
		if err == nil && len(log.Events) != 0 {
			t.Errorf("re-approval did not restart the count: %+v", log.Events)
		}
		return vault.ErrUnchanged
	})
	if err != nil {
		t.Fatal(err)
	}
	if code, out, _ := run("", "status", "--select", "suspended"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("status after re-approval: %s", out)
	}
}
