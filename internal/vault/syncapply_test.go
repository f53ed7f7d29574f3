package vault

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

var pullSel = Selection{Workspace: DefaultName, Project: DefaultName}

func putValues(t *testing.T, st *Store, kv map[string]string) {
	t.Helper()
	var puts []Put
	for k, v := range kv {
		puts = append(puts, Put{Name: k, Value: secret.New([]byte(v)), Source: "set"})
	}
	if _, err := st.PutSecrets(context.Background(), pullSel, puts, Upsert); err != nil {
		t.Fatal(err)
	}
}

func valueOf(t *testing.T, st *Store, name string) string {
	t.Helper()
	v, err := st.Value(context.Background(), pullSel, name)
	if err != nil {
		t.Fatalf("Value(%s): %v", name, err)
	}
	return string(v.Reveal())
}

func pulled(name, value string, version int) Pulled {
	return Pulled{Name: name, Value: secret.New([]byte(value)), Source: "pull", Version: version, Hash: name + "-hash",
		Bindings: []policy.Binding{{Host: "api.example.com", Surfaces: []string{"header"}}}}
}

// TestApplyPull: values and metadata arrive in one update; local-only
// state (releases, the tripwire's suspension, the admin approval) stays.
func TestApplyPull(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	putValues(t, st, map[string]string{"KEEP": "same-value-1", "CHANGE": "old-value-22", "GONE": "doomed-value-3"})
	suspended := time.Now().UTC()
	var approval policy.Approval
	err := st.Update(ctx, func(ix *Index) error {
		p, _ := ix.Project(pullSel)
		p.Secrets["CHANGE"].Releases = []string{policy.ReleaseEnv}
		p.Secrets["CHANGE"].Bindings = []policy.Binding{{Host: "api.example.com", Surfaces: []string{"header"}, SuspendedAt: &suspended, SuspendReason: "echo"}}
		approval = ix.Approval
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	keep, change := pulled("KEEP", "same-value-1", 3), pulled("CHANGE", "new-value-44", 2)
	keep.Expect, change.Expect = 1, 1
	res, err := st.ApplyPull(ctx, pullSel, []Pulled{
		keep, change, pulled("NEW", "fresh-value-5", 1),
		{Name: "GONE", Deleted: true, Version: 4, Hash: "h", Expect: 1},
	}, func(ix *Index) error {
		p, _ := ix.Project(pullSel)
		now := time.Now()
		p.Sync = &ProjectSync{LastPull: &now}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	want := []PullResult{{"CHANGE", 2, 2, "updated"}, {"GONE", 0, 4, "deleted"}, {"KEEP", 1, 3, "updated"}, {"NEW", 1, 1, "created"}}
	if len(res) != len(want) {
		t.Fatalf("results %+v", res)
	}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("result %+v, want %+v", res[i], want[i])
		}
	}
	if got := valueOf(t, st, "CHANGE"); got != "new-value-44" {
		t.Errorf("CHANGE holds another value")
	}
	if got := valueOf(t, st, "NEW"); got != "fresh-value-5" {
		t.Errorf("NEW holds another value")
	}
	ix, _ := st.Index()
	p, _ := ix.Project(pullSel)
	if _, ok := p.Secrets["GONE"]; ok {
		t.Error("GONE survived its remote deletion")
	}
	ch := p.Secrets["CHANGE"]
	if len(ch.Releases) != 1 || !ch.Bindings[0].Suspended() {
		t.Errorf("local-only state lost: releases %v, bindings %+v", ch.Releases, ch.Bindings)
	}
	if ch.ChangedSinceSync() || ch.Synced.Version != 2 || ch.Synced.Hash != "CHANGE-hash" {
		t.Errorf("CHANGE sync state %+v", ch.Synced)
	}
	if !reflect.DeepEqual(ix.Approval, approval) || len(ix.Pending) != 0 || p.Sync.Incoming != nil || p.Sync.LastPull == nil {
		t.Errorf("approval changed, or pending %v / incoming %v left, or commit not applied", ix.Pending, p.Sync.Incoming)
	}
	if probs, err := st.Consistency(ctx); err != nil || len(probs) != 0 {
		t.Errorf("consistency after pull: %v %v", probs, err)
	}
}

// partialBackend stores only the first n items of a Put and then fails:
// a pull killed while it wrote values one by one (a keychain).
type partialBackend struct {
	Backend
	n int
}

var errKilled = errors.New("killed")

func (b *partialBackend) Put(ctx context.Context, items map[string]secret.Value) error {
	keys := SortedKeys(items)
	for _, k := range keys[:b.n] {
		if err := b.Backend.Put(ctx, map[string]secret.Value{k: items[k]}); err != nil {
			return err
		}
	}
	return errKilled
}

// TestApplyPullInterrupted: whatever prefix of the values a crashed pull
// stored, every secret reads as its old or its new version, doctor finds
// nothing wrong, and the next write adopts the pulled metadata of exactly
// the secrets whose new value is stored.
func TestApplyPullInterrupted(t *testing.T) {
	ctx := context.Background()
	for n := 0; n <= 3; n++ {
		st := newTestStore(t)
		putValues(t, st, map[string]string{"A": "old-a-value", "B": "old-b-value"})
		b, err := st.openBackend(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.backend = &partialBackend{Backend: b, n: n}
		a, b2 := pulled("A", "new-a-value", 1), pulled("B", "new-b-value", 1)
		a.Expect, b2.Expect = 1, 1
		_, err = st.ApplyPull(ctx, pullSel, []Pulled{a, b2, pulled("C", "new-c-value", 1)}, nil)
		if !errors.Is(err, errKilled) {
			t.Fatalf("n=%d: err %v", n, err)
		}
		st.backend = b
		if probs, err := st.Consistency(ctx); err != nil || len(probs) != 0 {
			t.Errorf("n=%d: doctor after interruption: %v %v", n, probs, err)
		}
		for i, name := range []string{"A", "B"} {
			want := "old-" + map[string]string{"A": "a", "B": "b"}[name] + "-value"
			if i < n {
				want = "new" + want[3:]
			}
			if got := valueOf(t, st, name); got != want {
				t.Errorf("n=%d: %s = %q, want %q", n, name, got, want)
			}
		}
		// The next write settles the interrupted pull.
		putValues(t, st, map[string]string{"OTHER": "other-value"})
		ix, _ := st.Index()
		p, _ := ix.Project(pullSel)
		for i, name := range []string{"A", "B", "C"} {
			sec := p.Secrets[name]
			adopted := sec != nil && sec.Synced != nil
			if adopted != (i < n) {
				t.Errorf("n=%d: %s adopted %v", n, name, adopted)
			}
		}
		if len(ix.Pending) != 0 || p.Sync.Incoming != nil {
			t.Errorf("n=%d: pending %v, incoming %v", n, ix.Pending, p.Sync.Incoming)
		}
		if probs, err := st.Consistency(ctx); err != nil || len(probs) != 0 {
			t.Errorf("n=%d: doctor after settling: %v %v", n, probs, err)
		}
	}
}

// TestDeleteRecordsTombstone: deleting a synced secret remembers the
// version it matched; deleting a never-synced one leaves nothing.
func TestDeleteRecordsTombstone(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	putValues(t, st, map[string]string{"SYNCED": "value-one", "LOCAL": "value-two"})
	err := st.Update(ctx, func(ix *Index) error {
		p, _ := ix.Project(pullSel)
		p.Sync = &ProjectSync{}
		p.Secrets["SYNCED"].MarkSynced(3, "h3")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteSecrets(ctx, pullSel, []string{"SYNCED", "LOCAL"}); err != nil {
		t.Fatal(err)
	}
	ix, _ := st.Index()
	p, _ := ix.Project(pullSel)
	if len(p.Sync.Tombstones) != 1 || p.Sync.Tombstones["SYNCED"].Version != 3 {
		t.Errorf("tombstones %+v", p.Sync.Tombstones)
	}
}

// TestApplyPullRefusesLocalChange: a secret stored here after the pull
// decided is not overwritten; nothing is written.
func TestApplyPullRefusesLocalChange(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	putValues(t, st, map[string]string{"A": "local-a-value"})
	for _, p := range []Pulled{pulled("A", "remote-a-value", 1), func() Pulled { p := pulled("A", "remote-a-value", 1); p.Expect = 7; return p }()} {
		_, err := st.ApplyPull(ctx, pullSel, []Pulled{p, pulled("B", "remote-b-value", 1)}, nil)
		if !errors.Is(err, ErrChangedDuringPull) {
			t.Fatalf("err %v", err)
		}
	}
	if got := valueOf(t, st, "A"); got != "local-a-value" {
		t.Error("local value overwritten")
	}
	ix, _ := st.Index()
	if _, ok := ix.Workspaces[DefaultName].Projects[DefaultName].Secrets["B"]; ok {
		t.Error("a refused pull wrote B")
	}
}
