package commands

// Team commands: invite, invites, join, members (issue 11, stage A).

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

type WorkspaceInviteCmd struct {
	Email string `arg:"" help:"Email of the person to invite (they may not have an account yet)." json:"email"`
	Role  string `default:"member" enum:"admin,member,reader" help:"Role in the workspace: admin, member (reads and pushes secrets) or reader (reads only)." json:"role,omitempty"`
	WorkspaceFlag
	Approval
}

// WorkspaceInviteResult reports an invite. Code is shown once: the admin
// gives it to the invitee in person; this device keeps it to complete the
// invite once they accept.
type WorkspaceInviteResult struct {
	agsync.InviteResult
	Approved bool `json:"approved" jsonschema:"description=true when the admin passphrase was checked"`
}

// remoteTarget is what a team command acts on: the vault, its index, the
// selected workspace (a remote one) and a connection to its server.
type remoteTarget struct {
	st   *vault.Store
	ix   *vault.Index
	sel  Selected
	conn *agsync.Conn
}

// connect names the flag's workspace and connects to the account's server
// (connecting makes no request); the sync call checks the workspace is a
// remote one.
func (f WorkspaceFlag) connect(env *Env) (string, *agsync.Conn, error) {
	st, ix, err := env.openIndex()
	if err != nil {
		return "", nil, err
	}
	name, _, err := f.resolve(env, ix)
	if err != nil {
		return "", nil, err
	}
	conn, err := env.connect(st, ix)
	if err != nil {
		return "", nil, err
	}
	return name, conn, nil
}

// remote selects the flag's workspace, which must be remote (why says
// what the command needs of it), and connects to its server; connecting
// makes no request.
func (f WorkspaceFlag) remote(env *Env, why string) (*remoteTarget, error) {
	st, ix, err := env.openIndex()
	if err != nil {
		return nil, err
	}
	sel, w, err := f.selected(env, ix)
	if err != nil {
		return nil, err
	}
	if w.Remote == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "workspace %s is local only: %s", sel.Workspace, why),
			"run `agentsecrets workspace publish "+sel.Workspace+"` to sync it first")
	}
	conn, err := env.connect(st, ix)
	if err != nil {
		return nil, err
	}
	return &remoteTarget{st: st, ix: ix, sel: sel, conn: conn}, nil
}

func (c *WorkspaceInviteCmd) Run(env *Env) (*WorkspaceInviteResult, error) {
	email, err := agsync.NormEmail(c.Email)
	if err != nil {
		return nil, err
	}
	if err := agsync.ValidateRole(c.Role); err != nil {
		return nil, err
	}
	t, err := c.WorkspaceFlag.remote(env, "nobody else can be invited into it")
	if err != nil {
		return nil, err
	}
	ix, sel, conn := t.ix, t.sel, t.conn
	// Inviting widens who can read every value of the workspace: the
	// same local human approval as widening the allowlist.
	rerun := "agentsecrets workspace invite " + email + " --role " + c.Role + " --workspace " + sel.Workspace
	if err := c.Approval.approve(env, ix, sel, "inviting "+email+" as "+c.Role+" of workspace "+sel.Workspace,
		[]string{"email: " + email, "role:  " + c.Role}, rerun); err != nil {
		return nil, err
	}
	r, err := conn.Invite(env.ctx(), sel.Workspace, email, c.Role)
	if err != nil {
		return nil, err
	}
	return &WorkspaceInviteResult{InviteResult: *r, Approved: true}, nil
}

func (r *WorkspaceInviteResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Invited %s as %s of workspace %s (invite %s).\n", r.Email, r.Role, r.Workspace, r.InviteID)
	fmt.Fprintf(w, "Invite code for %s (give it to them in person; it is shown only now): %s\n", r.Email, r.Code)
	fmt.Fprintf(w, "They run: agentsecrets workspace join %s --code CODE\n", r.Workspace)
	fmt.Fprintln(w, "This device completes the invite the next time you run a workspace command after they joined (e.g. `agentsecrets workspace members`).")
	return nil
}

type WorkspaceInvitesCmd struct{}

// WorkspaceInvitesResult lists invites.
type WorkspaceInvitesResult struct {
	agsync.InvitesResult
}

func (c *WorkspaceInvitesCmd) Run(env *Env) (*WorkspaceInvitesResult, error) {
	conn, err := env.syncConn()
	if err != nil {
		return nil, err
	}
	r, err := conn.Invites(env.ctx())
	if err != nil {
		return nil, err
	}
	return &WorkspaceInvitesResult{*r}, nil
}

