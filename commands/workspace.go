package commands

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// WorkspaceCmd groups workspace commands.
type WorkspaceCmd struct {
	Create    WorkspaceCreateCmd  `cmd:"" help:"Create a workspace (with a 'default' project)."`
	List      WorkspaceListCmd    `cmd:"" help:"List workspaces."`
	Switch    WorkspaceSwitchCmd  `cmd:"" help:"Make a workspace the current one (a remote one is fetched on first use)."`
	Publish   WorkspacePublishCmd `cmd:"" help:"Sync a local workspace to the account's server: keys, projects, allowlist and every secret."`
	Allowlist AllowlistCmd        `cmd:"" help:"Hosts that secrets in this workspace may be sent to."`
	Invite    WorkspaceInviteCmd  `cmd:"" help:"Invite someone into a remote workspace with a role (needs the admin passphrase; shows an invite code once)."`
	Invites   WorkspaceInvitesCmd `cmd:"" help:"List invites to this account, and the invites of workspaces it administers (completes accepted ones)."`
	Join      WorkspaceJoinCmd    `cmd:"" help:"Accept an invite with the code the inviting admin gave you."`
	Members   WorkspaceMembersCmd `cmd:"" help:"List a remote workspace's verified members and key fingerprints, or mark one checked in person."`
	Token     WorkspaceTokenCmd   `cmd:"" help:"Service tokens for CI and headless agents: create, list, revoke."`
	Remove    WorkspaceRemoveCmd  `cmd:"" help:"Remove a member from a remote workspace and rotate every key they held (needs the admin passphrase)."`
	Audit     WorkspaceAuditCmd   `cmd:"" help:"Show a remote workspace's team audit stream: every member's calls, by name only (admins)."`
}

// WorkspaceInfo describes one workspace.
type WorkspaceInfo struct {
	Name      string    `json:"name"`
	Current   bool      `json:"current"`
	Projects  []string  `json:"projects"`
	Allowlist int       `json:"allowlist"`
	CreatedAt time.Time `json:"created_at"`
	// Location is local (this device only), remote (synced, known here)
	// or remote_only (on the server, not used on this device yet).
	Location string `json:"location" jsonschema:"enum=local,enum=remote,enum=remote_only"`
	// Server and ID name the remote copy.
	Server string `json:"server,omitempty"`
	ID     string `json:"id,omitempty"`
}

// Workspace locations.
const (
	locationLocal      = "local"
	locationRemote     = "remote"
	locationRemoteOnly = "remote_only"
)

func workspaceInfo(ix *vault.Index, name string) WorkspaceInfo {
	w := ix.Workspaces[name]
	info := WorkspaceInfo{Name: name, Current: ix.Current.Workspace == name, Projects: vault.SortedKeys(w.Projects),
		Allowlist: len(w.Allowlist), CreatedAt: w.CreatedAt, Location: locationLocal}
	if w.Remote != nil {
		info.Location, info.Server, info.ID = locationRemote, w.Remote.Server, w.Remote.ID
	}
	return info
}

type WorkspaceCreateCmd struct {
	Name   string `arg:"" help:"Workspace name." json:"name"`
	Switch bool   `help:"Also make it the current workspace." json:"switch,omitempty"`
	Remote bool   `help:"Also publish it to the account's sync server (see 'workspace publish')." json:"remote,omitempty"`
}

// WorkspaceResult reports the workspace a command created or selected.
type WorkspaceResult struct {
	Workspace WorkspaceInfo `json:"workspace"`
	Created   bool          `json:"created"`
	// Fetched is true when a remote workspace was fetched from the server
	// on first use.
	Fetched bool `json:"fetched,omitempty"`
}

