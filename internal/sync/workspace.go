package sync

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
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
}

// notSignedIn is the error of every remote operation without a session.
func notSignedIn() error {
	return errcode.WithHint(errcode.New(errcode.Unauthorized, "not signed in to a sync server"),
		"run `agentsecrets login --server URL --email EMAIL` (a human, on a terminal)")
}

// Connect builds the connection of a signed-in vault. It makes no request.
func Connect(st *vault.Store, getenv func(string) string, now func() time.Time) (*Conn, error) {
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	if !ix.Account.SignedIn() {
		return nil, notSignedIn()
	}
	if now == nil {
		now = time.Now
	}
	c, err := NewClient(Options{Server: ix.Account.Server, Email: ix.Account.Email, Sessions: st, Getenv: getenv, Now: now})
	if err != nil {
		return nil, err
	}
	return &Conn{Client: c, Store: st, Account: *ix.Account, now: now}, nil
}

// identity loads the account's private keys from the vault backend,
// checked against the account's public keys.
func (c *Conn) identity(ctx context.Context) (Identity, error) {
	if c.id.Valid() {
		return c.id, nil
	}
	m, err := c.Store.AccountMaterial(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer m.Key.Wipe()
	defer m.Identity.Wipe()
	// The server's copy of the public keys can only make the import fail:
	// ImportIdentity checks that the stored private keys derive them.
	acct, err := c.Client.Account(ctx)
	if err != nil {
		return Identity{}, err
	}
	id, err := ImportIdentity(m.Identity, acct.PublicKeys)
	if err != nil {
		return Identity{}, err
	}
	c.id = id
	return id, nil
}

// lookup trusts the account's own signing key only: with one account per
// workspace, every record, envelope and allowlist document is its own.
// Team members (a later issue) add their verified keys here.
func (c *Conn) lookup(id Identity) SignerLookup {
	pub := ed25519.PublicKey(id.Public().Sign)
	return func(accountID string) (ed25519.PublicKey, error) {
		if accountID != c.Account.ID {
			return nil, fmt.Errorf("account %s is not a trusted signer of this workspace", accountID)
		}
		return pub, nil
	}
}

// Keys are the unwrapped keys of one remote project.
type Keys struct {
	WorkspaceID string
	Workspace   []byte
	Project     []byte
	KeyVersion  int
	Detail      syncapi.WorkspaceDetail
	id          Identity
	lookup      SignerLookup
}

// Wipe clears the keys.
func (k *Keys) Wipe() {
	clear(k.Workspace)
	clear(k.Project)
}

// workspaceKeys fetches a workspace and opens its key through this
// account's verified membership record.
func (c *Conn) workspaceKeys(ctx context.Context, wsID string) (*Keys, error) {
	id, err := c.identity(ctx)
	if err != nil {
		return nil, err
	}
	detail, err := c.Client.Workspace(ctx, wsID)
	if err != nil {
		return nil, err
	}
	k := &Keys{WorkspaceID: wsID, Detail: detail, id: id, lookup: c.lookup(id)}
	for _, m := range detail.Members {
		if m.AccountID != c.Account.ID {
			continue
		}
		_, wsKey, err := OpenMembership(id, c.Account.ID, wsID, m, k.lookup)
		if err != nil {
			return nil, err
		}
		k.Workspace = wsKey
		return k, nil
	}
	return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "this account is not a member of workspace %s on the server", wsID),
		"run `agentsecrets workspace list`")
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

// newWorkspaceID is 32 random lowercase hex digits.
func newWorkspaceID() (string, error) {
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
