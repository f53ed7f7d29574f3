package sync

import (
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestRecordDrift: a diff of some names replaces only their drift
// entries; one of all names replaces everything; sameDrift tells when a
// record would change nothing but the time.
func TestRecordDrift(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := func() *vault.ProjectSync {
		return &vault.ProjectSync{Drift: []vault.Drift{{Name: "A", State: RemoteNewer}, {Name: "B", State: LocalOnly}}}
	}
	tests := []struct {
		name  string
		diffs []NameDiff
		names []string
		want  []vault.Drift
		same  bool
	}{
		{"all in sync now", []NameDiff{{Name: "A", State: InSync}, {Name: "B", State: InSync}}, nil, nil, false},
		{"unchanged", []NameDiff{{Name: "A", State: RemoteNewer}, {Name: "B", State: LocalOnly}}, nil,
			[]vault.Drift{{Name: "A", State: RemoteNewer}, {Name: "B", State: LocalOnly}}, true},
		{"one name checked", []NameDiff{{Name: "A", State: InSync}}, []string{"A"}, []vault.Drift{{Name: "B", State: LocalOnly}}, false},
		{"one name changed state", []NameDiff{{Name: "B", State: Conflict}}, []string{"B"},
			[]vault.Drift{{Name: "A", State: RemoteNewer}, {Name: "B", State: Conflict}}, false},
		{"a new name", []NameDiff{{Name: "A", State: RemoteNewer}, {Name: "B", State: LocalOnly}, {Name: "C", State: RemoteOnly}}, nil,
			[]vault.Drift{{Name: "A", State: RemoteNewer}, {Name: "B", State: LocalOnly}, {Name: "C", State: RemoteOnly}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := base()
			if got := sameDrift(ps, tt.diffs, tt.names, now); got != tt.same {
				t.Errorf("sameDrift = %v, want %v", got, tt.same)
			}
			if len(ps.Drift) != 2 || ps.CheckedAt != nil {
				t.Fatalf("sameDrift changed its input: %+v", ps)
			}
			recordDrift(ps, tt.diffs, tt.names, now)
			if len(ps.Drift) != len(tt.want) {
				t.Fatalf("drift %+v, want %+v", ps.Drift, tt.want)
			}
			for i := range tt.want {
				if ps.Drift[i] != tt.want[i] {
					t.Errorf("drift %+v, want %+v", ps.Drift, tt.want)
				}
			}
			if ps.CheckedAt == nil || !ps.CheckedAt.Equal(now) {
				t.Errorf("checked at %v", ps.CheckedAt)
			}
		})
	}
}
