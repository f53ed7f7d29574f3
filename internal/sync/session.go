package sync

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// SessionStore is where the client keeps its tokens: the vault's backend
// (*vault.Store implements it), never a plain file.
type SessionStore interface {
	// Session returns the stored tokens; vault.ErrSignedOut when there
	// are none.
	Session(ctx context.Context) (vault.Session, error)
	// UpdateSession runs fn under the store's lock with the tokens as
	// stored now and stores what fn returns when it reports a change.
	// Refreshing inside it is what keeps two processes from both spending
	// the same refresh token (which the server treats as theft and answers
	// by revoking the device).
	UpdateSession(ctx context.Context, fn func(cur vault.Session) (vault.Session, bool, error)) (vault.Session, error)
}

// refreshMargin: an access token this close to expiry is refreshed before
// use rather than sent to be refused.
const refreshMargin = 30 * time.Second

// accessToken returns a usable access token. rejected, if set, is a token
// the server just refused: a new one is needed unless another process
// already stored one.
func (c *Client) accessToken(ctx context.Context, rejected string) (string, error) {
	if c.sessions == nil {
		return "", errcode.Errorf(errcode.Internal, "this sync client has no session store")
	}
	s, err := c.sessions.Session(ctx)
	if err != nil {
		return "", c.sessionError(err)
	}
	if rejected == "" && c.fresh(s) {
		return string(s.Access.Reveal()), nil
	}
	s, err = c.sessions.UpdateSession(ctx, func(cur vault.Session) (vault.Session, bool, error) {
		if string(cur.Access.Reveal()) != rejected && c.fresh(cur) {
			return cur, false, nil // another process refreshed meanwhile
		}
		if !cur.RefreshExpiresAt.IsZero() && !c.now().Before(cur.RefreshExpiresAt) {
			return cur, false, errcode.WithHint(errcode.New(errcode.Unauthorized, "the sync session expired"), c.loginCommand())
		}
		if c.relogin != nil {
			next, err := c.relogin(ctx)
			return next, err == nil, err
		}
		next, err := c.refresh(ctx, cur.Refresh)
		if err != nil {
			return cur, false, err
		}
		return next, true, nil
	})
	if err != nil {
		return "", c.sessionError(err)
	}
	return string(s.Access.Reveal()), nil
}

func (c *Client) fresh(s vault.Session) bool {
	return !s.Access.Empty() && c.now().Add(refreshMargin).Before(s.AccessExpiresAt)
}

// refresh trades the refresh token for a new session. It is never
// retried: the server rotates the token on first use, so a second try
// with the same one after a lost answer would look like a stolen token.
func (c *Client) refresh(ctx context.Context, refresh secret.Value) (vault.Session, error) {
	var resp syncapi.SessionResponse
	err := c.do(ctx, call{method: "POST", path: syncapi.PathRefresh,
		in: syncapi.RefreshRequest{RefreshToken: string(refresh.Reveal())}, out: &resp})
	if isUnauthorized(err) {
		return vault.Session{}, errcode.WithHint(errcode.New(errcode.Unauthorized,
			"the sync session ended (the device was revoked, signed out, or its session expired)"), c.loginCommand())
	}
	if err != nil {
		return vault.Session{}, err
	}
	return SessionOf(resp.Session), nil
}

// SessionOf is the vault form of a session the server issued.
func SessionOf(s syncapi.Session) vault.Session {
	return vault.Session{
		Access: secret.New([]byte(s.AccessToken)), AccessExpiresAt: s.AccessExpiresAt,
		Refresh: secret.New([]byte(s.RefreshToken)), RefreshExpiresAt: s.RefreshExpiresAt,
	}
}

// sessionError gives a missing session the login hint.
func (c *Client) sessionError(err error) error {
	if errors.Is(err, vault.ErrSignedOut) {
		return errcode.WithHint(errcode.New(errcode.Unauthorized, "not signed in to a sync server"), c.loginCommand())
	}
	return c.loginHint(err)
}

