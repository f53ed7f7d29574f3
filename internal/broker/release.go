package broker

// Release: the two paths on which a value leaves the broker for another
// process rather than for an upstream (`env -- CMD` and `openclaw resolve`).
// They live here so that the broker stays the one place that reads values;
// the front ends get them only through a Released, after a check of the
// human-approved release flags that looks at names alone.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/audit"
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

	// fin is the release's audit record, written once by Finish (behind a
	// pointer: Format's value receiver copies the struct).
	fin *releaseRecord
}

type releaseRecord struct {
	auditor  Auditor
	rec      *audit.Record
	start    time.Time
	now      func() time.Time
	withheld map[Ref]bool
	once     sync.Once
	err      error
}

// ReleaseRequest is one release of values to another process.
type ReleaseRequest struct {
	// FrontEnd is audit.FrontEndEnv or audit.FrontEndOpenClaw.
	FrontEnd string
	// Mode is the release flag every ref must carry (policy.ReleaseEnv,
	// policy.ReleaseOpenClaw).
	Mode string
	Refs []Ref
	// Audit takes the release's record; a release without one is refused.
	Audit Auditor
	// Now times the record; nil means time.Now.
	Now func() time.Time
}

// ErrNoAuditor: a release was asked for without an audit log, a bug.
var ErrNoAuditor = errcode.New(errcode.Internal, "a value release needs an audit log")

// Release reads the values of req.Refs, every one of which must pass
// CheckRelease against the index as it is now: if any does not, nothing is
// read. Refs are deduplicated; order is kept.
//
// It audits the way Do does, so that no value leaves without a record:
// the log must be ready before any value is read; a refusal or a failure
// is recorded here (and if that record cannot be written, the log's
// error, unavailable, is returned instead); a successful release is
// recorded by Finish, which the caller must call once it has handed the
// values out or given up.
func Release(ctx context.Context, st *vault.Store, req ReleaseRequest) (_ *Released, err error) {
	if req.Audit == nil {
		return nil, ErrNoAuditor
	}
	if req.Now == nil {
		req.Now = time.Now
	}
	if err := req.Audit.Ready(ctx); err != nil {
		return nil, err
	}
	r := &Released{values: make(map[Ref]secret.Value, len(req.Refs)), fin: &releaseRecord{auditor: req.Audit, now: req.Now, start: req.Now(),
		rec: startRecord(ctx, req)}}
	defer func() {
		if err != nil {
			r.Wipe()
			// A failure that cannot even be audited is reported as the
			// audit log's failure: that is what a human must fix first.
			if aerr := r.Finish(ctx, ReleaseOutcome{Err: err}); aerr != nil {
				err = aerr
			}
		}
	}()
	ix, err := st.SharedIndex()
	if err != nil {
		return nil, err
	}
	for _, ref := range req.Refs {
		if err := CheckRelease(ix, req.Mode, ref); err != nil {
			return nil, err
		}
	}
	for _, ref := range req.Refs {
		if _, ok := r.values[ref]; ok {
			continue
		}
		v, err := st.Value(ctx, ref.Selection, ref.Name)
		if err != nil {
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

// RefuseRelease records a release refused before Release was asked (the
// OpenClaw resolver decides per id): nothing is read. The error is the
// audit log's.
func RefuseRelease(ctx context.Context, req ReleaseRequest, why error) error {
	if req.Audit == nil {
		return ErrNoAuditor
	}
	rec := startRecord(ctx, req)
	audit.Fail(rec, why)
	return req.Audit.Append(context.WithoutCancel(ctx), rec)
}

// ReleaseOutcome is how a release ended, for its audit record.
type ReleaseOutcome struct {
	// Err is why the values were not handed out after all (nil: they were).
	Err error
	// Command is the base name of the program `env` started; ExitCode its
	// status.
	Command  string
	ExitCode int
}

// Finish writes the release's audit record, once (later calls return the
// first call's error): allowed, naming the values handed out (all but
// those withheld), or, when o.Err is set, the refusal with its decision
// and reason (errcode.AuditOf). The error is the audit log's
// (unavailable): the caller then withholds whatever it still can, and
// reports that error rather than o.Err.
func (r *Released) Finish(ctx context.Context, o ReleaseOutcome) error {
	f := r.fin
	f.once.Do(func() {
		rec := f.rec
		rec.Command, rec.ExitCode = o.Command, o.ExitCode
		rec.DurationMS = float64(f.now().Sub(f.start).Microseconds()) / 1000
		if o.Err != nil {
			audit.Fail(rec, o.Err)
		} else {
			rec.Decision = audit.DecisionAllowed
			rec.Secrets = rec.Secrets[:0]
			for _, ref := range r.refs {
				if !f.withheld[ref] && !slices.Contains(rec.Secrets, ref.Name) {
					rec.Secrets = append(rec.Secrets, ref.Name)
				}
			}
		}
		f.err = f.auditor.Append(context.WithoutCancel(ctx), rec)
	})
	return f.err
}

// Withhold marks ref's value as read but not handed out, so the allowed
// record does not name it.
func (r *Released) Withhold(ref Ref) {
	if r.fin.withheld == nil {
		r.fin.withheld = map[Ref]bool{}
	}
	r.fin.withheld[ref] = true
}

// AuditID is the ID of the release's audit record.
func (r *Released) AuditID() string { return r.fin.rec.ID }

// startRecord is a release's audit record before its outcome: the
// names, and the workspace and project when every ref shares them (a
// team workspace's audit upload selects records by them).
func startRecord(ctx context.Context, req ReleaseRequest) *audit.Record {
	rec := &audit.Record{ID: newID(), FrontEnd: req.FrontEnd, Secrets: refNames(req.Refs), Styles: []string{}}
	audit.StampClient(ctx, rec)
	for i, ref := range req.Refs {
		if i == 0 {
			rec.Workspace, rec.Project = ref.Workspace, ref.Project
		}
		if ref.Workspace != rec.Workspace {
			rec.Workspace = ""
		}
		if ref.Project != rec.Project {
			rec.Project = ""
		}
	}
	return rec
}

func refNames(refs []Ref) []string {
	out := make([]string, 0, len(refs))
	for _, ref := range refs {
		if !slices.Contains(out, ref.Name) {
			out = append(out, ref.Name)
		}
	}
	return out
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

// ReasonValueInArgv is the audit reason of ErrValueInArgv.
const ReasonValueInArgv = "value_in_argv"

// ErrValueInArgv: a released value (in some encoding) is in the argument
// list of the program it would be given to, where every local user can read
// it (ps, /proc) and shell history keeps it.
var ErrValueInArgv = errcode.NewReason(errcode.Denied, ReasonValueInArgv, "refusing to start: a secret's value appears in the command's arguments")