func (r *WorkspaceInvitesResult) WriteText(w io.Writer) error {
	for _, i := range r.Completed {
		fmt.Fprintf(w, "completed: %s joined %s as %s\n", i.Email, i.Workspace, i.Role)
	}
	if len(r.Mine) == 0 {
		fmt.Fprintln(w, "No invites for this account.")
	}
	for _, i := range r.Mine {
		fmt.Fprintf(w, "invited to %s as %s by %s (%s): agentsecrets workspace join %s --code CODE\n", i.Workspace, i.Role, i.InvitedBy, i.State, i.Workspace)
	}
	for _, i := range r.Sent {
		where := "code on another device"
		if i.CodeHere {
			where = "code on this device"
		}
		fmt.Fprintf(w, "sent: %s to %s as %s, %s (%s)\n", i.Email, i.Workspace, i.Role, i.State, where)
	}
	return nil
}

type WorkspaceJoinCmd struct {
	Name string `arg:"" help:"Workspace name as the invite shows it (or the invite id)." json:"name"`
	Code string `required:"" placeholder:"CODE" help:"The invite code the admin gave you (asinv-…); - reads it from stdin." json:"code"`
}

// WorkspaceJoinResult reports a join.
type WorkspaceJoinResult struct {
	agsync.JoinResult
}

func (c *WorkspaceJoinCmd) Run(env *Env) (*WorkspaceJoinResult, error) {
	code := c.Code
	if code == "-" {
		line, err := bufio.NewReader(io.LimitReader(env.IO.In, 1024)).ReadString('\n')
		if err != nil && err != io.EOF {
			return nil, errcode.Errorf(errcode.Usage, "cannot read the invite code from stdin")
		}
		code = strings.TrimSpace(line)
	}
	conn, err := env.syncConn()
	if err != nil {
		return nil, err
	}
	r, err := conn.Join(env.ctx(), c.Name, code)
	if err != nil {
		return nil, err
	}
	return &WorkspaceJoinResult{*r}, nil
}

func (r *WorkspaceJoinResult) WriteText(w io.Writer) error {
	switch r.State {
	case agsync.JoinJoined:
		fmt.Fprintf(w, "Joined workspace %s.\n", r.Workspace)
	default:
		fmt.Fprintf(w, "Accepted the invite to %s (as %s).\n", r.Workspace, r.Role)
	}
	if r.Next != "" {
		fmt.Fprintln(w, "Next: "+r.Next)
	}
	return nil
}

type WorkspaceMembersCmd struct {
	WorkspaceFlag
	Verify      string `placeholder:"EMAIL" help:"Mark this member's keys as checked in person (with --fingerprint)." json:"verify,omitempty"`
	Fingerprint string `placeholder:"FP" help:"The member's fingerprint as they read it from their 'agentsecrets account show'." json:"fingerprint,omitempty"`
}

// WorkspaceMembersResult lists the verified members.
type WorkspaceMembersResult struct {
	agsync.MembersResult
}

func (c *WorkspaceMembersCmd) Run(env *Env) (*WorkspaceMembersResult, error) {
	if (c.Verify == "") != (c.Fingerprint == "") {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--verify and --fingerprint go together"),
			"run `agentsecrets workspace members --verify EMAIL --fingerprint FP`")
	}
	name, conn, err := c.WorkspaceFlag.connect(env)
	if err != nil {
		return nil, err
	}
	var r *agsync.MembersResult
	if c.Verify != "" {
		r, err = conn.VerifyMember(env.ctx(), name, c.Verify, c.Fingerprint)
	} else {
		r, err = conn.Members(env.ctx(), name)
	}
	if err != nil {
		return nil, err
	}
	return &WorkspaceMembersResult{*r}, nil
}

func (r *WorkspaceMembersResult) WriteText(w io.Writer) error {
	for _, i := range r.Completed {
		fmt.Fprintf(w, "completed: %s joined as %s\n", i.Email, i.Role)
	}
	for _, m := range r.Members {
		fmt.Fprintf(w, "%-32s %-7s %s  %s\n", m.Email, m.Role, m.Fingerprint, m.Verification)
	}
	if r.Verified != "" {
		fmt.Fprintf(w, "Marked %s as verified in person.\n", r.Verified)
	}
	return nil
}
