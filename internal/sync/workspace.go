package sync

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Conn is a signed-in device acting on its remote workspaces: the API
// client, the local vault and, loaded on first need, the account's
// identity (a keychain read and one request, which a diff that finds
// nothing moved never pays).
type Conn struct {
	Client  *Client
	Store   *vault.Store
	Account vault.Account
	now     func() time.Time

	id Identity
	// ix is the index as read at Connect, which a diff decides from (a
	// 200-secret index costs ~2 ms to decode); writers read it afresh.
	ix *vault.Index
	// notes and completeErr are what completing invites reported (see
	// completeHeld).
	notes       TeamNotes
	completeErr error
	// token is set when the connection signs in with a service token
	// (ConnectToken) instead of the vault's account.
	token *tokenAuth
}

// notSignedIn is the error of every remote operation without a session.
func notSignedIn() error {
	return errcode.WithHint(errcode.New(errcode.Unauthorized, "not signed in to a sync server"),
		"run `agentsecrets login --server URL --email EMAIL` (a human, on a terminal)")
}

// Connect builds the connection of a signed-in vault. It makes no request.
// ix is the index the caller just read, or nil to read it.
func Connect(st *vault.Store, ix *vault.Index, getenv func(string) string, now func() time.Time) (*Conn, error) {
	if ix == nil {
		var err error
		if ix, err = st.Index(); err != nil {
			return nil, err
		}
	}
	if !ix.Account.SignedIn() {
		return nil, notSignedIn()
	}
	if now == nil {
		now = time.Now
	}
	c, err := NewClient(Options{Server: ix.Account.Server, Email: ix.Account.Email, Sessions: newFirstSession(st, ix), Getenv: getenv, Now: now})
	if err != nil {
		return nil, err
	}
	return &Conn{Client: c, Store: st, Account: *ix.Account, now: now, ix: ix}, nil
}

// firstSession is the vault as the client's session store, answering the
// first Session from the index Connect read (one decode of the index per
// command, not two); later ones, and every update, go to the vault.
type firstSession struct {
	*vault.Store
	ix atomic.Pointer[vault.Index]
}

func newFirstSession(st *vault.Store, ix *vault.Index) *firstSession {
	f := &firstSession{Store: st}
	f.ix.Store(ix)
	return f
}

func (f *firstSession) Session(ctx context.Context) (vault.Session, error) {
	if ix := f.ix.Swap(nil); ix != nil {
		return f.Store.SessionOf(ctx, ix)
	}
	return f.Store.Session(ctx)
}

// identity loads the account's private keys from the vault backend,
// checked against the public keys recorded at sign-in.
func (c *Conn) identity(ctx context.Context) (Identity, error) {
	if c.id.Valid() {
		return c.id, nil
	}
	if c.token != nil {
		id, err := c.tokenIdentity(ctx)
		c.id = id
		return id, err
	}
	id, err := LoadIdentity(ctx, c.Store)
	if err != nil {
		return Identity{}, err
	}
	c.id = id
	return id, nil
}

// Keys are the unwrapped keys of one remote project.
type Keys struct {
	WorkspaceID string
	Workspace   []byte
	Project     []byte
	KeyVersion  int
	Detail      syncapi.WorkspaceDetail
	id          Identity
	roster      *Roster
	// lookup trusts the signers of secret envelopes (admins and members),
	// admins the signers of allowlist documents.
	lookup, admins SignerLookup
	// held: this device holds invite codes of the workspace.
	held bool
	// Previous are the project's older keys by key version, kept by
	// rotations so older versions of its secrets still open.
	Previous map[int][]byte
}

// Wipe clears the keys.
func (k *Keys) Wipe() {
	clear(k.Workspace)
	clear(k.Project)
	for _, pk := range k.Previous {
		clear(pk)
	}
}

// projectKeySet is the project's keys as VerifyChain takes them.
func (k *Keys) projectKeySet() ProjectKeys {
	by := map[int][]byte{k.KeyVersion: k.Project}
	for v, pk := range k.Previous {
		by[v] = pk
	}
	return ProjectKeys{Current: k.KeyVersion, ByVersion: by}
}

// workspaceKeys fetches a workspace, verifies its roster and opens its
// key through this account's verified membership record. An admin's
// device then completes the accepted invites it holds the code of
// (completeHeld), and fetches the workspace again if it added anyone.
func (c *Conn) workspaceKeys(ctx context.Context, wsID string) (*Keys, error) {
	k, err := c.openWorkspace(ctx, wsID)
	if err != nil {
		return nil, err
	}
	if c.completeHeld(ctx, k) > 0 {
		k.Wipe()
		return c.openWorkspace(ctx, wsID)
	}
	return k, nil
}

