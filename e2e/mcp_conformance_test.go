package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mcpConformanceBaseline lists the conformance scenarios expected to fail:
// only those that call the reference server's fixture tools, prompts and
// resources (test_simple_text, test_image_content, ...), which agentsecrets
// does not and should not have.
const mcpConformanceBaseline = "testdata/mcp-conformance-baseline.yml"

// TestMcpConformance runs the MCP conformance suite (server mode, active
// scenarios) against `mcp serve --http`. The suite cannot send headers, so
// it talks to a reverse proxy on 127.0.0.1 that adds the session token and
// passes the Host header through unchanged (the DNS-rebinding scenario must
// reach our Host check). Any failure not in the baseline fails the test, and
// so does a baseline entry that now passes (the baseline must stay honest).
func TestMcpConformance(t *testing.T) {
	conformance := jsTool(t, "conformance")
	v := NewVault(t, "file")
	h := startMCPHTTP(t, v)
	target, err := url.Parse(h.URL)
	must(t, err)
	front := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.URL.Path = target.Path
			r.Out.Host = r.In.Host
			r.Out.Header.Set("Authorization", "Bearer "+h.Token)
		},
		FlushInterval: -1,
		// The suite drops streams it is done with; the proxy's complaint
		// about each is noise.
		ErrorLog: log.New(io.Discard, "", 0),
	})
	defer front.Close()
	baseline, err := filepath.Abs(mcpConformanceBaseline)
	must(t, err)
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := []string{"server", "--url", front.URL + "/mcp", "--expected-failures", baseline, "-o", out}
	cmd := exec.CommandContext(ctx, conformance, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err = cmd.Run()
	report := buf.String()
	t.Logf("conformance output:\n%s", tail(report, 6000))
	checkConformanceResults(t, out, baseline)
	if err != nil {
		t.Fatalf("conformance suite failed against mcp serve --http (a failure outside %s, or a baseline entry that now passes): %v", mcpConformanceBaseline, err)
	}
}

var conformanceDirRE = regexp.MustCompile(`^server-(.+)-\d{4}-\d\d-\d\dT[\d-]+Z$`)

// checkConformanceResults reads every scenario's checks.json: a scenario
// in the baseline must still fail (else the entry is stale), one outside it
// must not fail at all. Failed checks are logged with the suite's reason.
func checkConformanceResults(t *testing.T, dir, baselinePath string) {
	raw, err := os.ReadFile(baselinePath)
	must(t, err)
	expected := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- "); ok {
			expected[name] = true
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "checks.json"))
	if len(files) < 10 {
		t.Fatalf("only %d scenario results in %s", len(files), dir)
	}
	seen := map[string]bool{}
	for _, f := range files {
		m := conformanceDirRE.FindStringSubmatch(filepath.Base(filepath.Dir(f)))
		if m == nil {
			t.Errorf("unexpected result directory %s", f)
			continue
		}
		scenario := m[1]
		seen[scenario] = true
		b, err := os.ReadFile(f)
		must(t, err)
		var checks []map[string]any
		must(t, json.Unmarshal(b, &checks))
		failed := 0
		for _, c := range checks {
			if c["status"] == "FAILURE" {
				failed++
				t.Logf("%s: %v: %v", scenario, c["id"], c["errorMessage"])
			}
		}
		switch {
		case failed > 0 && !expected[scenario]:
			t.Errorf("conformance scenario %s failed and is not in the baseline", scenario)
		case failed == 0 && expected[scenario]:
			t.Errorf("conformance scenario %s passes: remove it from %s", scenario, mcpConformanceBaseline)
		}
	}
	for name := range expected {
		if !seen[name] {
			t.Errorf("baseline entry %s is not a scenario the suite ran", name)
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