// pathOf fills {placeholders} of an API path with escaped values.
func pathOf(p string, kv ...string) string {
	for i := 0; i+1 < len(kv); i += 2 {
		p = strings.Replace(p, "{"+kv[i]+"}", url.PathEscape(kv[i+1]), 1)
	}
	return p
}

// Unauthenticated calls.

// Prelogin fetches the password KDF parameters of an account.
func (c *Client) Prelogin(ctx context.Context, email string) (syncapi.PreloginResponse, error) {
	var out syncapi.PreloginResponse
	err := c.do(ctx, call{method: "POST", path: syncapi.PathPrelogin, in: syncapi.PreloginRequest{Email: email}, out: &out, read: true})
	return out, err
}

// CreateAccount registers an account and opens the first device's session.
func (c *Client) CreateAccount(ctx context.Context, req syncapi.CreateAccountRequest) (syncapi.SessionResponse, error) {
	var out syncapi.SessionResponse
	err := c.do(ctx, call{method: "POST", path: syncapi.PathAccounts, in: req, out: &out})
	return out, err
}

// Login opens a session for a device.
func (c *Client) Login(ctx context.Context, req syncapi.LoginRequest) (syncapi.SessionResponse, error) {
	var out syncapi.SessionResponse
	err := c.do(ctx, call{method: "POST", path: syncapi.PathSessions, in: req, out: &out})
	return out, err
}

// Authenticated calls.

// Account fetches the signed-in account.
func (c *Client) Account(ctx context.Context) (syncapi.Account, error) {
	var out syncapi.Account
	err := c.do(ctx, call{method: "GET", path: syncapi.PathAccount, out: &out, read: true, auth: true})
	return out, err
}

// Devices lists the account's devices.
func (c *Client) Devices(ctx context.Context) (syncapi.DeviceList, error) {
	var out syncapi.DeviceList
	err := c.do(ctx, call{method: "GET", path: syncapi.PathDevices, out: &out, read: true, auth: true})
	return out, err
}

// RevokeDevice ends a device's sessions.
func (c *Client) RevokeDevice(ctx context.Context, id string) error {
	return c.do(ctx, call{method: "DELETE", path: pathOf(syncapi.PathDevice, "id", id), auth: true})
}

// Logout ends this device's session on the server.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, call{method: "DELETE", path: syncapi.PathSessionCurrent, auth: true})
}

// Workspaces lists the workspaces the account is a member of.
func (c *Client) Workspaces(ctx context.Context) (syncapi.WorkspaceList, error) {
	var out syncapi.WorkspaceList
	err := c.do(ctx, call{method: "GET", path: syncapi.PathWorkspaces, out: &out, read: true, auth: true})
	return out, err
}

// CreateWorkspace creates a remote workspace.
func (c *Client) CreateWorkspace(ctx context.Context, req syncapi.CreateWorkspaceRequest) (syncapi.Workspace, error) {
	var out syncapi.Workspace
	err := c.do(ctx, call{method: "POST", path: syncapi.PathWorkspaces, in: req, out: &out, auth: true})
	return out, err
}

// Workspace fetches a workspace with its members and projects.
func (c *Client) Workspace(ctx context.Context, ws string) (syncapi.WorkspaceDetail, error) {
	var out syncapi.WorkspaceDetail
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathWorkspace, "ws", ws), out: &out, read: true, auth: true})
	return out, err
}

// CreateProject adds a project to a workspace.
func (c *Client) CreateProject(ctx context.Context, ws string, req syncapi.CreateProjectRequest) (syncapi.Project, error) {
	var out syncapi.Project
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathProjects, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// Pull fetches the versions newer than known. It is a read (POST only to
// carry the known versions), so it is retried like a GET.
func (c *Client) Pull(ctx context.Context, ws, project string, req syncapi.PullRequest) (syncapi.PullResponse, error) {
	var out syncapi.PullResponse
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathPull, "ws", ws, "project", project), in: req, out: &out, read: true, auth: true})
	return out, err
}