func (c *WorkspaceCreateCmd) Run(env *Env) (*WorkspaceResult, error) {
	if err := vault.CheckSpaceName("workspace", c.Name); err != nil {
		return nil, err
	}
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	var conn *agsync.Conn
	if c.Remote {
		// Signed in, or nothing is created.
		if conn, err = env.syncConn(); err != nil {
			return nil, err
		}
	}
	res := &WorkspaceResult{}
	err = st.Update(env.ctx(), func(ix *vault.Index) error {
		if _, ok := ix.Workspaces[c.Name]; !ok {
			ix.Workspaces[c.Name] = vault.NewWorkspace(env.Now())
			res.Created = true
		}
		if c.Switch {
			ix.Current = vault.Selection{Workspace: c.Name, Project: vault.DefaultName}
		}
		res.Workspace = workspaceInfo(ix, c.Name)
		if !res.Created && !c.Switch {
			return vault.ErrUnchanged
		}
		return nil
	})
	if err != nil || !c.Remote {
		return res, err
	}
	// Publishing talks to the server; the local workspace stays if it
	// fails, and `workspace publish NAME` finishes the job.
	if _, err := conn.Publish(env.ctx(), c.Name); err != nil {
		return nil, errcode.WithHint(err, "the workspace exists locally; run `agentsecrets workspace publish "+c.Name+"` once the server is reachable")
	}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	res.Workspace = workspaceInfo(ix, c.Name)
	return res, nil
}

type WorkspaceListCmd struct{}

// WorkspaceListResult lists workspaces.
type WorkspaceListResult struct {
	Workspaces []WorkspaceInfo `json:"workspaces"`
	// RemoteUnavailable says why the server's list is missing (signed in,
	// but the server could not be asked); the local list is complete.
	RemoteUnavailable string `json:"remote_unavailable,omitempty"`
}

func (c *WorkspaceListCmd) Run(env *Env) (*WorkspaceListResult, error) {
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	res := &WorkspaceListResult{Workspaces: []WorkspaceInfo{}}
	known := map[string]bool{}
	for _, name := range vault.SortedKeys(ix.Workspaces) {
		res.Workspaces = append(res.Workspaces, workspaceInfo(ix, name))
		if r := ix.Workspaces[name].Remote; r != nil {
			known[r.ID] = true
		}
	}
	if !env.syncable(ix) {
		return res, nil
	}
	// The server's list is a bonus: a failure to reach it never fails
	// the command.
	remote, err := func() ([]WorkspaceInfo, error) {
		conn, err := env.connect(st, ix)
		if err != nil {
			return nil, err
		}
		list, err := conn.RemoteWorkspaces(env.ctx())
		if err != nil {
			return nil, err
		}
		var out []WorkspaceInfo
		for _, w := range list {
			if !known[w.ID] {
				out = append(out, WorkspaceInfo{Name: w.Name, Projects: []string{}, CreatedAt: w.CreatedAt, Location: locationRemoteOnly,
					Server: conn.Account.Server, ID: w.ID})
			}
		}
		return out, nil
	}()
	if err != nil {
		rep := errcode.Classify(err)
		res.RemoteUnavailable = string(rep.Code) + ": " + rep.Message
		return res, nil
	}
	res.Workspaces = append(res.Workspaces, remote...)
	return res, nil
}

