package broker

import (
	"context"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestAuditRecordsNameTheSelection: every record the broker writes names
// the workspace and project it used (a team workspace's audit upload
// selects by them): an allowed request, a blocked one, a refused release,
// and a release over two projects names the workspace only.
func TestAuditRecordsNameTheSelection(t *testing.T) {
	w := newWorld(t, map[string]string{"A": valA})
	up := echoServer(t)
	w.bind("A", up.URL, nil)
	if _, _, err := w.do(w.broker(0), "GET", up.URL+"/ok", nil, nil, bearer("A")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.do(w.broker(0), "GET", "https://blocked.example/x", nil, nil, bearer("A")); err == nil {
		t.Fatal("a request to a host off the allowlist went out")
	}
	ctx := context.Background()
	other := vault.Selection{Workspace: w.sel.Workspace, Project: "other"}
	why := errcode.New(errcode.Denied, "refused")
	for _, refs := range [][]Ref{{{Selection: w.sel, Name: "A"}}, {{Selection: w.sel, Name: "A"}, {Selection: other, Name: "B"}}} {
		if err := RefuseRelease(ctx, ReleaseRequest{FrontEnd: "env", Refs: refs, Audit: w.log}, why); err != nil {
			t.Fatal(err)
		}
	}
	recs := w.audits()
	if len(recs) != 4 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		wantProject := w.sel.Project
		if i == 3 {
			wantProject = ""
		}
		if r.Workspace != w.sel.Workspace || r.Project != wantProject {
			t.Errorf("record %d (%s %s) names %q/%q", i, r.FrontEnd, r.Decision, r.Workspace, r.Project)
		}
	}
}
