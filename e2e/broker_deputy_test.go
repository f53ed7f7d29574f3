//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
)

// TestBrokerReadsNoPathAClientNames: the daemon runs commands as its own
// user, so a path in a command line must never be opened by it. A client
// that sends --input or --vault-passphrase-file naming the daemon's own
// files (as a hostile client would, skipping the CLI that expands and
// drops them) gets a refusal or has the path ignored, and none of those
// files' bytes come back.
func TestBrokerReadsNoPathAClientNames(t *testing.T) {
	d := startBrokerDaemon(t, "")
	v := d.client(t)
	v.Run("init", "--admin-passphrase-file", v.AdminFile).OK(t)
	secretFile := filepath.Join(d.State, "vault.passphrase")
	own, err := os.ReadFile(secretFile)
	must(t, err)
	own = bytes.TrimSpace(own)

	raw := func(args ...string) (brokerd.Exit, []byte) {
		t.Helper()
		conn, err := net.Dial("unix", d.Socket)
		must(t, err)
		defer conn.Close()
		br := upgradeExec(t, conn)
		var p0 []byte
		sendRequest(t, conn, args...)
		var out []byte
		for {
			typ, p, o := nextFrame(t, br)
			out = append(out, o...)
			if typ == brokerd.FrameCall {
				// No project link on this side.
				a, _ := json.Marshal(brokerd.Answer{Result: json.RawMessage(`{}`)})
				must(t, brokerd.WriteFrame(conn, brokerd.FrameAnswer, a))
				continue
			}
			if typ != brokerd.FrameExit {
				t.Fatalf("%q: frame %q, want the exit", args, typ)
			}
			p0 = p
			break
		}
		p := p0
		var x brokerd.Exit
		must(t, json.Unmarshal(p, &x))
		return x, out
	}
	for _, args := range [][]string{
		{"secrets", "list", "--input", secretFile},
		{"secrets", "list", "--input=" + filepath.Join(d.State, "index.json")},
		{"call", "--input", filepath.Join(d.State, "audit.log")},
	} {
		x, out := raw(args...)
		if x.Status != 2 || !bytes.Contains(out, []byte("unexpanded")) {
			t.Errorf("%q: exit %d, want the usage refusal: %s", args, x.Status, out)
		}
		if bytes.Contains(out, own) || bytes.Contains(out, []byte("vault_id")) {
			t.Errorf("%q: the daemon's file came back: %s", args, out)
		}
	}
	// A vault passphrase file a client names is not the daemon's key: the
	// command works on the daemon's vault, and nothing of the named file
	// (here one the client cannot read, the daemon's own) is used.
	x, out := raw("--vault-passphrase-file", secretFile, "secrets", "list")
	if x.Status != 0 || bytes.Contains(out, own) {
		t.Errorf("--vault-passphrase-file: exit %d: %s", x.Status, out)
	}
}