// openWorkspace is workspaceKeys without completing invites.
func (c *Conn) openWorkspace(ctx context.Context, wsID string) (*Keys, error) {
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	detail, err := c.Client.Workspace(ctx, wsID)
	if err != nil {
		return nil, err
	}
	if detail.Workspace.ID != wsID {
		return nil, refuse("workspace "+wsID, CheckRetarget, "the server answered with another workspace")
	}
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	roster, err := c.verifyRoster(ctx, ix, detail, id)
	if err != nil {
		return nil, err
	}
	m := roster.Members[c.Account.ID]
	if m == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "this account is not a member of workspace %s on the server", wsID),
			"run `agentsecrets workspace list`")
	}
	k := &Keys{WorkspaceID: wsID, Detail: detail, id: id, roster: roster, lookup: roster.SecretSigners(), admins: roster.AdminSigners(),
		held: holdsInvites(ix, wsID)}
	_, wsKey, err := OpenMembership(id, c.Account.ID, wsID, m.Listing, k.admins)
	if err != nil {
		return nil, err
	}
	k.Workspace = wsKey
	return k, nil
}

// projectKeys adds a project's key to the workspace keys.
func (c *Conn) projectKeys(ctx context.Context, wsID, project string) (*Keys, error) {
	k, err := c.workspaceKeys(ctx, wsID)
	if err != nil {
		return nil, err
	}
	for _, p := range k.Detail.Projects {
		if p.Name != project {
			continue
		}
		pk, err := UnwrapProjectKey(k.Workspace, wsID, project, p.KeyVersion, p.WrappedKey)
		if err != nil {
			k.Wipe()
			return nil, err
		}
		k.Project, k.KeyVersion = pk, p.KeyVersion
		if k.Previous, err = unwrapPrevious(k.Workspace, wsID, p); err != nil {
			k.Wipe()
			return nil, err
		}
		return k, nil
	}
	k.Wipe()
	return nil, unknownProject(project)
}

func unknownProject(project string) error {
	return errcode.WithHint(errcode.Errorf(errcode.NotFound, "project %s does not exist on the server", project),
		"run `agentsecrets project link` to create it there, or `agentsecrets project list`")
}

// remoteOf returns a selection's remote workspace, or a usage error for a
// local one.
func remoteOf(ix *vault.Index, sel vault.Selection) (*vault.RemoteWorkspace, *vault.Project, error) {
	p, err := ix.Project(sel)
	if err != nil {
		return nil, nil, err
	}
	w := ix.Workspaces[sel.Workspace]
	if w.Remote == nil {
		return nil, nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "workspace %s is local only", sel.Workspace),
			"run `agentsecrets workspace publish "+sel.Workspace+"` to sync it")
	}
	if p.Sync == nil {
		return nil, nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "project %s of workspace %s is not on the server yet", sel.Project, sel.Workspace),
			"run `agentsecrets project link "+sel.Project+"`")
	}
	return w.Remote, p, nil
}

// checkServer refuses a workspace of another server than the session's.
func (c *Conn) checkServer(r *vault.RemoteWorkspace) error {
	if r.Server != c.Account.Server {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "this workspace syncs with %s, but this device is signed in to %s", r.Server, c.Account.Server),
			"run `agentsecrets login --server "+r.Server+" --email EMAIL`")
	}
	return nil
}

// newID is 32 random lowercase hex digits: a workspace or invite id.
func newID() (string, error) {
	b, err := crypto.Random(16)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// RemoteWorkspaces lists the workspaces the account belongs to.
func (c *Conn) RemoteWorkspaces(ctx context.Context) ([]syncapi.Workspace, error) {
	l, err := c.Client.Workspaces(ctx)
	if err != nil {
		return nil, err
	}
	return l.Workspaces, nil
}

// newProjectKey creates a project on the server under wsKey and returns
// the project's sync state.
func (c *Conn) createProject(ctx context.Context, wsID string, wsKey []byte, name string) (*vault.ProjectSync, []byte, error) {
	pk, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return nil, nil, err
	}
	const keyVersion = 1
	wrapped, err := WrapProjectKey(wsKey, wsID, name, keyVersion, pk)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Client.CreateProject(ctx, wsID, syncapi.CreateProjectRequest{Name: name, WrappedKey: wrapped, KeyVersion: keyVersion}); err != nil {
		return nil, nil, err
	}
	return &vault.ProjectSync{KeyVersion: keyVersion}, pk, nil
}

