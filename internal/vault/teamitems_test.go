package vault

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

const canaryInvite = "CANARY-invite-code-0f1e2d3c4b5a"

// TestInviteCodeLifecycle: an invite code is stored in the backend, named
// by the index (never held there), read back, and forgotten from both; a
// code an interrupted write left without an index entry is removed by the
// next write, like a secret's orphaned value.
func TestInviteCodeLifecycle(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	held := HeldInvite{Email: "bob@example.com", Role: "member", CreatedAt: time.Now().UTC()}
	if err := st.PutInviteCode(ctx, "ws1", "http://127.0.0.1:8787", "inv1", held, secret.New([]byte(canaryInvite))); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(st.Dirs.IndexFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range []string{canaryInvite, base64.StdEncoding.EncodeToString([]byte(canaryInvite)), hex.EncodeToString([]byte(canaryInvite))} {
		if strings.Contains(string(b), form) {
			t.Fatalf("the index holds a form of the invite code")
		}
	}
	ix, _ := st.Index()
	if h := ix.Teams["ws1"].Invites["inv1"]; h == nil || h.Email != "bob@example.com" || len(ix.Pending) != 0 {
		t.Fatalf("index: %+v pending %v", ix.Teams["ws1"], ix.Pending)
	}
	got, err := st.InviteCode(ctx, "inv1")
	if err != nil || string(got.Reveal()) != canaryInvite {
		t.Fatalf("read back: %v", err)
	}
	if _, err := st.InviteCode(ctx, "inv2"); !errors.Is(err, ErrNoInviteCode) {
		t.Fatalf("unknown invite: %v", err)
	}
	// A journalled code the index names is kept: settling removes only
	// what no entry names.
	if err := st.withLock(ctx, func() error { return st.journal([]string{inviteCodeItem("inv1")}, nil) }); err != nil {
		t.Fatal(err)
	}
	be, err := st.openBackend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.updateWith(ctx, be, func(*Index) error { return ErrUnchanged }, nil); err != nil {
		t.Fatal(err)
	}
	if !backendHas(t, st, inviteCodeItem("inv1")) {
		t.Fatal("settling a journalled write deleted a code the index names")
	}
	if err := st.DropInviteCode(ctx, "inv1"); err != nil {
		t.Fatal(err)
	}
	if backendHas(t, st, inviteCodeItem("inv1")) {
		t.Fatal("the code survived DropInviteCode")
	}
	if ix, _ := st.Index(); len(ix.Teams["ws1"].Invites) != 0 || len(ix.Pending) != 0 {
		t.Fatalf("index after drop: %+v %v", ix.Teams["ws1"], ix.Pending)
	}

	// A crash after the backend write, before the index named the code.
	if err := st.withLock(ctx, func() error { return st.journal([]string{inviteCodeItem("inv3")}, nil) }); err != nil {
		t.Fatal(err)
	}
	if err := be.Put(ctx, map[string]secret.Value{inviteCodeItem("inv3"): encodeBytes(secret.New([]byte(canaryInvite)))}); err != nil {
		t.Fatal(err)
	}
	if err := st.updateWith(ctx, be, func(*Index) error { return ErrUnchanged }, nil); err != nil {
		t.Fatal(err)
	}
	if backendHas(t, st, inviteCodeItem("inv3")) {
		t.Fatal("an orphaned invite code survived the next write")
	}
}