func (r *WorkspaceListResult) WriteText(w io.Writer) error {
	t := newTable(w)
	fmt.Fprintln(t, "\tWORKSPACE\tLOCATION\tPROJECTS\tALLOWLIST")
	var fetchable []string
	for _, ws := range r.Workspaces {
		if ws.Location == locationRemoteOnly {
			fmt.Fprintf(t, "%s\t%s\tserver only\t-\t-\n", currentMark(ws.Current), ws.Name)
			fetchable = append(fetchable, ws.Name)
			continue
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%d\t%d\n", currentMark(ws.Current), ws.Name, ws.Location, len(ws.Projects), ws.Allowlist)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, name := range fetchable {
		fmt.Fprintf(w, "%s is on the server only: agentsecrets workspace switch %s fetches it\n", name, name)
	}
	if r.RemoteUnavailable != "" {
		fmt.Fprintf(w, "remote list unavailable: %s\n", r.RemoteUnavailable)
	}
	return nil
}

type WorkspaceSwitchCmd struct {
	Name string `arg:"" predictor:"workspace" help:"Workspace to make current." json:"name"`
}

func (c *WorkspaceSwitchCmd) Run(env *Env) (*WorkspaceResult, error) {
	if err := vault.CheckSpaceName("workspace", c.Name); err != nil {
		return nil, err
	}
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	res := &WorkspaceResult{}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	if _, ok := ix.Workspaces[c.Name]; !ok && env.syncable(ix) {
		// Not here: a remote workspace is fetched on first use.
		conn, err := env.syncConn()
		if err != nil {
			return nil, err
		}
		if err := conn.AdoptWorkspace(env.ctx(), c.Name); err != nil {
			return nil, err
		}
		res.Fetched = true
	}
	err = st.Update(env.ctx(), func(ix *vault.Index) error {
		w, err := ix.Workspace(c.Name)
		if err != nil {
			return errcode.WithHint(err, "run `agentsecrets workspace create "+c.Name+"`")
		}
		proj := ""
		if ix.Current.Workspace == c.Name {
			proj = ix.Current.Project
		}
		if _, ok := w.Projects[proj]; !ok {
			proj = ""
			if _, ok := w.Projects[vault.DefaultName]; ok {
				proj = vault.DefaultName
			} else if names := vault.SortedKeys(w.Projects); len(names) > 0 {
				proj = names[0]
			}
		}
		ix.Current = vault.Selection{Workspace: c.Name, Project: proj}
		res.Workspace = workspaceInfo(ix, c.Name)
		return nil
	})
	return res, err
}

// AllowlistCmd groups allowlist commands.
type AllowlistCmd struct {
	Add    AllowlistAddCmd    `cmd:"" help:"Allow a host, or add flags to its entry; never drops one (needs the admin passphrase)."`
	Remove AllowlistRemoveCmd `cmd:"" help:"Remove a host (no approval needed)."`
	List   AllowlistListCmd   `cmd:"" help:"List allowed hosts."`
	Log    AllowlistLogCmd    `cmd:"" help:"Show the history of allowlist changes and their approvals."`
}

// WorkspaceFlag selects a workspace for workspace-level policy.
type WorkspaceFlag struct {
	Workspace string `placeholder:"NAME" help:"Workspace (default: project link or current selection)." json:"workspace,omitempty"`
}

// open reads the index and resolves the flag against it.
func (f WorkspaceFlag) open(env *Env) (*vault.Store, *vault.Index, string, *vault.Workspace, error) {
	st, err := env.Store()
	if err != nil {
		return nil, nil, "", nil, err
	}
	ix, err := st.Index()
	if err != nil {
		return nil, nil, "", nil, err
	}
	wsName, w, err := f.resolve(env, ix)
	return st, ix, wsName, w, err
}

func (f WorkspaceFlag) resolve(env *Env, ix *vault.Index) (string, *vault.Workspace, error) {
	sel, w, err := f.selected(env, ix)
	return sel.Workspace, w, err
}

// selected returns the selected workspace (project cleared: the command is
// workspace-wide) with where the choice came from.
func (f WorkspaceFlag) selected(env *Env, ix *vault.Index) (Selected, *vault.Workspace, error) {
	sel, err := Scope{Workspace: f.Workspace}.resolve(env, ix.Current)
	if err != nil {
		return Selected{}, nil, err
	}
	sel.Project = ""
	if err := env.limits.allow(sel.Selection); err != nil {
		return Selected{}, nil, err
	}
	w, err := ix.Workspace(sel.Workspace)
	return sel, w, err
}

type AllowlistAddCmd struct {
	Target       string `arg:"" help:"HOST[:PORT] to allow (no path, no scheme)." json:"target"`
	AllowHTTP    bool   `name:"allow-http" help:"Permit injection over plain http:// (local development)." json:"allow_http,omitempty"`
	AllowPrivate bool   `help:"Exempt from the private-address guard (local development; never cloud metadata)." json:"allow_private,omitempty"`
	WorkspaceFlag
	Approval
}

// AllowlistResult reports one allowlist change.
type AllowlistResult struct {
	Workspace string `json:"workspace"`
	// Entry is the entry as it stands after the command (as it stood, for
	// remove): After, or Before when removed.
	Entry policy.AllowEntry `json:"entry"`
	// Before is the entry the command found (absent when it added one),
	// After the entry it left (absent when it removed one).
	Before *policy.AllowEntry `json:"before,omitempty"`
	After  *policy.AllowEntry `json:"after,omitempty"`
	// Action is added, updated, unchanged or removed.
	Action   string `json:"action"`
	Approved bool   `json:"approved" jsonschema:"description=true when the admin passphrase was checked"`
	Notes
}

// Run adds the target, or merges the flags given into its entry: adding
// again never drops an exemption the entry already has, so a hint naming
// one flag cannot undo what the hint before it granted.
func (c *AllowlistAddCmd) Run(env *Env) (*AllowlistResult, error) {
	t, err := policy.ParseTarget(c.Target)
	if err != nil {
		return nil, err
	}
	if t.PathPrefix != "" {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "the allowlist holds hosts, not paths (%q)", c.Target),
			"allowlist the host, then restrict paths with `agentsecrets secrets bind NAME HOST/PATH`")
	}
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	asked := policy.AllowEntry{Host: t.Host, Port: t.Port, AllowHTTP: c.AllowHTTP, AllowPrivate: c.AllowPrivate, AddedAt: env.Now().UTC()}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	wsSel, _, err := c.WorkspaceFlag.selected(env, ix)
	if err != nil {
		return nil, err
	}
	wsName := wsSel.Workspace
	res := &AllowlistResult{Workspace: wsName}
	decide := func(ix *vault.Index) (vault.Change, error) {
		w, err := ix.Workspace(wsName)
		if err != nil {
			return vault.Change{}, err
		}
		old := findAllow(w, t)
		next := asked.Merged(old)
		return vault.Change{Widens: next.Widens(old), Lines: allowChangeLines(old, next)}, nil
	}
	approve := func(ix *vault.Index, ch vault.Change) error {
		return c.Approval.approve(env, ix, wsSel, "allowlisting "+t.String()+" in workspace "+wsName, ch.Lines, policy.AllowCommand(asked, wsName))
	}
	res.Approved, err = st.Widen(env.ctx(), decide, approve, func(ix *vault.Index, approved bool) error {
		w, err := ix.Workspace(wsName)
		if err != nil {
			return err
		}
		old := findAllow(w, t)
		next := asked.Merged(old)
		res.Entry, res.After = next, &next
		if old == nil {
			w.Allowlist = append(w.Allowlist, next)
			res.Action = "added"
		} else {
			before := *old
			res.Before = &before
			if before.AllowHTTP == next.AllowHTTP && before.AllowPrivate == next.AllowPrivate {
				res.Action = "unchanged"
				return vault.ErrUnchanged
			}
			*old = next
			res.Action = "updated"
		}
		w.AllowlistLog = append(w.AllowlistLog, next.Change(res.Action, approved, env.Now()))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if res.Before != nil && (res.Before.AllowHTTP && !c.AllowHTTP || res.Before.AllowPrivate && !c.AllowPrivate) {
		res.warn("%s keeps the exemptions it had (%s); to drop one, run `agentsecrets workspace allowlist remove %s --workspace %s`, then add it again",
			t, exemptions(*res.Before), t, wsName)
	}
	if res.Entry.AllowPrivate {
		res.warn("%s is exempt from the private-address guard; cloud metadata addresses stay blocked", t)
	}
	return res, nil
}

// allowChangeLines describe setting next where old stood (nil: absent),
// for the approval prompt: each flag, and what it was when it changes.
func allowChangeLines(old *policy.AllowEntry, next policy.AllowEntry) []string {
	flag := func(label string, was, now bool) string {
		if old != nil && was != now {
			return label + yesNo(now) + " (was " + yesNo(was) + ")"
		}
		return label + yesNo(now)
	}
	var wasHTTP, wasPrivate bool
	if old != nil {
		wasHTTP, wasPrivate = old.AllowHTTP, old.AllowPrivate
	}
	return []string{"host:       " + next.Target().String(),
		flag("plain http: ", wasHTTP, next.AllowHTTP),
		flag("private:    ", wasPrivate, next.AllowPrivate)}
}

// exemptions names the flags e carries, as allowlist add spells them.
func exemptions(e policy.AllowEntry) string {
	var on []string
	if e.AllowHTTP {
		on = append(on, "--allow-http")
	}
	if e.AllowPrivate {
		on = append(on, "--allow-private")
	}
	if len(on) == 0 {
		return "none"
	}
	return strings.Join(on, " ")
}

func flagIf(on bool, s string) string {
	if on {
		return s
	}
	return ""
}

func findAllow(w *vault.Workspace, t policy.Target) *policy.AllowEntry {
	for i := range w.Allowlist {
		if w.Allowlist[i].Host == t.Host && w.Allowlist[i].Port == t.Port {
			return &w.Allowlist[i]
		}
	}
	return nil
}

type AllowlistRemoveCmd struct {
	Target string `arg:"" help:"HOST[:PORT] to remove." json:"target"`
	WorkspaceFlag
}

func (c *AllowlistRemoveCmd) Run(env *Env) (*AllowlistResult, error) {
	t, err := policy.ParseTarget(c.Target)
	if err != nil {
		return nil, err
	}
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	res := &AllowlistResult{Action: "removed"}
	err = st.Update(env.ctx(), func(ix *vault.Index) error {
		wsName, w, err := c.WorkspaceFlag.resolve(env, ix)
		if err != nil {
			return err
		}
		res.Workspace = wsName
		old := findAllow(w, t)
		if old == nil {
			return errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s is not on the allowlist of workspace %s", t, wsName),
				"run `agentsecrets workspace allowlist list`")
		}
		res.Entry = *old
		res.Before = &res.Entry
		w.Allowlist = slices.DeleteFunc(w.Allowlist, func(e policy.AllowEntry) bool { return e.Host == t.Host && e.Port == t.Port })
		w.AllowlistLog = append(w.AllowlistLog, res.Entry.Change("removed", false, env.Now()))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

type AllowlistListCmd struct {
	WorkspaceFlag
}

// AllowlistListResult lists a workspace's allowed hosts.
type AllowlistListResult struct {
	Workspace string              `json:"workspace"`
	Hosts     []policy.AllowEntry `json:"hosts"`
}

func (c *AllowlistListCmd) Run(env *Env) (*AllowlistListResult, error) {
	_, _, wsName, w, err := c.WorkspaceFlag.open(env)
	if err != nil {
		return nil, err
	}
	hosts := append([]policy.AllowEntry{}, w.Allowlist...)
	slices.SortFunc(hosts, func(a, b policy.AllowEntry) int {
		if a.Host != b.Host {
			if a.Host < b.Host {
				return -1
			}
			return 1
		}
		return a.Port - b.Port
	})
	return &AllowlistListResult{Workspace: wsName, Hosts: hosts}, nil
}

func (r *AllowlistListResult) WriteText(w io.Writer) error {
	if len(r.Hosts) == 0 {
		fmt.Fprintf(w, "No hosts allowed in workspace %s.\n", r.Workspace)
		return nil
	}
	for _, h := range r.Hosts {
		extra := ""
		if h.AllowHTTP {
			extra += " allow-http"
		}
		if h.AllowPrivate {
			extra += " allow-private"
		}
		fmt.Fprintf(w, "%s%s\n", h.Target(), extra)
	}
	return nil
}

type AllowlistLogCmd struct {
	Last int `placeholder:"N" help:"Show only the newest N changes." json:"last,omitempty"`
	WorkspaceFlag
}

// AllowlistLogResult is a workspace's allowlist history, oldest first.
type AllowlistLogResult struct {
	Workspace string                   `json:"workspace"`
	Changes   []policy.AllowlistChange `json:"changes"`
}

func (c *AllowlistLogCmd) Run(env *Env) (*AllowlistLogResult, error) {
	if c.Last < 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--last must be 0 (all) or more"), "run `agentsecrets workspace allowlist log --last 20`")
	}
	_, _, wsName, w, err := c.WorkspaceFlag.open(env)
	if err != nil {
		return nil, err
	}
	changes := w.AllowlistLog
	if c.Last > 0 && len(changes) > c.Last {
		changes = changes[len(changes)-c.Last:]
	}
	return &AllowlistLogResult{Workspace: wsName, Changes: append([]policy.AllowlistChange{}, changes...)}, nil
}

func (r *AllowlistLogResult) WriteText(w io.Writer) error {
	if len(r.Changes) == 0 {
		fmt.Fprintf(w, "No allowlist changes in workspace %s.\n", r.Workspace)
		return nil
	}
	for _, c := range r.Changes {
		flags := flagIf(c.AllowHTTP, " allow-http") + flagIf(c.AllowPrivate, " allow-private")
		approval := ""
		if c.Approved {
			approval = " (approved)"
		}
		fmt.Fprintf(w, "%s  %-7s %s%s%s\n", c.At.Format(time.RFC3339), c.Action, policy.Target{Host: c.Host, Port: c.Port}, flags, approval)
	}
	return nil
}
