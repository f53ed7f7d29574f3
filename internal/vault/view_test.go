package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
)

// viewFixture is an index with two projects of five secrets that between
// them set every field of Secret, in a workspace whose name has a '.'.
func viewFixture(t testing.TB) []byte {
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
			case 1:
				s.Synced = &SecretSync{Version: 3, Hash: fmt.Sprintf("%064x", j), LocalVersion: j + 1, Bindings: "digest"}
			case 2:
				s.Releases = []string{policy.ReleaseEnv}
			case 3:
				s.Releases = []string{policy.ReleaseEnv, policy.ReleaseOpenClaw}
			case 4:
				s.RotateUpstream = true
			}
			p.Secrets[fmt.Sprintf("KEY_%d", j)] = s
		}
		p.Sync = &ProjectSync{AutoPush: true, KeyVersion: 2, LastPull: &now}
	}
	ix.Workspaces["team.one"].Allowlist = []policy.AllowEntry{{Host: "api.example.com", AllowPrivate: true}}
	b, err := json.Marshal(ix)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestViewMatchesIndex: the fast read path decodes exactly what the full
// decoder does, for every field of Secret.
func TestViewMatchesIndex(t *testing.T) {
	b := viewFixture(t)
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
		if diff := viewDiff(view, full, sel); diff != "" {
			t.Fatal(diff)
		}
	}
	for _, sel := range []Selection{{"nope", DefaultName}, {DefaultName, "nope"}, {"team", "one.api-v2"}} {
		_, err := view.Project(sel)
		if !errors.Is(err, ErrNotFound) || errcode.Classify(err).Code != errcode.NotFound {
			t.Errorf("%v: %v", sel, err)
		}
	}
	for _, bad := range []string{`{`, `{"format":2}`, `[]`, `{"format":1.0}`, `{"format":"1"}`, `{"revision":1,"format":1`} {
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

// bigIndex is one project of 1,000 secrets, the shape `secrets list` reads
// after an import (BenchmarkListVsStart in e2e times the whole process).
func bigIndex(b *testing.B) []byte {
	now := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.UTC)
	ix := newIndex(now)
	p := ix.Workspaces[DefaultName].Projects[DefaultName]
	for i := range 1000 {
		p.Secrets[fmt.Sprintf("SECRET_%04d", i)] = &Secret{Version: 1, CreatedAt: now.Add(time.Duration(i) * time.Second),
			UpdatedAt: now.Add(time.Duration(i) * time.Minute), Fingerprint: fmt.Sprintf("%064x", i), FingerprintScheme: 2,
			Source: "import", Bindings: []policy.Binding{}}
	}
	data, err := json.Marshal(ix)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkViewProject decodes the one project of bigIndex through a View.
func BenchmarkViewProject(b *testing.B) {
	data := bigIndex(b)
	view, err := newView(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if list, err := view.Project(Selection{DefaultName, DefaultName}); err != nil || len(list) != 1000 {
			b.Fatal(len(list), err)
		}
	}
}

// BenchmarkDecodeIndex decodes bigIndex whole, as every command that reads
// the index does, beside json.Unmarshal of the same bytes.
func BenchmarkDecodeIndex(b *testing.B) {
	data := bigIndex(b)
	for _, dec := range []struct {
		name   string
		decode func([]byte, *Index) error
	}{{"ours", decodeIndexJSON}, {"encoding_json", func(b []byte, ix *Index) error { return json.Unmarshal(b, ix) }}} {
		b.Run(dec.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				var ix Index
				if err := dec.decode(data, &ix); err != nil || len(ix.Workspaces[DefaultName].Projects[DefaultName].Secrets) != 1000 {
					b.Fatal(err)
				}
			}
		})
	}
}

// viewDiff says how view's reading of sel differs from the full decoder's,
// or "" if it does not.
func viewDiff(view *View, full *Index, sel Selection) string {
	list, err := view.Project(sel)
	if err != nil {
		return fmt.Sprintf("%v: %v", sel, err)
	}
	got := map[string]*Secret{}
	for i, ns := range list {
		if i > 0 && list[i-1].Name >= ns.Name {
			return fmt.Sprintf("%v: not in name order: %s before %s", sel, list[i-1].Name, ns.Name)
		}
		got[ns.Name] = ns.Secret
	}
	want := map[string]*Secret{}
	for name, s := range full.Workspaces[sel.Workspace].Projects[sel.Project].Secrets {
		c := *s
		c.Synced = nil // not read by a View
		want[name] = &c
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		return fmt.Sprintf("%v:\nview  %s\nindex %s", sel, gj, wj)
	}
	return ""
}

