package commands

// `workspace remove` (issue 11, stage C): remove a member and rotate every
// key they held.

import (
	"fmt"
	"io"
	"strings"

	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
)

type WorkspaceRemoveCmd struct {
	Member string `arg:"" help:"Email of the member to remove, or token:NAME for a service token." json:"member"`
	WorkspaceFlag
	Approval
}

// WorkspaceRemoveResult reports a removal and its rotation.
type WorkspaceRemoveResult struct {
	agsync.RemoveResult
	Approved bool `json:"approved" jsonschema:"description=true when the admin passphrase was checked"`
}

func (c *WorkspaceRemoveCmd) Run(env *Env) (*WorkspaceRemoveResult, error) {
	who := strings.TrimSpace(c.Member)
	if !strings.HasPrefix(who, agsync.TokenEmailPrefix) {
		email, err := agsync.NormEmail(who)
		if err != nil {
			return nil, err
		}
		who = email
	}
	t, err := c.WorkspaceFlag.remote(env, "it has no members to remove")
	if err != nil {
		return nil, err
	}
	ix, sel, conn := t.ix, t.sel, t.conn
	// Removing rewrites every key and re-seals every secret of the
	// workspace: the same local human approval as inviting.
	rerun := "agentsecrets workspace remove " + who + " --workspace " + sel.Workspace
	if err := c.Approval.approve(env, ix, sel, "removing "+who+" from workspace "+sel.Workspace+" (every key is rotated)",
		[]string{"member: " + who}, rerun); err != nil {
		return nil, err
	}
	r, err := conn.RemoveMember(env.ctx(), sel.Workspace, who)
	if err != nil {
		return nil, err
	}
	return &WorkspaceRemoveResult{RemoveResult: *r, Approved: true}, nil
}

func (r *WorkspaceRemoveResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Removed %s from workspace %s: workspace key version %d, %d member(s) remain, %d secret(s) re-encrypted.\n",
		r.Removed, r.Workspace, r.KeyVersion, r.Members, r.Reencrypted)
	for _, p := range r.Projects {
		if len(p.RotateUpstream) > 0 {
			writeRotateUpstream(w, p.Project, p.RotateUpstream)
		}
	}
	return nil
}

// writeRotateUpstream is the one text line every command shows for
// secrets a removed member could read: `ROTATE UPSTREAM: STRIPE_KEY (a
// removed member held it; set a new value)`, each name prefixed with
// prefix + "/" when one is given.
func writeRotateUpstream(w io.Writer, prefix string, names []string) {
	shown := names
	if prefix != "" {
		shown = make([]string, len(names))
		for i, n := range names {
			shown[i] = prefix + "/" + n
		}
	}
	fmt.Fprintf(w, "ROTATE UPSTREAM: %s (a removed member held it; set a new value)\n", strings.Join(shown, ", "))
}
