package vault

import (
	"bytes"
	"context"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// TestSharedIndex: SharedIndex decodes index.json once per content and sees
// every change, whoever made it — this Store, another Store (process) on the
// same vault, or a replacement with the same size and modification time.
// TestPrefetchIndex: the index a prefetch decoded is the one the next
// SharedIndex returns, with no second decode.
func TestPrefetchIndex(t *testing.T) {
	st := newTestStore(t)
	st.PrefetchIndex()
	for st.sharedDecodes.Load() == 0 {
		runtime.Gosched() // the test's timeout bounds a prefetch that never decodes
	}
	ix, err := st.SharedIndex()
	if err != nil {
		t.Fatal(err)
	}
	if n := st.sharedDecodes.Load(); n != 1 {
		t.Errorf("%d decodes after a prefetch and a read of the same index, want 1", n)
	}
	if _, err := ix.Workspace(DefaultName); err != nil {
		t.Errorf("prefetched index: %v", err)
	}
}

func TestSharedIndex(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	sel := Selection{Workspace: DefaultName, Project: DefaultName}
	hasSecret := func(ix *Index, name string) bool {
		_, err := ix.Secret(sel, name)
		return err == nil
	}
	first, err := st.SharedIndex()
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.SharedIndex()
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Fatal("an unchanged index.json was decoded again")
	}
	if own, err := st.Index(); err != nil || own == first {
		t.Fatalf("Index = %p, %v: it must be the caller's own copy, not the shared one (%p)", own, err, first)
	}

	// A write through this Store.
	if _, err := st.PutSecrets(ctx, sel, []Put{{Name: "A", Value: secret.New([]byte("value-of-A")), Source: "test"}}, Upsert); err != nil {
		t.Fatal(err)
	}
	ix, err := st.SharedIndex()
	if err != nil || !hasSecret(ix, "A") {
		t.Fatalf("after this Store's write: %v; A seen = %v", err, err == nil && hasSecret(ix, "A"))
	}

	// A write through another Store on the same vault (another process).
	other, err := Open(st.Dirs, st.opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.PutSecrets(ctx, sel, []Put{{Name: "B", Value: secret.New([]byte("value-of-B")), Source: "test"}}, Upsert); err != nil {
		t.Fatal(err)
	}
	ix, err = st.SharedIndex()
	if err != nil || !hasSecret(ix, "B") {
		t.Fatalf("after another Store's write: %v", err)
	}

	// The same size and modification time, other bytes: a name renamed to
	// one of the same length.
	path := st.Dirs.IndexFile()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(raw, []byte(`"B"`)) != 1 {
		t.Fatalf("index.json names B %d times; the test renames it in place", bytes.Count(raw, []byte(`"B"`)))
	}
	if err := os.WriteFile(path, bytes.Replace(raw, []byte(`"B"`), []byte(`"C"`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	ix, err = st.SharedIndex()
	if err != nil || hasSecret(ix, "B") || !hasSecret(ix, "C") {
		t.Fatalf("after a same-size, same-mtime replacement: %v; still the old decoding", err)
	}

	// A corrupt file is an error, never the last good decoding.
	if err := os.WriteFile(path, []byte(`{"format":`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SharedIndex(); !errors.Is(err, ErrCorruptIndex) {
		t.Fatalf("corrupt index.json: err = %v, want ErrCorruptIndex", err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if ix, err = st.SharedIndex(); err != nil || !hasSecret(ix, "B") {
		t.Fatalf("after restoring index.json: %v", err)
	}
}
