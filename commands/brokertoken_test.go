package commands

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestBrokerTokenHash: only a well-formed token has a hash, and what is
// stored is not the token or its secret.
func TestBrokerTokenHash(t *testing.T) {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i + 1)
	}
	enc := base64.RawURLEncoding.EncodeToString(secret)
	tok := brokerTokenPrefix + enc
	h, ok := tokenHash(tok + "\n")
	if !ok || len(h) != 64 || strings.Contains(h, enc) {
		t.Fatalf("hash of a good token: %q %v", h, ok)
	}
	if h2, _ := tokenHash(tok); h2 != h {
		t.Fatal("a trailing newline changed the hash")
	}
	for _, bad := range []string{"", enc, brokerTokenPrefix, brokerTokenPrefix + enc[:10], brokerTokenPrefix + enc + "AA", "x" + tok, brokerTokenPrefix + "!!!"} {
		if _, ok := tokenHash(bad); ok {
			t.Errorf("tokenHash(%q) accepted", bad)
		}
	}
}

// TestBrokerTokensConcurrentCreates: creates racing from many connections
// all land (the file is changed under its lock), and lookups tell
// another uid's token (denied) from an unknown one (unauthorized).
func TestBrokerTokensConcurrentCreates(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	toks := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		raw := make([]byte, 32)
		raw[0], raw[1] = byte(i), 0xAA
		toks[i] = brokerTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, _ := tokenHash(toks[i])
			errs <- updateBrokerTokens(context.Background(), dir, func(ts *brokerTokens) error {
				ts.Tokens = append(ts.Tokens, brokerToken{Name: fmt.Sprintf("t%d", i), UID: uint32(1000 + i%2), Grants: []grant{{Workspace: "w"}}, SHA256: h})
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ts, err := readBrokerTokens(dir)
	if err != nil || len(ts.Tokens) != n {
		t.Fatalf("%d tokens stored, want %d (%v)", len(ts.Tokens), n, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, brokerTokensFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi.Mode(), err)
	}
	if got, err := findBrokerToken(dir, toks[3], 1001); err != nil || got.Name != "t3" {
		t.Fatalf("own token: %v %v", got, err)
	}
	if _, err := findBrokerToken(dir, toks[3], 1000); errcode.Classify(err).Code != errcode.Denied {
		t.Fatalf("another uid's token: %v", err)
	}
	unknown := brokerTokenPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	if _, err := findBrokerToken(dir, unknown, 1001); errcode.Classify(err).Code != errcode.Unauthorized {
		t.Fatalf("unknown token: %v", err)
	}
}

// TestBrokerTokenCannotWiden: a token's grants must lie inside its user's.
func TestBrokerTokenCannotWiden(t *testing.T) {
	user := &limits{who: "uid 1001", grants: []grant{{Workspace: "w", Project: "p"}, {Workspace: "x"}}}
	for _, c := range []struct {
		g  grant
		ok bool
	}{
		{grant{Workspace: "w", Project: "p"}, true},
		{grant{Workspace: "x", Project: "any"}, true},
		{grant{Workspace: "x"}, true},
		{grant{Workspace: "w"}, false},
		{grant{Workspace: "w", Project: "q"}, false},
		{grant{Workspace: "y"}, false},
	} {
		if got := withinLimits(user, c.g); got != c.ok {
			t.Errorf("%s within %s: %v, want %v", c.g, user.list(), got, c.ok)
		}
		if !withinLimits(nil, c.g) {
			t.Errorf("an unlimited user cannot grant %s", c.g)
		}
	}
}
