package commands

// workspace audit: the team audit stream of a remote workspace, for its
// admins (issue 11, stage E).

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
)

type WorkspaceAuditCmd struct {
	WorkspaceFlag
	Member string `placeholder:"EMAIL" help:"Only records uploaded by this member." json:"member,omitempty"`
	Secret string `placeholder:"NAME" help:"Only records that used this secret." json:"secret,omitempty"`
	Since  string `placeholder:"TIME" help:"Only records at or after this time (RFC 3339, or a duration like 1h meaning that long ago)." json:"since,omitempty"`
	Last   int    `default:"100" help:"Show only the last N matching records (0: all)." json:"last,omitempty"`
}

// WorkspaceAuditResult is the team audit stream's records, oldest first.
type WorkspaceAuditResult struct {
	agsync.AuditResult
}

// parseSince reads a --since flag: an RFC 3339 time, or a duration meaning
// that long before now.
func parseSince(env *Env, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return env.Now().Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, errcode.New(errcode.Usage, "--since is neither an RFC 3339 time nor a duration like 1h")
}

func (c *WorkspaceAuditCmd) Run(env *Env) (*WorkspaceAuditResult, error) {
	since, err := parseSince(env, c.Since)
	if err != nil {
		return nil, err
	}
	if c.Last < 0 {
		return nil, errcode.Errorf(errcode.Usage, "--last must be zero (all) or positive, not %d", c.Last)
	}
	t, err := c.WorkspaceFlag.remote(env, "only a remote workspace has a team audit stream (see `agentsecrets proxy logs` for this device's)")
	if err != nil {
		return nil, err
	}
	r, err := t.conn.TeamAudit(env.ctx(), t.sel.Workspace, agsync.AuditFilter{Member: c.Member, Secret: c.Secret, Since: since, Last: c.Last})
	if err != nil {
		return nil, err
	}
	return &WorkspaceAuditResult{*r}, nil
}

func (r *WorkspaceAuditResult) WriteText(w io.Writer) error {
	for _, b := range r.Refused {
		fmt.Fprintf(w, "refused: %s\n", b)
	}
	if len(r.Records) == 0 {
		fmt.Fprintf(w, "no team audit records in workspace %s\n", r.Workspace)
		return nil
	}
	for _, e := range r.Records {
		rec, who := e.Record, e.Member
		if !e.Verified {
			who = "(unverified " + e.AccountID + ")"
		}
		reason := ""
		if rec.Reason != "" {
			reason = " (" + rec.Reason + ")"
		}
		fmt.Fprintf(w, "%s  %-24s %-8s %-5s %-6s %s [%s]%s\n", rec.Time.Format(time.RFC3339), who, rec.Decision, rec.FrontEnd,
			rec.Method, rec.Host, strings.Join(rec.Secrets, " "), reason)
	}
	return nil
}