// PublishResult reports a workspace made remote.
type PublishResult struct {
	Workspace string `json:"workspace"`
	ID        string `json:"id"`
	Server    string `json:"server"`
	// Created is false when the workspace was already remote (publish
	// then only creates missing projects and pushes).
	Created  bool          `json:"created"`
	Projects []*PushResult `json:"projects"`
}

// Publish makes a local workspace remote: a random workspace key, sealed
// to the account and vouched for by a membership record it signs; each
// project created with its own key wrapped under the workspace key; then
// the allowlist document and every secret pushed. Each step is recorded
// in the index as soon as the server has it, so a publish that fails
// half-way is finished by running it again.
func (c *Conn) Publish(ctx context.Context, wsName string) (*PublishResult, error) {
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	w, err := ix.Workspace(wsName)
	if err != nil {
		return nil, err
	}
	res := &PublishResult{Workspace: wsName, Server: c.Account.Server, Projects: []*PushResult{}}
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	var k *Keys
	if w.Remote == nil {
		wsID, err := newID()
		if err != nil {
			return nil, err
		}
		wsKey, err := c.createWorkspace(ctx, id, wsID, wsName)
		if err != nil {
			return nil, err
		}
		k = &Keys{WorkspaceID: wsID, Workspace: wsKey}
		res.Created = true
		err = c.Store.Update(ctx, func(ix *vault.Index) error {
			w, err := ix.Workspace(wsName)
			if err != nil {
				return err
			}
			if w.Remote != nil {
				return errcode.Errorf(errcode.Conflict, "workspace %s was published by another process meanwhile", wsName)
			}
			w.Remote = &vault.RemoteWorkspace{Server: c.Account.Server, ID: wsID, Name: wsName}
			return nil
		})
		if err != nil {
			return nil, err
		}
	} else {
		if err := c.checkServer(w.Remote); err != nil {
			return nil, err
		}
		if k, err = c.workspaceKeys(ctx, w.Remote.ID); err != nil {
			return nil, err
		}
	}
	defer k.Wipe()
	ix, err = c.Store.Index()
	if err != nil {
		return nil, err
	}
	w = ix.Workspaces[wsName]
	res.ID = w.Remote.ID
	for _, pn := range vault.SortedKeys(w.Projects) {
		if w.Projects[pn].Sync != nil {
			continue
		}
		if err := c.linkProject(ctx, k, wsName, pn, nil); err != nil {
			return nil, err
		}
	}
	for _, pn := range vault.SortedKeys(w.Projects) {
		pr, err := c.Push(ctx, vault.Selection{Workspace: wsName, Project: pn}, nil, false)
		if err != nil {
			return nil, err
		}
		res.Projects = append(res.Projects, pr)
	}
	return res, nil
}

// createWorkspace creates a workspace on the server with this account as
// its admin and returns the new workspace key.
func (c *Conn) createWorkspace(ctx context.Context, id Identity, wsID, name string) ([]byte, error) {
	wsKey, err := crypto.Random(crypto.KeySize)
	if err != nil {
		return nil, err
	}
	sealed, err := SealWorkspaceKey(id.Public(), wsKey)
	if err != nil {
		return nil, err
	}
	rec, err := SignMembership(id, MembershipRecord{WorkspaceID: wsID, AccountID: c.Account.ID, Email: c.Account.Email, Role: "admin",
		PublicKeys: id.Public(), KeyVersion: 1, AddedBy: c.Account.ID, AddedAt: c.now().UTC()}, sealed)
	if err != nil {
		return nil, err
	}
	if _, err := c.Client.CreateWorkspace(ctx, syncapi.CreateWorkspaceRequest{ID: wsID, Name: name, Record: rec, SealedKey: sealed}); err != nil {
		return nil, err
	}
	return wsKey, nil
}

