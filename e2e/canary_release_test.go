package e2e

// The canary test for the two release paths (DESIGN section 1): `env`
// hands values to a child, which prints them in every encoding the
// detector knows, and its masked output must hold none; `openclaw resolve`
// must never answer an id that is not approved for OpenClaw, whatever else
// it is approved for. Error paths and the files left behind are scanned too.

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCanaryRelease(t *testing.T) {
	for _, backend := range []string{"file", "keychain"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			runCanaryRelease(t, backend)
		})
	}
}

func runCanaryRelease(t *testing.T, backend string) {
	v := NewVault(t, backend)
	c := &canaryRun{t: t, v: v, root: filepath.Dir(v.Home)}
	tmp := filepath.Join(c.root, "tmp")
	must(t, os.MkdirAll(tmp, 0o700))
	v.ExtraEnv = append(v.ExtraEnv, "TMPDIR="+tmp)
	defer c.scanAll()
	c.expectOK(c.run("project", "use", "default", "--link"))

	envVal := c.canary("env", `+/=<&>"\ é`)
	plainVal := c.canary("plain", "+/==")
	ocOnly := c.canary("ocenv", "&=")
	for name, val := range map[string][]byte{"ENV_KEY": envVal, "PLAIN_KEY": plainVal, "ENV_OC_KEY": ocOnly} {
		c.expectOK(c.runIn(val, "secrets", "set", name, "--from-stdin"))
	}
	c.expectOK(c.run("secrets", "bind", "ENV_KEY", "--release", "env", "--passphrase-file", v.AdminFile))
	c.expectOK(c.run("secrets", "bind", "ENV_OC_KEY", "--release", "env", "--passphrase-file", v.AdminFile))

	// env: the child prints its variables, then every encoding of every
	// canary (from a file it reads, so argv stays clean); masking must
	// catch all of it, on stdout and stderr.
	var forms bytes.Buffer
	for _, cn := range [][]byte{envVal, ocOnly} {
		for _, e := range canaryEncodings(cn) {
			forms.WriteString(e.name + ": " + string(e.data) + "\n")
		}
	}
	formsFile := c.inputFile("forms.txt", forms.Bytes())
	r := c.run("env", "--only", "ENV_KEY,OTHER_NAME=ENV_OC_KEY", "--", "sh", "-c",
		`printf '%s\n' "$ENV_KEY" "$OTHER_NAME"; cat "$1"; cat "$1" >&2; env`, "sh", formsFile)
	if r.Code != 0 || !bytes.Contains(r.Stdout, []byte("[REDACTED]")) {
		t.Errorf("env run: exit %d\nstdout %.300s\nstderr %.300s", r.Code, r.Stdout, r.Stderr)
	}
	if py, err := exec.LookPath("python3"); err == nil {
		// Echoes split across writes, from the environment itself.
		r := c.run("env", "--only", "KEY=ENV_KEY", "--", py, "-c", maskChild)
		if r.Code != 0 {
			t.Errorf("split echoes: exit %d %s", r.Code, r.Stderr)
		}
	}
	// Error paths: unapproved, unknown, value in argv (every encoding),
	// --no-masking without approval, a missing program.
	c.expectErr(c.run("env", "--only", "PLAIN_KEY", "--", "sh", "-c", "true"), "approval_required", 5)
	c.expectErr(c.run("env", "--only", "NO_SUCH_KEY", "--", "true"), "not_found", 3)
	for _, e := range canaryEncodings(envVal) {
		c.expectErr(c.run("env", "--only", "ENV_KEY", "--", "sh", "-c", "true", "sh", "--x="+string(e.data)), "denied", 4)
	}
	c.expectErr(c.run("env", "--only", "ENV_KEY", "--no-masking", "--", "true"), "approval_required", 5)
	c.expectErr(c.run("env", "--only", "ENV_KEY", "--", "no-such-program-anywhere"), "not_found", 3)
	// Values of secrets not released here, typed where a program or a
	// variable name belongs: nothing can recognise them, so no error may
	// quote those places.
	c.expectErr(c.run("env", "--only", "ENV_KEY", "--", string(plainVal)), "not_found", 3)
	c.expectErr(c.run("env", "--only", "PLAIN_KEY", "--", string(plainVal), "x"), "approval_required", 5)
	c.expectErr(c.run("env", "--only", string(plainVal)+"=ENV_KEY", "--", "true"), "usage", 2)
	c.expectErr(c.run("env", "--only", "ENV_KEY="+string(plainVal), "--", "true"), "usage", 2)

	// openclaw resolve: ids approved for env only, or for nothing.
	r = c.runIn([]byte(`{"protocolVersion":1,"provider":"agentsecrets","ids":["ENV-KEY","PLAIN-KEY","ENV-OC-KEY","default/default/PLAIN-KEY","NOPE"]}`),
		"openclaw", "resolve")
	if r.Code != 0 || !bytes.Contains(r.Stdout, []byte(`"values":{}`)) {
		t.Errorf("openclaw resolve of unapproved ids: exit %d %s", r.Code, r.Stdout)
	}
	c.expectErr(c.runIn([]byte(`{"protocolVersion":2,"ids":["ENV-KEY"]}`), "openclaw", "resolve"), "usage", 2)

	c.expectOK(c.run("proxy", "logs", "--last", "0"))
	c.expectOK(c.run("status"))
	c.expectOK(c.run("secrets", "list"))
	c.expectOK(c.run("audit", "verify"))
}