// viewSeeds are index texts that the full decoder accepts and that use
// what a hand edit may: other key case, escapes, white space, nulls.
var viewSeeds = []string{
	`{"format":1,"current":{"workspace":"w","project":"p"},"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"version":1}}}}}}}`,
	`{ "Format" : 1 , "Workspaces" : { "w" : { "Projects" : { "p" : { "Secrets" : { "A\u0042" : { "VERSION" : 2 , "source" : "s\u00e9t" , "bindings" : null , "releases" : [ "env" ] , "rotate_upstream" : true } } } } } } }`,
	`{"format":1,"current":null,"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"version":1,"created_at":"2026-01-02T03:04:05+01:00","synced":{"version":3},"x":[{"]":"}"}]}}}}}}}`,
	`{"format":1,"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"version":1,"created_at":null,"fingerprint":"\"\\"}}}}}}}`,
}

// FuzzViewProject: View never panics, and on every index that the full
// decoder accepts and that repeats no key (the writer never does; see
// viewscan.go), it reads the same current selection and the same secrets.
func FuzzViewProject(f *testing.F) {
	f.Add(viewFixture(f))
	for _, seed := range viewSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		view, verr := newView(b)
		if verr == nil {
			view.Current()
			view.Project(Selection{DefaultName, DefaultName})
			view.Project(Selection{"w", "p"})
		}
		full, err := decodeIndex(b)
		if err != nil || repeatsKey(b) {
			return
		}
		if verr != nil {
			t.Fatalf("View rejects an index the full decoder reads: %v", verr)
		}
		if view.Current() != full.Current {
			t.Fatalf("current %v vs %v", view.Current(), full.Current)
		}
		for wn, w := range full.Workspaces {
			for pn := range w.Projects {
				if diff := viewDiff(view, full, Selection{wn, pn}); diff != "" {
					t.Fatal(diff)
				}
			}
			if _, err := view.Project(Selection{wn, "no such project"}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing project in %q: %v", wn, err)
			}
		}
		if _, err := view.Project(Selection{"no such workspace", DefaultName}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing workspace: %v", err)
		}
	})
}

// FuzzDecodeIndex: decodeIndexJSON accepts exactly what json.Unmarshal
// accepts, and decodes it to the same Index.
func FuzzDecodeIndex(f *testing.F) {
	f.Add(viewFixture(f))
	for _, seed := range viewSeeds {
		f.Add([]byte(seed))
	}
	for _, seed := range []string{
		`{"format":1} {}`,
		`{"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"version":01}}}}}}}`,
		`{"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"version":1,"x":[1,]}}}}}}}`,
		`{"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"source":"a\u0000\t"}}},"P":{"secrets":null}}},"W":null},"Workspaces":{"v":{}}}`,
		`{"workspaces":{"w":{"projects":{"p":{"secrets":{"A":{"synced":{"version":2},"synced":{"hash":"h"},"bindings":[{"host":"a"}],"bindings":[]}}}}}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var want, got Index
		werr := json.Unmarshal(b, &want)
		gerr := decodeIndexJSON(b, &got)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoding/json: %v; decodeIndexJSON: %v", werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("decodeIndexJSON %s\nencoding/json    %s", gj, wj)
		}
	})
}

// repeatsKey reports whether any object in the JSON text b has two keys
// that are equal when case-folded (encoding/json matches struct fields so).
func repeatsKey(b []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	type level struct {
		keys     []string
		inObject bool
		wantKey  bool
	}
	var stack []*level
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.inObject && top.wantKey {
			if k, ok := tok.(string); ok {
				for _, seen := range top.keys {
					if strings.EqualFold(seen, k) {
						return true
					}
				}
				top.keys = append(top.keys, k)
				top.wantKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if top != nil {
				top.wantKey = true
			}
			stack = append(stack, &level{inObject: tok == json.Delim('{'), wantKey: true})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		default:
			if top != nil {
				top.wantKey = true
			}
		}
	}
}
