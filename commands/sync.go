package commands

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// syncConn opens the vault's connection to its sync server. It makes no
// request; a vault that is not signed in gets unauthorized with the login
// hint.
func (e *Env) syncConn() (*agsync.Conn, error) {
	st, err := e.Store()
	if err != nil {
		return nil, err
	}
	return e.connect(st, nil)
}

// remoteProject resolves the scope to an existing project and opens the
// connection, from one read of the index.
func (e *Env) remoteProject(s Scope) (*agsync.Conn, Selected, error) {
	st, ix, sel, err := e.openProject(s)
	if err != nil {
		return nil, sel, err
	}
	c, err := e.connect(st, ix)
	return c, sel, err
}

func checkSecretNames(names []string) error {
	for _, n := range names {
		if err := vault.CheckSecretName(n); err != nil {
			return err
		}
	}
	return nil
}

type SecretsDiffCmd struct {
	Names []string `arg:"" optional:"" name:"names" help:"Secrets to compare (default: every name here or on the server)." json:"names,omitempty"`
	Scope
}

// SecretsDiffResult is a project compared with the server, per name. It
// is decided from versions and keyed fingerprints; no value is shown.
type SecretsDiffResult struct {
	agsync.DiffResult
	// OutOfSync counts the names not in_sync.
	OutOfSync int      `json:"out_of_sync"`
	Next      []string `json:"next,omitempty"`
}

func (c *SecretsDiffCmd) Run(env *Env) (*SecretsDiffResult, error) {
	if err := checkSecretNames(c.Names); err != nil {
		return nil, err
	}
	conn, sel, err := env.remoteProject(c.Scope)
	if err != nil {
		return nil, err
	}
	d, err := conn.Diff(env.ctx(), sel.Selection, c.Names)
	if err != nil {
		return nil, err
	}
	return diffResult(d), nil
}

func diffResult(d *agsync.DiffResult) *SecretsDiffResult {
	res := &SecretsDiffResult{DiffResult: *d}
	pull, push := false, false
	for _, s := range d.Secrets {
		if s.State == agsync.InSync {
			continue
		}
		res.OutOfSync++
		switch s.State {
		case agsync.RemoteNewer, agsync.RemoteOnly:
			pull = true
		case agsync.LocalNewer, agsync.LocalOnly:
			push = true
		}
	}
	if pull {
		res.Next = append(res.Next, "agentsecrets secrets pull")
	}
	if push {
		res.Next = append(res.Next, "agentsecrets secrets push")
	}
	return res
}

// driftLine is the one text form of a name out of sync, shared by diff,
// status, pull and push: `OUT OF SYNC: STRIPE_KEY (remote is newer)`.
func driftLine(name, state string) string {
	switch state {
	case agsync.RemoteNewer:
		return "OUT OF SYNC: " + name + " (remote is newer)"
	case agsync.LocalNewer:
		return "OUT OF SYNC: " + name + " (local is newer)"
	case agsync.Conflict:
		return "CONFLICT: " + name + " (changed here and on the server)"
	case agsync.LocalOnly:
		return "LOCAL ONLY: " + name
	case agsync.RemoteOnly:
		return "REMOTE ONLY: " + name
	}
	return "in sync: " + name
}

func (r *SecretsDiffResult) WriteText(w io.Writer) error {
	var rotate []string
	for _, s := range r.Secrets {
		if s.State != agsync.InSync {
			fmt.Fprintln(w, driftLine(s.Name, s.State))
		}
		if s.RotateUpstream {
			rotate = append(rotate, s.Name)
		}
	}
	if len(rotate) > 0 {
		writeRotateUpstream(w, "", rotate)
	}
	inSync := len(r.Secrets) - r.OutOfSync
	if r.OutOfSync == 0 {
		fmt.Fprintf(w, "In sync: %d secrets in %s/%s\n", inSync, r.Workspace, r.Project)
	} else {
		fmt.Fprintf(w, "%d in sync, %d out of sync in %s/%s\n", inSync, r.OutOfSync, r.Workspace, r.Project)
	}
	for _, n := range r.Next {
		fmt.Fprintf(w, "Next: %s\n", n)
	}
	return nil
}

type SecretsPullCmd struct {
	Names []string `arg:"" optional:"" name:"names" help:"Secrets to pull (default: all)." json:"names,omitempty"`
	Force bool     `help:"Take the server's version of secrets changed here too, dropping the local change (a human on a terminal only)." json:"force,omitempty"`
	Scope
}

// SecretsPullResult reports a pull per name. Values went into the vault;
// none is in the result.
type SecretsPullResult struct {
	agsync.PullResult
}

