package vault

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/tidwall/gjson"
)

// View is a read-only window on index.json that decodes only the parts a
// reader asks for. `secrets list` uses it: it must cost little more than
// starting the process, and decoding a 1,000-secret index in full with
// encoding/json costs several times as much as picking one project out of
// it. Writers always decode the whole Index; TestViewMatchesIndex keeps the
// two readings equal.
type View struct {
	data string
}

// View reads index.json without the lock (it is replaced atomically).
func (s *Store) View() (*View, error) {
	b, err := readIndexFile(s.Dirs.IndexFile())
	if err != nil {
		return nil, err
	}
	return newView(b)
}

func newView(b []byte) (*View, error) {
	// A full validation pass would cost as much as the lookup itself. The
	// file is only ever replaced whole; a torn or foreign file still fails
	// here or in the lookups, and doctor decodes it completely.
	t := bytes.TrimSpace(b)
	if len(t) < 2 || t[0] != '{' || t[len(t)-1] != '}' {
		return nil, errcode.WithHint(fmt.Errorf("%w: not a JSON object", ErrCorruptIndex), "run `agentsecrets doctor`")
	}
	// The bytes are never modified again, so the string can share them.
	v := &View{data: unsafe.String(unsafe.SliceData(b), len(b))}
	if f := gjson.Get(v.data, "format"); f.Int() != IndexFormat {
		return nil, errcode.WithHint(fmt.Errorf("%w: unsupported index format %s", ErrCorruptIndex, f.Raw), "run `agentsecrets doctor`")
	}
	return v, nil
}

// Current is the user's current selection.
func (v *View) Current() Selection {
	c := gjson.Get(v.data, "current")
	return Selection{Workspace: c.Get("workspace").String(), Project: c.Get("project").String()}
}

// NamedSecret is a secret's metadata with its name.
type NamedSecret struct {
	Name string
	*Secret
}

// Project decodes one project's secrets in name order, or returns the same
// not_found errors as Index.Project. encoding/json writes map keys sorted,
// so file order is name order unless someone edited the file by hand.
func (v *View) Project(sel Selection) ([]NamedSecret, error) {
	ws := gjson.Get(v.data, "workspaces."+escapePath(sel.Workspace))
	if !ws.IsObject() {
		return nil, (&Index{Workspaces: map[string]*Workspace{}}).projectError(sel)
	}
	p := ws.Get("projects." + escapePath(sel.Project))
	if !p.IsObject() {
		return nil, (&Index{Workspaces: map[string]*Workspace{sel.Workspace: {}}}).projectError(sel)
	}
	var out []NamedSecret
	var bad error
	p.Get("secrets").ForEach(func(k, val gjson.Result) bool {
		s := &Secret{Bindings: []policy.Binding{}}
		val.ForEach(func(fk, fv gjson.Result) bool {
			switch fk.Str {
			case "version":
				s.Version = int(fv.Int())
			case "created_at":
				s.CreatedAt, bad = parseTime(fv)
			case "updated_at":
				s.UpdatedAt, bad = parseTime(fv)
			case "fingerprint":
				s.Fingerprint = fv.Str
			case "fingerprint_scheme":
				s.FingerprintScheme = int(fv.Int())
			case "source":
				s.Source = fv.Str
			case "bindings":
				if len(fv.Array()) > 0 {
					bad = json.Unmarshal([]byte(fv.Raw), &s.Bindings)
				}
			case "releases":
				for _, r := range fv.Array() {
					s.Releases = append(s.Releases, r.Str)
				}
			case "rotate_upstream":
				s.RotateUpstream = fv.Bool()
			}
			return bad == nil
		})
		if bad == nil && (!validSecretName(k.Str) || s.Version < 1) {
			bad = fmt.Errorf("invalid secret entry %q", printable(k.Str))
		}
		out = append(out, NamedSecret{Name: k.Str, Secret: s})
		return bad == nil
	})
	if bad != nil {
		return nil, errcode.WithHint(fmt.Errorf("%w: %v", ErrCorruptIndex, bad), "run `agentsecrets doctor`")
	}
	if !slices.IsSortedFunc(out, func(a, b NamedSecret) int { return strings.Compare(a.Name, b.Name) }) {
		slices.SortFunc(out, func(a, b NamedSecret) int { return strings.Compare(a.Name, b.Name) })
	}
	return out, nil
}

func parseTime(r gjson.Result) (time.Time, error) {
	if r.Type != gjson.String {
		return time.Time{}, errors.New("timestamp is not a string")
	}
	return time.Parse(time.RFC3339Nano, r.Str)
}

// escapePath makes a workspace or project name safe inside a gjson path;
// names may contain '.', which gjson treats as a separator.
func escapePath(name string) string {
	var b strings.Builder
	for _, c := range name {
		switch c {
		case '.', '*', '?', '|', '#', '@', '\\', '!', '=', '<', '>', '%':
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
