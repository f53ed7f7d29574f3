package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

func TestParseOnly(t *testing.T) {
	tests := []struct {
		in   []string
		want string // VAR=SECRET,... or error code
	}{
		{[]string{"KEY"}, "KEY=KEY"},
		{[]string{"A", "STRIPE=STRIPE_KEY", " B "}, "A=A,STRIPE=STRIPE_KEY,B=B"},
		{[]string{"A", "A"}, "usage"},
		{[]string{"X=A", "X=B"}, "usage"},
		{[]string{"9BAD"}, "usage"},
		{[]string{"VAR=sk_live_value with spaces"}, "usage"},
		{[]string{"bad-var=KEY"}, "usage"},
		{[]string{"", " "}, "usage"},
	}
	for _, tt := range tests {
		vars, err := parseOnly(tt.in)
		var got string
		if err != nil {
			got = string(errcode.Classify(err).Code)
			if strings.Contains(errcode.Classify(err).Message, "with spaces") {
				t.Errorf("%v: error echoes a value-like word: %v", tt.in, err)
			}
		} else {
			var parts []string
			for _, v := range vars {
				parts = append(parts, v.Variable+"="+v.Secret)
			}
			got = strings.Join(parts, ",")
		}
		if got != tt.want {
			t.Errorf("parseOnly(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestEnvRun drives env through Main with buffers for stdio: the exit status
// is the child's, nothing of agentsecrets' own is printed, and the output
// is masked.
func TestEnvRun(t *testing.T) {
	root, run := fileVault(t)
	admin := filepath.Join(root, "admin.pass")
	const value = "env-run-value-0123456789"
	run(value+"\n", "secrets", "set", "KEY", "--from-stdin")
	code, out, _ := run("", "env", "--only", "KEY", "--", "sh", "-c", `echo "$KEY"`)
	if code != 5 || errorCode(t, out) != "approval_required" {
		t.Fatalf("unapproved: %d %s", code, out)
	}
	run("", "secrets", "bind", "KEY", "--release", "env", "--passphrase-file", admin)
	code, out, errOut := run("", "env", "--only", "VAR=KEY", "--", "sh", "-c", `echo "out:$VAR"; echo "err:$VAR" >&2; exit 3`)
	if code != 3 || out != "out:[REDACTED]\n" || errOut != "err:[REDACTED]\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = run("", "env", "--only", "KEY", "--", "no-such-program-here")
	if code != 3 || errorCode(t, out) != "not_found" {
		t.Fatalf("missing program: %d %s", code, out)
	}
	code, out, _ = run("", "env", "--only", "KEY", "--no-masking", "--", "true")
	if code != 5 || errorCode(t, out) != "approval_required" {
		t.Fatalf("--no-masking without approval: %d %s", code, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "home", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), value) {
		t.Fatal("audit log holds the value")
	}
	if !strings.Contains(string(b), `"front_end":"env","workspace":"default","project":"default","secrets":["KEY"],"styles":[]`) || !strings.Contains(string(b), `"command":"sh","exit_code":3`) {
		t.Fatalf("no env records in the audit log: %s", b)
	}
}

// TestEnvParse: argv → EnvCmd. The child's own flags are never taken for
// agentsecrets', with or without "--".
func TestEnvParse(t *testing.T) {
	tests := []struct {
		args    []string
		only    string
		command string
	}{
		{[]string{"env", "--only", "A,V=B", "--", "cmd", "--json", "-x"}, "A,V=B", "cmd --json -x"},
		{[]string{"env", "--only", "A", "--only", "B", "cmd", "--only", "C"}, "A,B", "cmd --only C"},
		{[]string{"env", "--project", "p", "--only=A", "--", "--", "x"}, "A", "-- x"},
	}
	for _, tt := range tests {
		env, _ := testEnv(t)
		cli := &CLI{}
		exited := -1
		parser, err := newParser(cli, env, &exited)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := parser.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got := strings.Join(cli.Env.Only, ","); got != tt.only {
			t.Errorf("%v: --only %q, want %q", tt.args, got, tt.only)
		}
		if got := strings.Join(cli.Env.argv(), " "); got != tt.command {
			t.Errorf("%v: command %q, want %q", tt.args, got, tt.command)
		}
	}
}
