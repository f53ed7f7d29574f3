package broker

// Release: the two paths on which a value leaves the broker for another
// process rather than for an upstream (`env -- CMD` and `openclaw resolve`).
// They live here so that the broker stays the one place that reads values;
// the front ends get them only through a Released, after a check of the
// human-approved release flags that looks at names alone.

import (
	"context"
	"fmt"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Ref names one secret of one project.
type Ref struct {
	vault.Selection
	Name string
}

func (r Ref) String() string { return r.Workspace + "/" + r.Project + "/" + r.Name }

// CheckRelease decides from the index alone whether ref's value may be
// released in mode: not_found for an unknown secret, approval_required
// (with the bind command a human runs) for one never approved.
func CheckRelease(ix *vault.Index, mode string, ref Ref) error {
	s, err := ix.Secret(ref.Selection, ref.Name)
	if err != nil {
		return err
	}
	return policy.CheckRelease(s.Releases, mode, ref.Workspace, ref.Project, ref.Name)
}

// Released holds values handed out by Release. Its Format method prints no
// field, and each value is a secret.Value, which prints as a redaction.
type Released struct {
	refs     []Ref
	values   map[Ref]secret.Value
	redactor *Redactor
}

// Release reads the values of refs, every one of which must pass
// CheckRelease against the index as it is now: if any does not, nothing is
// read. Refs are deduplicated; order is kept.
func Release(ctx context.Context, st *vault.Store, mode string, refs []Ref) (*Released, error) {
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	r := &Released{values: make(map[Ref]secret.Value, len(refs))}
	for _, ref := range refs {
		if err := CheckRelease(ix, mode, ref); err != nil {
			return nil, err
		}
	}
	for _, ref := range refs {
		if _, ok := r.values[ref]; ok {
			continue
		}
		v, err := st.Value(ctx, ref.Selection, ref.Name)
		if err != nil {
			r.Wipe()
			return nil, err
		}
		r.refs = append(r.refs, ref)
		r.values[ref] = v
	}
	all := make([][]byte, 0, len(r.refs))
	for _, ref := range r.refs {
		all = append(all, r.values[ref].Reveal())
	}
	r.redactor = NewRedactor(all)
	return r, nil
}

// Value is ref's value (empty if it was not released). It is wiped by Wipe.
func (r *Released) Value(ref Ref) secret.Value { return r.values[ref] }

// Redactor masks every released value and its encodings, for the output of
// a process the values were given to.
func (r *Released) Redactor() *Redactor { return r.redactor }

// Contains reports whether s holds any released value in any form the
// redactor knows (raw, base64, hex, URL or JSON escaping).
func (r *Released) Contains(s string) bool {
	_, hit := r.redactor.String(s)
	return hit
}

// Wipe overwrites the released values. The redactor keeps its own forms,
// since output may still be flowing.
func (r *Released) Wipe() {
	for _, v := range r.values {
		v.Wipe()
	}
	clear(r.values)
}

// Format prints the set without its values.
func (r Released) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "broker.Released{%d values}", len(r.refs))
}

// ErrValueInArgv: a released value (in some encoding) is in the argument
// list of the program it would be given to, where every local user can read
// it (ps, /proc) and shell history keeps it.
var ErrValueInArgv = errcode.New(errcode.Denied, "refusing to start: a secret's value appears in the command's arguments")