// Push stores new versions, all or nothing. It is never retried: a push
// whose answer was lost may have been stored; the next diff tells. A
// conflict is a *NamesError naming the secrets.
func (c *Client) Push(ctx context.Context, ws, project string, req syncapi.PushRequest) (syncapi.PushResponse, error) {
	var out syncapi.PushResponse
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathPush, "ws", ws, "project", project), in: req, out: &out, auth: true})
	return out, err
}

// History lists a secret's versions (metadata only).
func (c *Client) History(ctx context.Context, ws, project, name string) (syncapi.History, error) {
	var out syncapi.History
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathHistory, "ws", ws, "project", project, "name", name), out: &out, read: true, auth: true})
	return out, err
}

// Allowlist fetches the allowlist versions after since.
func (c *Client) Allowlist(ctx context.Context, ws string, since int) (syncapi.AllowlistVersions, error) {
	var out syncapi.AllowlistVersions
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathAllowlist, "ws", ws), query: url.Values{"since": {strconv.Itoa(since)}}, out: &out, read: true, auth: true})
	return out, err
}

// PushAllowlist stores the next allowlist version.
func (c *Client) PushAllowlist(ctx context.Context, ws string, req syncapi.AllowlistPushRequest) (syncapi.AllowlistVersion, error) {
	var out syncapi.AllowlistVersion
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathAllowlist, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// CreateInvite invites an email to a workspace (admins).
func (c *Client) CreateInvite(ctx context.Context, ws string, req syncapi.CreateInviteRequest) (syncapi.Invite, error) {
	var out syncapi.Invite
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathInvites, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// WorkspaceInvites lists a workspace's open and accepted invites (admins).
func (c *Client) WorkspaceInvites(ctx context.Context, ws string) (syncapi.InviteList, error) {
	var out syncapi.InviteList
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathInvites, "ws", ws), out: &out, read: true, auth: true})
	return out, err
}

// CompleteInvite adds an accepted invitee as a member (admins).
func (c *Client) CompleteInvite(ctx context.Context, ws, invite string, req syncapi.CompleteInviteRequest) (syncapi.Member, error) {
	var out syncapi.Member
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathInviteComplete, "ws", ws, "invite", invite), in: req, out: &out, auth: true})
	return out, err
}

// MyInvites lists the open and accepted invites addressed to the caller.
func (c *Client) MyInvites(ctx context.Context) (syncapi.InviteList, error) {
	var out syncapi.InviteList
	err := c.do(ctx, call{method: "GET", path: syncapi.PathMyInvites, out: &out, read: true, auth: true})
	return out, err
}

// AcceptInvite accepts an invite with the invitee's proof. Accepting
// again replaces the proof, so a retry is safe.
func (c *Client) AcceptInvite(ctx context.Context, invite string, req syncapi.AcceptInviteRequest) (syncapi.Invite, error) {
	var out syncapi.Invite
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathInviteAccept, "invite", invite), in: req, out: &out, auth: true})
	return out, err
}

// CreateToken creates a service token in a workspace (admins).
func (c *Client) CreateToken(ctx context.Context, ws string, req syncapi.CreateTokenRequest) (syncapi.Token, error) {
	var out syncapi.Token
	err := c.do(ctx, call{method: "POST", path: pathOf(syncapi.PathTokens, "ws", ws), in: req, out: &out, auth: true})
	return out, err
}

// Tokens lists a workspace's service tokens (admins).
func (c *Client) Tokens(ctx context.Context, ws string) (syncapi.TokenList, error) {
	var out syncapi.TokenList
	err := c.do(ctx, call{method: "GET", path: pathOf(syncapi.PathTokens, "ws", ws), out: &out, read: true, auth: true})
	return out, err
}

// RevokeToken revokes a service token (admins). Revoking twice succeeds.
func (c *Client) RevokeToken(ctx context.Context, ws, token string) error {
	return c.do(ctx, call{method: "DELETE", path: pathOf(syncapi.PathToken, "ws", ws, "token", token), auth: true})
}
