package vault

import (
	"context"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// TestRotateUpstreamMark: a pull brings the mark of the remote version
// (set or cleared) whether or not the value changes; a new value stored
// locally clears it, the same value keeps it.
func TestRotateUpstreamMark(t *testing.T) {
	ctx := context.Background()
	st := newTestStore(t)
	putValues(t, st, map[string]string{"A": "value-a-1", "B": "value-b-1", "C": "value-c-1"})
	marks := func() map[string]bool {
		t.Helper()
		ix, err := st.Index()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := ix.Project(pullSel)
		out := map[string]bool{}
		for n, s := range p.Secrets {
			out[n] = s.RotateUpstream
		}
		return out
	}
	// The same values, re-sealed with the mark (a removal).
	var pulls []Pulled
	for n, v := range map[string]string{"A": "value-a-1", "B": "value-b-1", "C": "value-c-1"} {
		p := pulled(n, v, 2)
		p.Expect, p.RotateUpstream = 1, true
		pulls = append(pulls, p)
	}
	if _, err := st.ApplyPull(ctx, pullSel, pulls, nil); err != nil {
		t.Fatal(err)
	}
	if m := marks(); !m["A"] || !m["B"] || !m["C"] {
		t.Fatalf("after the pull: %v", m)
	}
	// A new value clears A; the same value keeps B.
	if _, err := st.PutSecrets(ctx, pullSel, []Put{{Name: "A", Value: secret.New([]byte("value-a-2")), Source: "set"},
		{Name: "B", Value: secret.New([]byte("value-b-1")), Source: "set"}}, Upsert); err != nil {
		t.Fatal(err)
	}
	if m := marks(); m["A"] || !m["B"] || !m["C"] {
		t.Fatalf("after set: %v", m)
	}
	// Another device's new value arrives without the mark: C clears.
	c := pulled("C", "value-c-2", 3)
	c.Expect = 1
	if _, err := st.ApplyPull(ctx, pullSel, []Pulled{c}, nil); err != nil {
		t.Fatal(err)
	}
	if m := marks(); m["C"] || !m["B"] {
		t.Fatalf("after the second pull: %v", m)
	}
}
