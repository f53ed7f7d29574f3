package broker

import (
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// FuzzParseTarget: any URL either fails or yields a host the allowlist can
// match exactly: lower case, no trailing dot, no userinfo, a real port, and
// a path policy accepts only without dot segments.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"https://api.example.com/v1", "http://127.0.0.1:8080/", "https://[::1]:8443/a",
		"https://x.com@127.0.0.1/", "https://X.COM./a/../b", "https://0x7f000001/", "https://x.com/%2e%2e/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseTarget(raw)
		if err != nil {
			return
		}
		if tg.host != strings.ToLower(tg.host) || strings.HasSuffix(tg.host, ".") || tg.url.User != nil {
			t.Fatalf("%q: host %q", raw, tg.host)
		}
		if tg.port < 1 || tg.port > 65535 {
			t.Fatalf("%q: port %d", raw, tg.port)
		}
		if _, err := policy.ParseTarget(tg.hostport()); err != nil {
			t.Fatalf("%q: %s does not re-parse: %v", raw, tg.hostport(), err)
		}
		_, err = policy.Check([]policy.AllowEntry{{Host: tg.host, Port: tg.port}}, nil,
			policy.Request{Scheme: tg.url.Scheme, Host: tg.host, Port: tg.port, Path: tg.url.Path, Method: "GET"})
		if err == nil {
			for _, seg := range strings.Split(strings.ReplaceAll(strings.ToLower(tg.url.EscapedPath()), "%2e", "."), "/") {
				if seg, _, _ = strings.Cut(seg, ";"); seg == "." || seg == ".." {
					t.Fatalf("%q: dot segment survived", raw)
				}
			}
		}
	})
}