func (c *SecretsPullCmd) Run(env *Env) (*SecretsPullResult, error) {
	r, err := transfer(env, c.Scope, c.Names, c.Force, (*agsync.Conn).Pull,
		"pull --force replaces this device's changes with the server's versions", "secrets pull --force")
	if err != nil {
		return nil, err
	}
	return &SecretsPullResult{*r}, nil
}

func (r *SecretsPullResult) WriteText(w io.Writer) error {
	for _, s := range r.Secrets {
		switch s.Action {
		case "created", "updated":
			fmt.Fprintf(w, "pulled %s (version %d)\n", s.Name, s.RemoteVersion)
		case "deleted":
			fmt.Fprintf(w, "deleted %s (deleted on the server)\n", s.Name)
		case "skipped":
			fmt.Fprintln(w, driftLine(s.Name, s.State))
		}
	}
	if r.Allowlist > 0 {
		fmt.Fprintf(w, "allowlist updated to version %d\n", r.Allowlist)
	}
	fmt.Fprintf(w, "Synced %d secrets\n", r.Synced)
	return nil
}

type SecretsPushCmd struct {
	Names []string `arg:"" optional:"" name:"names" help:"Secrets to push (default: every local change)." json:"names,omitempty"`
	Force bool     `help:"Overwrite the server's newer content with this device's (a human on a terminal only; history is kept)." json:"force,omitempty"`
	Scope
}

// SecretsPushResult reports a push per name.
type SecretsPushResult struct {
	agsync.PushResult
}

func (c *SecretsPushCmd) Run(env *Env) (*SecretsPushResult, error) {
	r, err := transfer(env, c.Scope, c.Names, c.Force, (*agsync.Conn).Push,
		"push --force overwrites newer content on the server with this device's", "secrets push --force")
	if err != nil {
		return nil, err
	}
	return &SecretsPushResult{*r}, nil
}

// transfer is a pull or a push (op) of names in the scope's project:
// names are checked before anything is opened, and --force is confirmed
// by a human on the terminal (what it drops, and the command) before op
// touches the server.
func transfer[R any](env *Env, s Scope, names []string, force bool,
	op func(*agsync.Conn, context.Context, vault.Selection, []string, bool) (*R, error), what, command string) (*R, error) {
	if err := checkSecretNames(names); err != nil {
		return nil, err
	}
	conn, sel, err := env.remoteProject(s)
	if err != nil {
		return nil, err
	}
	if force {
		if err := confirmForce(env, sel, what, command); err != nil {
			return nil, err
		}
	}
	return op(conn, env.ctx(), sel.Selection, names, force)
}

// confirmForce asks a human on the controlling terminal: --force drops
// what one device or the other stored, so an agent (no terminal) gets
// approval_required.
func confirmForce(env *Env, sel Selected, what, command string) error {
	prompt := "agentsecrets: " + what + "\n" +
		"  workspace:  " + sel.Workspace + "\n  project:    " + sel.Project + "\n  chosen by:  " + sel.Describe() + "\n" +
		"Type force to confirm: "
	answer, err := env.IO.Prompt(prompt)
	if err != nil {
		return errcode.WithHint(fmt.Errorf("%w (%s)", policy.ErrApprovalRequired, command),
			"a human runs `agentsecrets "+command+"` on a terminal; an agent runs `agentsecrets secrets diff` and asks the human")
	}
	if strings.TrimSpace(string(answer)) != "force" {
		return errcode.Errorf(errcode.Denied, "%s was not confirmed", command)
	}
	return nil
}

func (r *SecretsPushResult) WriteText(w io.Writer) error {
	for _, s := range r.Secrets {
		switch s.Action {
		case "pushed":
			fmt.Fprintf(w, "pushed %s (version %d)\n", s.Name, s.RemoteVersion)
		case "deleted":
			fmt.Fprintf(w, "pushed the deletion of %s (version %d)\n", s.Name, s.RemoteVersion)
		case "skipped":
			fmt.Fprintln(w, driftLine(s.Name, s.State))
		}
	}
	if r.Allowlist > 0 {
		fmt.Fprintf(w, "allowlist pushed as version %d\n", r.Allowlist)
	}
	fmt.Fprintf(w, "Synced %d secrets\n", r.Synced)
	return nil
}

type SecretsHistoryCmd struct {
	Name string `arg:"" help:"Secret name." json:"name"`
	Scope
}

// SecretsHistoryResult lists a secret's versions: metadata only.
type SecretsHistoryResult struct {
	agsync.HistoryResult
}

func (c *SecretsHistoryCmd) Run(env *Env) (*SecretsHistoryResult, error) {
	if err := vault.CheckSecretName(c.Name); err != nil {
		return nil, err
	}
	conn, sel, err := env.remoteProject(c.Scope)
	if err != nil {
		return nil, err
	}
	h, err := conn.History(env.ctx(), sel.Selection, c.Name)
	if err != nil {
		return nil, err
	}
	return &SecretsHistoryResult{*h}, nil
}