// linkProject creates a project on the server, or adopts the one another
// device created there (its key must unwrap), and records its sync state;
// autoPush, if set, is the new setting.
func (c *Conn) linkProject(ctx context.Context, k *Keys, wsName, project string, autoPush *bool) error {
	var ps *vault.ProjectSync
	for _, p := range k.Detail.Projects {
		if p.Name == project {
			pk, err := UnwrapProjectKey(k.Workspace, k.WorkspaceID, project, p.KeyVersion, p.WrappedKey)
			if err != nil {
				return err
			}
			clear(pk)
			ps = &vault.ProjectSync{KeyVersion: p.KeyVersion}
		}
	}
	if ps == nil {
		var pk []byte
		var err error
		if ps, pk, err = c.createProject(ctx, k.WorkspaceID, k.Workspace, project); err != nil {
			return err
		}
		clear(pk)
	}
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		p, err := ix.Project(vault.Selection{Workspace: wsName, Project: project})
		if err != nil {
			return err
		}
		if p.Sync == nil {
			p.Sync = ps
		}
		if autoPush != nil {
			p.Sync.AutoPush = *autoPush
		}
		return nil
	})
}

// LinkResult reports `project link`.
type LinkResult struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"`
	// Created is true when the project was created on the server now.
	Created  bool `json:"created"`
	AutoPush bool `json:"auto_push"`
}

