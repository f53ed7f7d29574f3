package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSyncLoginBruteForce: guessing an account's password through the
// real CLI is `unauthorized` until the server's per-account limit
// engages, then `rate_limited` (exit 12) with a hint to wait, even for
// the right password; the server's log says so (a "rate limited" line
// with the account scope and the email) and never carries a guess.
func TestSyncLoginBruteForce(t *testing.T) {
	srv := StartSyncServer(t, "")
	acct := NewSyncAccount(t, srv, "file")
	attacker := NewVault(t, "file")
	guess := filepath.Join(filepath.Dir(attacker.Home), "guess.pass")
	login := func(passFile string) *Result {
		return attacker.Run("login", "--server", srv.URL, "--email", acct.Email, "--password-file", passFile,
			"--account-key-file", acct.KitFile, "--device-name", "attacker")
	}
	var guesses [][]byte
	limited := 0
	for i := range 25 {
		g := []byte(randomValue(t, "guess horse battery staple "))
		guesses = append(guesses, g)
		must(t, os.WriteFile(guess, append(g, '\n'), 0o600))
		r := login(guess)
		switch r.Code {
		case 11:
			r.ErrorCode(t, "unauthorized", 11)
			if limited > 0 {
				t.Fatalf("attempt %d: unauthorized again after the limit engaged", i)
			}
		case 12:
			e := r.ErrorCode(t, "rate_limited", 12)
			if !strings.Contains(e["hint"].(string), "wait") {
				t.Errorf("rate_limited hint: %v", e)
			}
			limited++
		default:
			t.Fatalf("attempt %d: exit %d: %s %s", i, r.Code, r.Stdout, r.Stderr)
		}
		if limited >= 3 {
			break
		}
	}
	if limited == 0 {
		t.Fatal("25 wrong passwords in a row and the server never limited them")
	}
	// The limit is the account's: the right password waits too.
	login(acct.PasswordFile).ErrorCode(t, "rate_limited", 12)

	var sawLimit, sawFailure bool
	for _, line := range strings.Split(strings.TrimSpace(string(srv.Logs.Bytes())), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch rec["msg"] {
		case "rate limited":
			sawLimit = sawLimit || rec["scope"] == "account" && rec["email"] == acct.Email
		case "auth failure":
			sawFailure = true
		}
	}
	if !sawLimit || !sawFailure {
		t.Errorf("the server log lacks the rate limit (%v) or the failed logins (%v):\n%s", sawLimit, sawFailure, srv.Logs.Bytes())
	}
	assertNoLeak(t, "the server log", srv.Logs.Bytes(), guesses)
}
