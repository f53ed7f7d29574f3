package sync

import (
	"errors"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

func base(v int) *vault.SecretSync { return &vault.SecretSync{Version: v} }

// TestDecide covers every combination of: local absent / unchanged /
// changed / deleted, with and without a common base; remote absent / at
// the base / moved / deleted; and the value comparison for the one case
// that needs it.
func TestDecide(t *testing.T) {
	tests := []struct {
		name     string
		l        Local
		r        Remote
		same     *bool // nil: must not be asked
		want     string
		rollback bool
	}{
		{name: "nowhere", l: Local{}, r: Remote{}, want: ""},
		{name: "deleted on both, never synced here", l: Local{}, r: Remote{Head: 3, Deleted: true}, want: ""},
		{name: "local only", l: Local{Exists: true, Changed: true}, r: Remote{}, want: LocalOnly},
		{name: "local only over a remote deletion", l: Local{Exists: true, Changed: true}, r: Remote{Head: 2, Deleted: true}, want: LocalOnly},
		{name: "remote only", l: Local{}, r: Remote{Head: 1}, want: RemoteOnly},
		{name: "both new, same value", l: Local{Exists: true, Changed: true}, r: Remote{Head: 1}, same: ptr(true), want: InSync},
		{name: "both new, other value", l: Local{Exists: true, Changed: true}, r: Remote{Head: 1}, same: ptr(false), want: Conflict},
		{name: "in sync", l: Local{Exists: true, Base: base(2)}, r: Remote{Head: 2}, want: InSync},
		{name: "local newer", l: Local{Exists: true, Changed: true, Base: base(2)}, r: Remote{Head: 2}, want: LocalNewer},
		{name: "remote newer", l: Local{Exists: true, Base: base(2)}, r: Remote{Head: 3}, want: RemoteNewer},
		{name: "remote deleted it", l: Local{Exists: true, Base: base(2)}, r: Remote{Head: 3, Deleted: true}, want: RemoteNewer},
		{name: "both changed, same value", l: Local{Exists: true, Changed: true, Base: base(2)}, r: Remote{Head: 4}, same: ptr(true), want: InSync},
		{name: "both changed, other values", l: Local{Exists: true, Changed: true, Base: base(2)}, r: Remote{Head: 4}, same: ptr(false), want: Conflict},
		{name: "changed here, deleted there", l: Local{Exists: true, Changed: true, Base: base(2)}, r: Remote{Head: 3, Deleted: true}, want: Conflict},
		{name: "deleted here", l: Local{Deleted: true, Base: base(2)}, r: Remote{Head: 2}, want: LocalNewer},
		{name: "deleted here, changed there", l: Local{Deleted: true, Base: base(2)}, r: Remote{Head: 3}, want: Conflict},
		{name: "deleted on both sides", l: Local{Deleted: true, Base: base(2)}, r: Remote{Head: 3, Deleted: true}, want: InSync},
		{name: "stored again after a delete", l: Local{Exists: true, Changed: true, Base: base(2)}, r: Remote{Head: 2}, want: LocalNewer},
		{name: "rollback", l: Local{Exists: true, Base: base(5)}, r: Remote{Head: 4}, rollback: true},
		{name: "vanished from the server", l: Local{Exists: true, Base: base(1)}, r: Remote{}, rollback: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := false
			same := func() (bool, error) {
				asked = true
				if tt.same == nil {
					return false, errors.New("asked")
				}
				return *tt.same, nil
			}
			got, err := Decide("STRIPE_KEY", tt.l, tt.r, same)
			if tt.rollback {
				if !errors.Is(err, ErrRollback) || errcode.Classify(err).Code != errcode.Conflict {
					t.Fatalf("err = %v, want a rollback conflict", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("state %q, want %q", got, tt.want)
			}
			if asked != (tt.same != nil) {
				t.Errorf("value comparison asked: %v", asked)
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

// TestDiffProject: names come from the index, the tombstones and the
// server; explicit names filter; an unknown one is not_found; only the
// both-changed name reaches the value comparison.
func TestDiffProject(t *testing.T) {
	p := vault.NewProject(time.Time{})
	add := func(name string, version int, synced *vault.SecretSync) {
		s := &vault.Secret{Version: version}
		p.Secrets[name] = s
		if synced != nil {
			s.MarkSynced(synced.Version, "h")
		}
	}
	add("SAME", 1, base(1))
	add("MINE", 1, nil)
	add("BOTH", 1, base(1))
	p.Secrets["BOTH"].Version = 2
	p.Sync = &vault.ProjectSync{Tombstones: map[string]vault.SecretSync{"DROPPED": {Version: 1}}}
	heads := map[string]Remote{"SAME": {Head: 1}, "BOTH": {Head: 2}, "DROPPED": {Head: 1}, "THEIRS": {Head: 1}}
	var asked []string
	same := func(name string) (bool, error) { asked = append(asked, name); return false, nil }
	got, err := DiffProject(p, heads, nil, same)
	if err != nil {
		t.Fatal(err)
	}
	want := []NameDiff{
		{Name: "BOTH", State: Conflict, LocalVersion: 2, RemoteVersion: 2},
		{Name: "DROPPED", State: LocalNewer, RemoteVersion: 1, Deleted: "local"},
		{Name: "MINE", State: LocalOnly, LocalVersion: 1},
		{Name: "SAME", State: InSync, LocalVersion: 1, RemoteVersion: 1},
		{Name: "THEIRS", State: RemoteOnly, RemoteVersion: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
	if len(asked) != 1 || asked[0] != "BOTH" {
		t.Errorf("values compared for %v, want only BOTH", asked)
	}
	if d := Drift(got); len(d) != 4 {
		t.Errorf("drift %+v", d)
	}
	if got, err := DiffProject(p, heads, []string{"SAME"}, same); err != nil || len(got) != 1 {
		t.Errorf("filtered: %+v %v", got, err)
	}
	if _, err := DiffProject(p, heads, []string{"NOPE"}, same); errcode.Classify(err).Code != errcode.NotFound {
		t.Errorf("unknown name: %v", err)
	}
}

// TestDiffProjectDeletions: a deletion both sides agree on is not listed;
// a name the server recreated after it is remote_newer; a local deletion
// of a synced secret is local_newer marked deleted locally.
func TestDiffProjectDeletions(t *testing.T) {
	p := vault.NewProject(time.Time{})
	p.Sync = &vault.ProjectSync{Tombstones: map[string]vault.SecretSync{
		"GONE":     {Version: 3, Deleted: true},
		"REBORN":   {Version: 2, Deleted: true},
		"MINE_DEL": {Version: 4},
	}}
	heads := map[string]Remote{"GONE": {Head: 3, Deleted: true}, "REBORN": {Head: 3}, "MINE_DEL": {Head: 4}}
	got, err := DiffProject(p, heads, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []NameDiff{
		{Name: "MINE_DEL", State: LocalNewer, RemoteVersion: 4, Deleted: "local"},
		{Name: "REBORN", State: RemoteNewer, RemoteVersion: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("got %+v, want %+v", got[i], want[i])
		}
	}
}
