package broker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

func TestReleasedHidesAndFindsValues(t *testing.T) {
	const value = "rel-value-0123456789abcdef"
	ref := Ref{Selection: vault.Selection{Workspace: "w", Project: "p"}, Name: "KEY"}
	v := []byte(value)
	r := &Released{refs: []Ref{ref}, values: map[Ref]secret.Value{ref: secret.New(v)}, redactor: NewRedactor([][]byte{[]byte(value)})}
	for _, s := range []string{fmt.Sprintf("%v", r), fmt.Sprintf("%+v", *r), fmt.Sprintf("%#v", r), fmt.Sprint(r)} {
		if strings.Contains(s, "rel-value") {
			t.Fatalf("formatting leaks the value: %s", s)
		}
	}
	for _, arg := range []string{value, "--token=" + value, base64.StdEncoding.EncodeToString([]byte(value)), "--unrelated-argument"} {
		want := arg != "--unrelated-argument"
		if got := r.Contains(arg); got != want {
			t.Errorf("Contains(%q) = %v, want %v", arg, got, want)
		}
	}
	if ref.String() != "w/p/KEY" {
		t.Errorf("Ref.String() = %q", ref.String())
	}
	r.Wipe()
	if strings.Trim(string(v), "\x00") != "" || !r.Value(ref).Empty() {
		t.Fatal("Wipe left the value")
	}
	if !r.Contains(value) {
		t.Fatal("Wipe must keep the redactor: output may still be flowing")
	}
}

// allowRelease sets mode on secret, as a human's `secrets bind --release`.
func (w *world) allowRelease(secret, mode string) {
	w.t.Helper()
	err := w.st.Update(context.Background(), func(ix *vault.Index) error {
		s, err := ix.Secret(w.sel, secret)
		if err != nil {
			return err
		}
		s.Releases, _ = policy.AddRelease(s.Releases, mode)
		return nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// TestReleaseAudits: Release writes the record of every outcome itself, so
// that neither env nor openclaw can release a value without one: a refusal
// is recorded with the one mapping's decision and reason, a release when
// Finish is called (naming only the values handed out), and an audit log
// that cannot take the record refuses the release before any value is read.
func TestReleaseAudits(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA, "B": valB})
	w.allowRelease("A", policy.ReleaseEnv)
	ref := func(n string) Ref { return Ref{Selection: w.sel, Name: n} }
	req := func(refs ...Ref) ReleaseRequest {
		return ReleaseRequest{FrontEnd: audit.FrontEndEnv, Mode: policy.ReleaseEnv, Refs: refs, Audit: w.log}
	}
	ctx := context.Background()

	if _, err := Release(ctx, w.st, req(ref("A"), ref("B"))); errcode.Classify(err).Code != errcode.ApprovalRequired {
		t.Fatalf("B is not released: %v", err)
	}
	if _, err := Release(ctx, w.st, req(ref("NOPE"))); errcode.Classify(err).Code != errcode.NotFound {
		t.Fatalf("unknown secret: %v", err)
	}
	w.allowRelease("B", policy.ReleaseEnv)
	rel, err := Release(ctx, w.st, req(ref("A"), ref("B"), ref("A")))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(w.audits()); n != 2 {
		t.Fatalf("%d records before Finish, want the 2 refusals", n)
	}
	rel.Withhold(ref("B"))
	if err := rel.Finish(ctx, ReleaseOutcome{Command: "sh", ExitCode: 3}); err != nil {
		t.Fatal(err)
	}
	if err := rel.Finish(ctx, ReleaseOutcome{Err: errors.New("late")}); err != nil {
		t.Fatal(err)
	}
	type row struct{ decision, reason, code, secrets, command string }
	var got []row
	for _, r := range w.audits() {
		if r.FrontEnd != audit.FrontEndEnv {
			t.Errorf("front end %q", r.FrontEnd)
		}
		got = append(got, row{r.Decision, r.Reason, r.Code, strings.Join(r.Secrets, ","), r.Command})
	}
	want := []row{
		{audit.DecisionBlocked, policy.ReasonNotReleased, "approval_required", "A,B", ""},
		{audit.DecisionError, "unknown_secret", "not_found", "NOPE", ""},
		{audit.DecisionAllowed, "", "", "A", "sh"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("records\n got %v\nwant %v", got, want)
	}
	if rel.AuditID() != w.audits()[2].ID {
		t.Fatal("AuditID is not the release record's")
	}

	// No record, no release: a log that cannot take one refuses the
	// release with unavailable, and a record that cannot be appended at
	// the end is reported by Finish.
	logPath := filepath.Join(w.dirs.State, "audit.log")
	rel, err = Release(ctx, w.st, req(ref("A")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(logPath, logPath+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(logPath, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := rel.Finish(ctx, ReleaseOutcome{}); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("Finish on a broken log: %v", err)
	}
	if _, err := Release(ctx, w.st, req(ref("A"))); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("Release on a broken log: %v", err)
	}
	if err := RefuseRelease(ctx, req(ref("B")), policy.ErrNotReleased); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("RefuseRelease on a broken log: %v", err)
	}
	if _, err := Release(ctx, w.st, ReleaseRequest{Mode: policy.ReleaseEnv, Refs: []Ref{ref("A")}}); !errors.Is(err, ErrNoAuditor) {
		t.Fatalf("Release without an auditor: %v", err)
	}
}

// TestAuditStylesAreBrokerStyles ties the audit record's closed set of
// style names to the broker's Style constants: the broker accepts exactly
// the styles the audit log keeps, and a request in each style is recorded
// under the broker's name for it.
func TestAuditStylesAreBrokerStyles(t *testing.T) {
	broker := []string{StyleBearer, StyleBasic, StyleHeader, StyleQuery, StyleBody, StyleForm}
	if got := audit.Styles(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(broker))) {
		t.Fatalf("audit styles %v, broker styles %v", got, broker)
	}
	w := newWorld(t, map[string]string{"A": valA, "U": "user:" + valB})
	up := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.WriteString(rw, "ok") }))
	defer up.Close()
	for _, n := range []string{"A", "U"} {
		w.bind(n, up.URL, func(b *policy.Binding) { b.Surfaces, b.HeaderNames = policy.Surfaces, []string{"F"} })
	}
	b := w.broker(0)
	for _, style := range audit.Styles() {
		in := Injection{Style: style, Secret: "A", Field: "f"}
		if style == StyleBearer || style == StyleBasic {
			in.Field = ""
		}
		if style == StyleBasic {
			in.Secret = "U"
		}
		method := http.MethodGet
		if style == StyleBody || style == StyleForm {
			method = http.MethodPost
		}
		if _, _, err := w.do(b, method, up.URL+"/x", nil, nil, in); err != nil {
			t.Fatalf("%s: %v", style, err)
		}
		recs := w.audits()
		if got := recs[len(recs)-1].Styles; !slices.Equal(got, []string{style}) {
			t.Errorf("%s: recorded styles %v", style, got)
		}
	}
	if _, err := (&Request{Method: "GET", URL: up.URL, Injections: []Injection{{Style: "cookie", Secret: "A"}}}).validate(&targetCache{}); err == nil {
		t.Error("the broker accepts a style the audit log does not know")
	}
}
