package commands

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDoctorAuditCheck: doctor's audit check is what every audit failure's
// hint sends a human to, so it must see what makes requests fail closed
// (a log that cannot take a record) and what `audit verify` sees (a broken
// chain), and show the chain's head when all is well.
func TestDoctorAuditCheck(t *testing.T) {
	root, run := fileVault(t)
	logPath := filepath.Join(root, "home", "audit.log")
	audit := func() Check {
		t.Helper()
		_, out, _ := run("", "doctor")
		var res DoctorResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, ch := range res.Checks {
			if ch.Name == "audit" {
				return ch
			}
		}
		t.Fatalf("no audit check: %s", out)
		return Check{}
	}
	run("", "secrets", "bind", "NOPE", "--release", "env") // not found: no record
	run("x-value-0123456789\n", "secrets", "set", "KEY", "--from-stdin")
	run("", "env", "--only", "KEY", "--", "true") // refused: one record
	if ch := audit(); !ch.OK || !strings.Contains(ch.Detail, "1 records, chain intact, head ") {
		t.Fatalf("healthy log: %+v", ch)
	}
	run("", "env", "--only", "KEY", "--", "true")
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"decision":"blocked"`, `"decision":"allowed"`, 1)
	if err := os.WriteFile(logPath, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if ch := audit(); ch.OK || !strings.Contains(ch.Detail, "chain breaks") || ch.Fix != "agentsecrets audit verify" {
		t.Fatalf("edited log: %+v", ch)
	}
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logPath, 0o700); err != nil {
		t.Fatal(err)
	}
	if ch := audit(); ch.OK || !strings.Contains(ch.Fix, "regular files") {
		t.Fatalf("unwritable log: %+v", ch)
	}
}
