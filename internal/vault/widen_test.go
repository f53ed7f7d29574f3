package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// TestWiden: the race between an approval and the write. The approval is
// asked outside the lock, so another writer can change the index while a
// human types; what is applied must be what was approved, or nothing.
func TestWiden(t *testing.T) {
	// The operation under test: allowlist api.example.com with
	// allow_private (wider than without it).
	want := policy.AllowEntry{Host: "api.example.com", Port: 443, AllowPrivate: true}
	entry := func(ix *Index) *policy.AllowEntry {
		w := ix.Workspaces[DefaultName]
		for i := range w.Allowlist {
			if w.Allowlist[i].Host == want.Host {
				return &w.Allowlist[i]
			}
		}
		return nil
	}
	decide := func(ix *Index) (Change, error) {
		old := entry(ix)
		ch := Change{Widens: want.Widens(old), Lines: []string{"host: " + want.Host, "private: yes"}}
		if old != nil {
			ch.Lines = append(ch.Lines, fmt.Sprintf("replacing: private=%v http=%v", old.AllowPrivate, old.AllowHTTP))
		}
		return ch, nil
	}
	// set is another writer's change.
	set := func(st *Store, e *policy.AllowEntry) {
		t.Helper()
		err := st.Update(context.Background(), func(ix *Index) error {
			w := ix.Workspaces[DefaultName]
			w.Allowlist = w.Allowlist[:0]
			if e != nil {
				w.Allowlist = append(w.Allowlist, *e)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		// initial is the entry before the operation; during runs at the
		// approval (or, when nothing is approved, at the first decision).
		initial, during *policy.AllowEntry
		asked           bool
		applied         bool
		conflict        bool
	}{
		{name: "unchanged index: approved and applied once", asked: true, applied: true},
		{name: "changed during the approval: conflict, nothing applied", during: &policy.AllowEntry{Host: want.Host, Port: 443, AllowHTTP: true}, asked: true, conflict: true},
		{name: "same change made meanwhile: applied (no longer widens)", during: &want, asked: true, applied: true},
		{name: "narrowing: no approval asked", initial: &policy.AllowEntry{Host: want.Host, Port: 443, AllowPrivate: true, AllowHTTP: true}, applied: true},
		{name: "narrowing turned widening meanwhile: conflict", initial: &policy.AllowEntry{Host: want.Host, Port: 443, AllowPrivate: true, AllowHTTP: true},
			during: &policy.AllowEntry{Host: "other.example.com", Port: 443}, conflict: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newTestStore(t)
			set(st, tt.initial)
			decisions, asks, applies := 0, 0, 0
			approved, err := st.Widen(context.Background(),
				func(ix *Index) (Change, error) {
					decisions++
					if decisions == 1 && tt.during != nil && !tt.asked {
						set(st, tt.during) // outside the lock, like the approval below
					}
					return decide(ix)
				},
				func(ix *Index, ch Change) error {
					asks++
					if tt.during != nil {
						set(st, tt.during)
					}
					return nil
				},
				func(ix *Index, approved bool) error {
					applies++
					w := ix.Workspaces[DefaultName]
					if old := entry(ix); old != nil {
						*old = want
					} else {
						w.Allowlist = append(w.Allowlist, want)
					}
					return nil
				})
			if got := errcode.Classify(err).Code == errcode.Conflict; got != tt.conflict || (err != nil && !tt.conflict) {
				t.Fatalf("err = %v, want conflict %v", err, tt.conflict)
			}
			if tt.conflict && !errors.Is(err, ErrChangedDuringApproval) {
				t.Fatalf("err = %v", err)
			}
			if (asks == 1) != tt.asked || asks > 1 || approved != tt.asked {
				t.Errorf("approval asked %d times, approved %v; want asked %v", asks, approved, tt.asked)
			}
			if (applies == 1) != tt.applied || applies > 1 {
				t.Errorf("applied %d times, want applied %v", applies, tt.applied)
			}
			ix, err := st.Index()
			if err != nil {
				t.Fatal(err)
			}
			got := entry(ix)
			if tt.applied && (got == nil || *got != want) {
				t.Errorf("stored %+v, want %+v", got, want)
			}
			if tt.conflict && got != nil && *got == want {
				t.Errorf("a conflict stored the change")
			}
		})
	}
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	root := t.TempDir()
	dirs := home.Dirs{Config: root, Data: filepath.Join(root, "data"), State: filepath.Join(root, "state"), Explicit: true}
	st, _, err := Init(context.Background(), dirs, InitOptions{
		Options: Options{Getenv: func(string) string { return "" }, VaultPassphrase: func(bool) ([]byte, error) { return []byte("vault passphrase"), nil }},
		Backend: "file", AdminPassphrase: func() ([]byte, error) { return []byte("admin passphrase"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