// Link makes sure a project of a remote workspace exists on the server
// and sets its auto-push flag (nil: unchanged).
func (c *Conn) Link(ctx context.Context, sel vault.Selection, autoPush *bool) (*LinkResult, error) {
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	p, err := ix.Project(sel)
	if err != nil {
		return nil, err
	}
	w := ix.Workspaces[sel.Workspace]
	if w.Remote == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "workspace %s is local only", sel.Workspace),
			"run `agentsecrets workspace publish "+sel.Workspace+"` first")
	}
	if err := c.checkServer(w.Remote); err != nil {
		return nil, err
	}
	res := &LinkResult{Workspace: sel.Workspace, Project: sel.Project}
	if p.Sync == nil {
		k, err := c.workspaceKeys(ctx, w.Remote.ID)
		if err != nil {
			return nil, err
		}
		defer k.Wipe()
		if err := c.linkProject(ctx, k, sel.Workspace, sel.Project, autoPush); err != nil {
			return nil, err
		}
		res.Created = true
	} else if autoPush != nil {
		err := c.Store.Update(ctx, func(ix *vault.Index) error {
			p, err := ix.Project(sel)
			if err != nil {
				return err
			}
			if p.Sync == nil {
				return errcode.Errorf(errcode.Conflict, "project %s changed meanwhile; retry", sel.Project)
			}
			p.Sync.AutoPush = *autoPush
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	ix, err = c.Store.Index()
	if err != nil {
		return nil, err
	}
	if p, err := ix.Project(sel); err == nil && p.Sync != nil {
		res.AutoPush = p.Sync.AutoPush
	}
	return res, nil
}

// AdoptWorkspace makes a remote workspace named name known locally, with
// its projects (metadata only: secrets come with `secrets pull`). Its key
// must open through this account's verified membership record.
func (c *Conn) AdoptWorkspace(ctx context.Context, name string) error {
	list, err := c.RemoteWorkspaces(ctx)
	if err != nil {
		return err
	}
	var found []syncapi.Workspace
	for _, w := range list {
		if w.Name == name {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return errcode.WithHint(errcode.Errorf(errcode.NotFound, "no workspace %s here or on the server", name),
			"run `agentsecrets workspace list`, or `agentsecrets workspace create "+name+"`")
	case 1:
	default:
		return errcode.Errorf(errcode.Conflict, "%d workspaces on the server are named %s", len(found), name)
	}
	k, err := c.workspaceKeys(ctx, found[0].ID)
	if err != nil {
		return err
	}
	defer k.Wipe()
	now := c.now().UTC()
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		if _, ok := ix.Workspaces[name]; ok {
			return errcode.WithHint(errcode.Errorf(errcode.Conflict, "a local workspace %s exists", name), "switch to it, or publish it under another name")
		}
		// The empty allowlist is no local change: the first pull brings
		// the workspace's, and a push before it pushes none.
		w := &vault.Workspace{CreatedAt: found[0].CreatedAt, Allowlist: []policy.AllowEntry{}, Projects: map[string]*vault.Project{},
			Remote: &vault.RemoteWorkspace{Server: c.Account.Server, ID: found[0].ID, Name: name,
				AllowlistDigest: vault.AllowlistDigest([]policy.AllowEntry{})}}
		if w.CreatedAt.IsZero() {
			w.CreatedAt = now
		}
		for _, p := range k.Detail.Projects {
			if vault.CheckSpaceName("project", p.Name) != nil {
				continue
			}
			np := vault.NewProject(p.CreatedAt)
			np.Sync = &vault.ProjectSync{KeyVersion: p.KeyVersion}
			w.Projects[p.Name] = np
		}
		ix.Workspaces[name] = w
		return nil
	})
}

// AdoptProject makes a project of a remote workspace known locally.
func (c *Conn) AdoptProject(ctx context.Context, sel vault.Selection) error {
	ix, err := c.Store.Index()
	if err != nil {
		return err
	}
	w, err := ix.Workspace(sel.Workspace)
	if err != nil {
		return err
	}
	if w.Remote == nil {
		return errcode.WithHint(errcode.Errorf(errcode.NotFound, "no project %q in workspace %s", sel.Project, sel.Workspace),
			"run `agentsecrets project create "+sel.Project+" --workspace "+sel.Workspace+"`")
	}
	if err := c.checkServer(w.Remote); err != nil {
		return err
	}
	k, err := c.projectKeys(ctx, w.Remote.ID, sel.Project)
	if errcode.Classify(err).Code == errcode.NotFound {
		return errcode.WithHint(err, "run `agentsecrets project list`, or `agentsecrets project create "+sel.Project+"` to create it here and on the server")
	}
	if err != nil {
		return err
	}
	defer k.Wipe()
	return c.Store.Update(ctx, func(ix *vault.Index) error {
		w, err := ix.Workspace(sel.Workspace)
		if err != nil {
			return err
		}
		if _, ok := w.Projects[sel.Project]; ok {
			return vault.ErrUnchanged
		}
		np := vault.NewProject(c.now())
		np.Sync = &vault.ProjectSync{KeyVersion: k.KeyVersion}
		w.Projects[sel.Project] = np
		return nil
	})
}

// HistoryEntry is one version's metadata.
type HistoryEntry struct {
	Version int `json:"version"`
	// Author is the author's email when this device knows it, else the
	// account id.
	Author    string    `json:"author"`
	AuthorID  string    `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
}

// HistoryResult lists a secret's versions, oldest first.
type HistoryResult struct {
	Workspace string         `json:"workspace"`
	Project   string         `json:"project"`
	Name      string         `json:"name"`
	Versions  []HistoryEntry `json:"versions"`
}

// History lists a secret's versions (metadata only: no envelope is
// fetched).
func (c *Conn) History(ctx context.Context, sel vault.Selection, name string) (*HistoryResult, error) {
	ix, err := c.Store.Index()
	if err != nil {
		return nil, err
	}
	remote, _, err := remoteOf(ix, sel)
	if err != nil {
		return nil, err
	}
	if err := c.checkServer(remote); err != nil {
		return nil, err
	}
	h, err := c.Client.History(ctx, remote.ID, sel.Project, name)
	if err != nil {
		return nil, err
	}
	res := &HistoryResult{Workspace: sel.Workspace, Project: sel.Project, Name: name, Versions: []HistoryEntry{}}
	for _, v := range h.Versions {
		author := v.AuthorID
		if v.AuthorID == c.Account.ID {
			author = c.Account.Email
		}
		res.Versions = append(res.Versions, HistoryEntry{Version: v.Version, Author: author, AuthorID: v.AuthorID, CreatedAt: v.CreatedAt})
	}
	return res, nil
}

// unwrapPrevious opens a project's older keys, each wrapped under the
// current workspace key for its own key version; a key listed twice, or
// at or above the current version, is refused.
func unwrapPrevious(wsKey []byte, wsID string, p syncapi.Project) (map[int][]byte, error) {
	out := map[int][]byte{}
	for _, pk := range p.PreviousKeys {
		if pk.KeyVersion < 1 || pk.KeyVersion >= p.KeyVersion || out[pk.KeyVersion] != nil {
			for _, k := range out {
				clear(k)
			}
			return nil, refuse(fmt.Sprintf("the keys of project %s in workspace %s", p.Name, wsID), CheckKeyVersion,
				fmt.Sprintf("the server lists key version %d as an older key of current version %d", pk.KeyVersion, p.KeyVersion))
		}
		k, err := UnwrapProjectKey(wsKey, wsID, p.Name, pk.KeyVersion, pk.WrappedKey)
		if err != nil {
			for _, k := range out {
				clear(k)
			}
			return nil, err
		}
		out[pk.KeyVersion] = k
	}
	return out, nil
}
