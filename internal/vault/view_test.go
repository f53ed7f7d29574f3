package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// TestViewMatchesIndex: the fast read path decodes exactly what the full
// decoder does, for every field of Secret.
func TestViewMatchesIndex(t *testing.T) {
	now := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.UTC)
	ix := newIndex(now)
	ix.Workspaces["team.one"] = NewWorkspace(now)
	ix.Workspaces["team.one"].Projects["api-v2"] = NewProject(now)
	for i, sel := range []Selection{{DefaultName, DefaultName}, {"team.one", "api-v2"}} {
		p := ix.Workspaces[sel.Workspace].Projects[sel.Project]
		for j := range 5 {
			s := &Secret{Version: j + 1, CreatedAt: now.Add(time.Duration(j) * time.Hour), UpdatedAt: now.Add(time.Duration(j) * time.Minute),
				Fingerprint: fmt.Sprintf("%064x", i*10+j), FingerprintScheme: j % 3, Source: "set", Bindings: []policy.Binding{}}
			if j%2 == 1 {
				s.Bindings = []policy.Binding{{Host: "api.example.com", Port: 8443, PathPrefix: "/v1", Methods: []string{"GET"},
					Surfaces: []string{"header", "query"}, CreatedAt: now}}
			}
			switch j {
			case 2:
				s.Releases = []string{policy.ReleaseEnv}
			case 3:
				s.Releases = []string{policy.ReleaseEnv, policy.ReleaseOpenClaw}
			case 4:
				s.RotateUpstream = true
			}
			p.Secrets[fmt.Sprintf("KEY_%d", j)] = s
		}
	}
	b, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	full, err := decodeIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	view, err := newView(b)
	if err != nil {
		t.Fatal(err)
	}
	if view.Current() != full.Current {
		t.Fatalf("current %v vs %v", view.Current(), full.Current)
	}
	for _, sel := range []Selection{{DefaultName, DefaultName}, {"team.one", "api-v2"}} {
		list, err := view.Project(sel)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]*Secret{}
		for i, ns := range list {
			if i > 0 && list[i-1].Name >= ns.Name {
				t.Fatalf("not in name order: %s before %s", list[i-1].Name, ns.Name)
			}
			got[ns.Name] = ns.Secret
		}
		want := full.Workspaces[sel.Workspace].Projects[sel.Project].Secrets
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("%v:\nview  %s\nindex %s", sel, gj, wj)
		}
	}
	for _, sel := range []Selection{{"nope", DefaultName}, {DefaultName, "nope"}, {"team", "one.api-v2"}} {
		_, err := view.Project(sel)
		if !errors.Is(err, ErrNotFound) || errcode.Classify(err).Code != errcode.NotFound {
			t.Errorf("%v: %v", sel, err)
		}
	}
	for _, bad := range []string{`{`, `{"format":2}`, `[]`} {
		if _, err := newView([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	corrupt := `{"format":1,"workspaces":{"w":{"projects":{"p":{"secrets":{"9BAD":{"version":1}}}}}}}`
	if v, err := newView([]byte(corrupt)); err != nil {
		t.Fatal(err)
	} else if _, err := v.Project(Selection{"w", "p"}); !errors.Is(err, ErrCorruptIndex) {
		t.Fatalf("invalid entry: %v", err)
	}
}