func (r *SecretsHistoryResult) WriteText(w io.Writer) error {
	if len(r.Versions) == 0 {
		fmt.Fprintf(w, "No versions of %s on the server.\n", r.Name)
	}
	for _, v := range r.Versions {
		fmt.Fprintf(w, "%s  version %-4d %s\n", v.CreatedAt.Format("2006-01-02T15:04:05Z07:00"), v.Version, v.Author)
	}
	return nil
}

type ProjectLinkCmd struct {
	Name       string `arg:"" optional:"" help:"Project (default: the selected one)." json:"name,omitempty"`
	AutoPush   bool   `xor:"autopush" help:"Push each 'secrets set' to the server right away." json:"auto_push,omitempty"`
	NoAutoPush bool   `xor:"autopush" help:"Stop pushing on 'secrets set' (the default)." json:"no_auto_push,omitempty"`
	WorkspaceFlag
}

// ProjectLinkResult reports a project linked to its workspace's server.
type ProjectLinkResult struct {
	agsync.LinkResult
}

func (c *ProjectLinkCmd) Run(env *Env) (*ProjectLinkResult, error) {
	scope := Scope{Workspace: c.Workspace, Project: c.Name}
	_, _, sel, err := env.openProject(scope)
	if err != nil {
		return nil, err
	}
	conn, err := env.syncConn()
	if err != nil {
		return nil, err
	}
	var auto *bool
	if c.AutoPush || c.NoAutoPush {
		auto = &c.AutoPush
	}
	r, err := conn.Link(env.ctx(), sel.Selection, auto)
	if err != nil {
		return nil, err
	}
	return &ProjectLinkResult{*r}, nil
}

func (r *ProjectLinkResult) WriteText(w io.Writer) error {
	verb := "linked"
	if r.Created {
		verb = "created on the server and linked"
	}
	fmt.Fprintf(w, "%s/%s %s; auto-push %s\n", r.Workspace, r.Project, verb, onOff(r.AutoPush))
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

type WorkspacePublishCmd struct {
	Name string `arg:"" optional:"" help:"Workspace (default: the selected one)." json:"name,omitempty"`
}

// WorkspacePublishResult reports a workspace made remote.
type WorkspacePublishResult struct {
	agsync.PublishResult
}

func (c *WorkspacePublishCmd) Run(env *Env) (*WorkspacePublishResult, error) {
	_, ix, err := env.openIndex()
	if err != nil {
		return nil, err
	}
	name := c.Name
	if name == "" {
		sel, err := Scope{}.resolve(env, ix.Current)
		if err != nil {
			return nil, err
		}
		name = sel.Workspace
	}
	if err := vault.CheckSpaceName("workspace", name); err != nil {
		return nil, err
	}
	if _, err := ix.Workspace(name); err != nil {
		return nil, err
	}
	conn, err := env.syncConn()
	if err != nil {
		return nil, err
	}
	r, err := conn.Publish(env.ctx(), name)
	if err != nil {
		return nil, err
	}
	return &WorkspacePublishResult{*r}, nil
}

func (r *WorkspacePublishResult) WriteText(w io.Writer) error {
	verb := "already on"
	if r.Created {
		verb = "published to"
	}
	n := 0
	for _, p := range r.Projects {
		n += p.Synced
	}
	fmt.Fprintf(w, "workspace %s %s %s (%d projects)\n", r.Workspace, verb, r.Server, len(r.Projects))
	fmt.Fprintf(w, "Synced %d secrets\n", n)
	return nil
}

// autoPush pushes what `secrets set` stored when its project was linked
// with --auto-push, and reports the outcome in res. Nothing is pushed
// otherwise: a set never reaches the network by surprise.
func autoPush(env *Env, res *SecretsWriteResult) {
	_, ix, err := env.openIndex()
	if err != nil {
		return
	}
	sel := vault.Selection{Workspace: res.Workspace, Project: res.Project}
	p, err := ix.Project(sel)
	if err != nil || p.Sync == nil || !p.Sync.AutoPush || ix.Workspaces[sel.Workspace].Remote == nil {
		return
	}
	var names []string
	for _, r := range res.Secrets {
		if r.Action != "unchanged" && r.Action != "skipped" {
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	conn, err := env.syncConn()
	if err == nil {
		res.Push, err = conn.Push(env.ctx(), sel, names, false)
	}
	if err != nil {
		rep := errcode.Classify(err)
		res.PushError = &rep
		res.warn("stored locally, but the auto-push failed (%s); run `agentsecrets secrets push`", rep.Code)
	}
}
