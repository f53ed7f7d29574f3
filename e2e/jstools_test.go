package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// jsTool returns the path of one of the JavaScript clients that
// scripts/jstools installs (node, openclaw, mcp-inspector, conformance).
// `make test` sets AGENTSECRETS_JS_BIN and AGENTSECRETS_TEST_REQUIRE_JS, so
// there a missing tool fails the test; a bare `go test` skips it.
func jsTool(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("AGENTSECRETS_JS_BIN")
	if dir == "" {
		if os.Getenv("AGENTSECRETS_TEST_REQUIRE_JS") != "" {
			t.Fatal("AGENTSECRETS_JS_BIN is not set: run the suite with `make test` (scripts/jstools)")
		}
		t.Skip("no JavaScript clients: set AGENTSECRETS_JS_BIN=$(scripts/jstools) or run `make test`")
	}
	path := filepath.Join(dir, name)
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("%s is not installed in %s (re-run scripts/jstools): %v", name, dir, err)
	}
	return path
}
