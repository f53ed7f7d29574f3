package server

// Service tokens (issue 11, stage B): workspace members for CI and
// headless agents, created by an admin's client, that sign in with a key
// derived from the token secret. See syncapi's "Service tokens" and
// docs/protocol.md.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

const (
	// TokenAccountPrefix starts the account id of a service token.
	TokenAccountPrefix = "tok-"
	// tokenEmailPrefix starts the email a token's membership lists.
	tokenEmailPrefix = "token:"
	// maxTokenLife bounds a token's expiry (the client's --expires max is
	// 365d; the hour covers clock skew between client and server).
	maxTokenLife = 365*24*time.Hour + time.Hour
	// maxTokenProjects bounds a token's project scope.
	maxTokenProjects = 100
	// maxTokens bounds the live tokens of one workspace.
	maxTokens = 100
)

var (
	errNoServiceToken = errcode.WithHint(errcode.New(errcode.NotFound, "no such service token in this workspace"),
		"run `agentsecrets workspace token list`")
	errTokenLogin = errcode.WithHint(errcode.New(errcode.Unauthorized, "unknown, expired or revoked service token"),
		"ask a workspace admin for a new token (`agentsecrets workspace token create`)")
	errTokenRoute = errcode.WithHint(errcode.New(errcode.Denied, "a service token may only read workspaces and pull, push and list secrets"),
		"use a person's account for this (`agentsecrets login`)")
	errTooManyTokens = errors.New("too many tokens")
)

// serviceToken is a token's row: what authentication needs to scope its
// requests, and what the listing shows.
type serviceToken struct {
	ID          string
	AccountID   string
	DeviceID    string
	WorkspaceID string
	Name        string
	Role        string
	Projects    []string
	AuthHash    []byte
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	LastUsedAt  *time.Time
	RevokedAt   *time.Time
	// creatorEmail is filled by listings.
	creatorEmail string
}

func (t serviceToken) api() syncapi.Token {
	return syncapi.Token{ID: t.ID, Name: t.Name, AccountID: t.AccountID, Role: t.Role, Projects: t.Projects, CreatedBy: t.CreatedBy,
		CreatedByEmail: t.creatorEmail, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

// live reports whether the token may still sign in or be used.
func (t serviceToken) live(now time.Time) bool {
	return t.RevokedAt == nil && now.Before(t.ExpiresAt)
}

// allows reports whether the token's scope covers project.
func (t serviceToken) allows(project string) bool {
	return len(t.Projects) == 0 || slices.Contains(t.Projects, project)
}

// tokenRoutes are the only routes a service token may call: reading its
// workspace, and pulling, pushing and listing secrets. Account, device,
// workspace, project and invite management stay with people (a token
// ending its own shared device would also end the token).
var tokenRoutes = map[string]bool{
	"GET " + syncapi.PathAccount:    true,
	"GET " + syncapi.PathWorkspaces: true,
	"GET " + syncapi.PathWorkspace:  true,
	"POST " + syncapi.PathPull:      true,
	"POST " + syncapi.PathPush:      true,
	"GET " + syncapi.PathHistory:    true,
	"GET " + syncapi.PathAllowlist:  true,
	// A token uploads its own audit records like any member.
	"POST " + syncapi.PathAudit: true,
}

// scopeToken checks a token principal's request: an allowed route, its
// own workspace, and a project within its scope. Another workspace and a
// project outside the scope read exactly like ones that do not exist.
func (s *Server) scopeToken(r *http.Request, info *reqInfo) error {
	t, err := s.store.ServiceToken(r.Context(), info.account)
	if errors.Is(err, errMissing) {
		return errNoToken
	}
	if err != nil {
		return err
	}
	if !t.live(s.now()) {
		s.authFailure(r, info, "expired or revoked service token", "")
		return errNoToken
	}
	info.token = &t
	if !tokenRoutes[r.Pattern] {
		return errTokenRoute
	}
	if ws := r.PathValue("ws"); ws != "" && ws != t.WorkspaceID {
		return errNoWorkspace
	}
	if p := r.PathValue("project"); p != "" && !t.allows(p) {
		return errcode.WithHint(errcode.Errorf(errcode.NotFound, "no project %q in this workspace on the server", printableName(p)),
			"this service token is limited to other projects: ask a workspace admin")
	}
	return nil
}

// printableName echoes a path name only when it is a valid project name.
func printableName(p string) string {
	if vault.CheckSpaceName("project", p) != nil {
		return "<invalid name>"
	}
	return p
}

// scopeProjects drops the projects outside a token's scope from a
// workspace detail.
func scopeProjects(info *reqInfo, d *syncapi.WorkspaceDetail) {
	if info.token == nil || len(info.token.Projects) == 0 {
		return
	}
	d.Projects = slices.DeleteFunc(d.Projects, func(p syncapi.Project) bool { return !info.token.allows(p.Name) })
}

func checkTokenID(id string) error {
	return checkHexID("a token id", id, "run `agentsecrets workspace token list`")
}

// logToken records a token event by ids only: never its name's secret,
// auth key, keys or record.
func (s *Server) logToken(r *http.Request, info *reqInfo, event, ws, token string) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "service token", slog.String("event", event), slog.String("workspace", ws),
		slog.String("token", token), slog.String("account", info.account))
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	var req syncapi.CreateTokenRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := checkTokenRequest(req, s.now()); err != nil {
		return nil, err
	}
	if err := s.limitWrite(r, info); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	devID, err := newID()
	if err != nil {
		return nil, err
	}
	accountID := TokenAccountPrefix + req.ID
	projects := req.Projects
	if projects == nil {
		projects = []string{}
	}
	h := sha256.Sum256(req.AuthKey)
	t := serviceToken{ID: req.ID, AccountID: accountID, DeviceID: devID, WorkspaceID: ws, Name: req.Name, Role: req.Role, Projects: projects,
		AuthHash: h[:], CreatedBy: info.account, CreatedAt: now, ExpiresAt: req.ExpiresAt.UTC().Truncate(time.Microsecond)}
	a := accountRow{ID: accountID, Email: accountID, AuthSalt: []byte{}, AuthHash: []byte{}, PublicKeys: req.PublicKeys, Wrapped: req.WrappedPrivateKeys, CreatedAt: now}
	dev := deviceRow{ID: devID, AccountID: accountID, Name: "service token " + req.Name, CreatedAt: now, LastSeenAt: now}
	m := syncapi.Member{AccountID: accountID, Email: tokenEmailPrefix + req.Name, Role: req.Role, Record: req.Record, SealedKey: req.SealedKey, AddedBy: info.account, AddedAt: now}
	out, err := s.store.CreateToken(r.Context(), t, a, dev, m, maxTokens)
	switch {
	case errors.Is(err, errExists):
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "a service token named %s (or with this id) exists in this workspace", req.Name),
			"choose another name, or revoke the old token first (`agentsecrets workspace token revoke "+req.Name+"`)")
	case errors.Is(err, errMissing):
		return nil, errcode.WithHint(errcode.New(errcode.NotFound, "a project the token names does not exist in this workspace"), "run `agentsecrets project list`")
	case errors.Is(err, errTooManyTokens):
		return nil, errcode.WithHint(errcode.Errorf(errcode.TooLarge, "this workspace has %d live service tokens, the most it may have", maxTokens),
			"revoke unused ones (`agentsecrets workspace token list`)")
	case err != nil:
		return nil, err
	}
	s.logToken(r, info, "created", ws, t.ID)
	return out.api(), nil
}

// checkTokenRequest validates a token creation body. Errors name fields,
// never their values.
func checkTokenRequest(req syncapi.CreateTokenRequest, now time.Time) error {
	for _, c := range []error{
		checkTokenID(req.ID),
		vault.CheckSpaceName("token", req.Name),
		checkBytes("auth_key", req.AuthKey, authKeySize, authKeySize),
		checkBytes("public_keys.seal", req.PublicKeys.Seal, 32, 32),
		checkBytes("public_keys.sign", req.PublicKeys.Sign, 32, 32),
		checkBytes("wrapped_private_keys", req.WrappedPrivateKeys, 1, 4096),
		checkBytes("record", req.Record, 1, maxSealed),
		checkBytes("sealed_key", req.SealedKey, 1, maxSealed),
	} {
		if c != nil {
			return c
		}
	}
	if req.Role != RoleReader && req.Role != RoleMember {
		return errcode.WithHint(errcode.New(errcode.Usage, "a service token's role is reader or member (never admin)"), "use --role reader")
	}
	if len(req.Projects) > maxTokenProjects {
		return errcode.Errorf(errcode.TooLarge, "a service token may name at most %d projects", maxTokenProjects)
	}
	seen := map[string]bool{}
	for _, p := range req.Projects {
		if err := vault.CheckSpaceName("project", p); err != nil {
			return err
		}
		if seen[p] {
			return errcode.Errorf(errcode.Usage, "project %s is named twice", p)
		}
		seen[p] = true
	}
	if !req.ExpiresAt.After(now) || req.ExpiresAt.After(now.Add(maxTokenLife)) {
		return errcode.WithHint(errcode.New(errcode.Usage, "expires_at must be in the future and at most 365 days away"), "use --expires 90d")
	}
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	list, err := s.store.Tokens(r.Context(), ws)
	if err != nil {
		return nil, err
	}
	out := syncapi.TokenList{Tokens: []syncapi.Token{}}
	for _, t := range list {
		out.Tokens = append(out.Tokens, t.api())
	}
	return out, nil
}

// revokeToken ends a token: revoked, its sessions dead and its
// membership gone, in one transaction. Revoking a revoked token again
// succeeds (a retry after a lost answer).
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	ws, err := s.member(r, info, RoleAdmin)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("token")
	if err := checkTokenID(id); err != nil {
		return nil, err
	}
	if err := s.store.RevokeToken(r.Context(), ws, id, s.now()); errors.Is(err, errMissing) {
		return nil, errNoServiceToken
	} else if err != nil {
		return nil, err
	}
	s.logToken(r, info, "revoked", ws, id)
	return nil, nil
}

// tokenLogin opens a session for a service token: access token only,
// valid until the earlier of AccessTTL and the token's expiry.
func (s *Server) tokenLogin(w http.ResponseWriter, r *http.Request, info *reqInfo) (any, error) {
	var req syncapi.TokenLoginRequest
	if err := decode(w, r, &req); err != nil {
		return nil, err
	}
	if err := checkTokenID(req.TokenID); err != nil {
		return nil, err
	}
	if err := s.limit(r, info, "token:"+req.TokenID); err != nil {
		return nil, err
	}
	if err := checkBytes("auth_key", req.AuthKey, authKeySize, authKeySize); err != nil {
		return nil, err
	}
	at, atHash, err := newToken(AccessPrefix)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(req.AuthKey)
	now := s.now()
	t, a, expires, err := s.store.TokenLogin(r.Context(), req.TokenID, h[:], atHash, now, s.opts.AccessTTL)
	if errors.Is(err, errBadToken) || errors.Is(err, errMissing) {
		s.authFailure(r, info, "unknown, expired or revoked service token", "")
		return nil, errTokenLogin
	}
	if err != nil {
		return nil, err
	}
	info.account, info.device = t.AccountID, t.DeviceID
	s.logToken(r, info, "login", t.WorkspaceID, t.ID)
	acct := a.api()
	acct.Email = tokenEmailPrefix + t.Name
	return syncapi.SessionResponse{Session: syncapi.Session{AccessToken: at, AccessExpiresAt: expires, DeviceID: t.DeviceID}, Account: acct}, nil
}

// Store methods.

const serviceTokenCols = "t.id, t.account_id, t.device_id, t.workspace_id, t.name, t.role, t.projects, t.auth_hash, t.created_by, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, a.email"

type rowScanner interface{ Scan(dest ...any) error }

func scanServiceToken(r rowScanner) (serviceToken, error) {
	var t serviceToken
	var projects string
	var created, expires int64
	var used, revoked sql.NullInt64
	if err := r.Scan(&t.ID, &t.AccountID, &t.DeviceID, &t.WorkspaceID, &t.Name, &t.Role, &projects, &t.AuthHash, &t.CreatedBy, &created, &expires,
		&used, &revoked, &t.creatorEmail); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return t, errMissing
		}
		return t, dbError("read service token", err)
	}
	if err := json.Unmarshal([]byte(projects), &t.Projects); err != nil {
		return t, dbError("read service token projects", err)
	}
	t.CreatedAt, t.ExpiresAt = fromMicro(created), fromMicro(expires)
	if used.Valid {
		u := fromMicro(used.Int64)
		t.LastUsedAt = &u
	}
	if revoked.Valid {
		v := fromMicro(revoked.Int64)
		t.RevokedAt = &v
	}
	return t, nil
}

const serviceTokenFrom = " FROM service_tokens t JOIN accounts a ON a.id = t.created_by WHERE "

func (s *SQLStore) CreateToken(ctx context.Context, t serviceToken, a accountRow, dev deviceRow, m syncapi.Member, max int) (serviceToken, error) {
	projects, err := json.Marshal(t.Projects)
	if err != nil {
		return t, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var live int
		if err := s.row(ctx, tx, "SELECT COUNT(*) FROM service_tokens WHERE workspace_id = ? AND revoked_at IS NULL", t.WorkspaceID).Scan(&live); err != nil {
			return dbError("count service tokens", err)
		}
		if live >= max {
			return errTooManyTokens
		}
		for _, p := range t.Projects {
			var n int
			if err := s.row(ctx, tx, "SELECT COUNT(*) FROM projects WHERE workspace_id = ? AND name = ?", t.WorkspaceID, p).Scan(&n); err != nil {
				return dbError("look up project", err)
			}
			if n == 0 {
				return errMissing
			}
		}
		if err := s.insertAccount(ctx, tx, a, []byte("{}"), dev, nil); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO service_tokens (id, account_id, device_id, workspace_id, name, role, projects, auth_hash, created_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, t.ID, t.AccountID, t.DeviceID, t.WorkspaceID, t.Name, t.Role, string(projects), t.AuthHash,
			t.CreatedBy, micro(t.CreatedAt), micro(t.ExpiresAt)); err != nil {
			if s.d.unique(err) {
				return errExists
			}
			return dbError("insert service token", err)
		}
		if err := s.insertMember(ctx, tx, t.WorkspaceID, m); err != nil {
			return err
		}
		return s.row(ctx, tx, "SELECT email FROM accounts WHERE id = ?", t.CreatedBy).Scan(&t.creatorEmail)
	})
	return t, err
}

func (s *SQLStore) Tokens(ctx context.Context, wsID string) ([]serviceToken, error) {
	rows, err := s.query(ctx, s.db, "SELECT "+serviceTokenCols+serviceTokenFrom+"t.workspace_id = ? ORDER BY t.created_at, t.id", wsID)
	if err != nil {
		return nil, dbError("list service tokens", err)
	}
	defer rows.Close()
	var out []serviceToken
	for rows.Next() {
		t, err := scanServiceToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *SQLStore) ServiceToken(ctx context.Context, accountID string) (serviceToken, error) {
	return scanServiceToken(s.row(ctx, s.db, "SELECT "+serviceTokenCols+serviceTokenFrom+"t.account_id = ?", accountID))
}

func (s *SQLStore) RevokeToken(ctx context.Context, wsID, id string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		t, err := scanServiceToken(s.row(ctx, tx, "SELECT "+serviceTokenCols+serviceTokenFrom+"t.id = ? AND t.workspace_id = ?", id, wsID))
		if err != nil {
			return err
		}
		return s.revokeToken(ctx, tx, t, now)
	})
}

// revokeToken marks t revoked (once), ends its sessions and deletes its
// member row, inside the caller's transaction, so that whatever ends a
// token's membership ends the token in the same commit.
func (s *SQLStore) revokeToken(ctx context.Context, tx *sql.Tx, t serviceToken, now time.Time) error {
	if t.RevokedAt == nil {
		if _, err := s.exec(ctx, tx, "UPDATE service_tokens SET revoked_at = ? WHERE id = ?", micro(now), t.ID); err != nil {
			return dbError("revoke service token", err)
		}
	}
	if err := s.endDevice(ctx, tx, t.DeviceID, now); err != nil {
		return err
	}
	if _, err := s.exec(ctx, tx, "DELETE FROM members WHERE workspace_id = ? AND account_id = ?", t.WorkspaceID, t.AccountID); err != nil {
		return dbError("remove token member", err)
	}
	return nil
}

func (s *SQLStore) TokenLogin(ctx context.Context, id string, authHash, accessHash []byte, now time.Time, ttl time.Duration) (serviceToken, accountRow, time.Time, error) {
	var t serviceToken
	var a accountRow
	var expires time.Time
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		if t, err = scanServiceToken(s.row(ctx, tx, "SELECT "+serviceTokenCols+serviceTokenFrom+"t.id = ?", id)); err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(t.AuthHash, authHash) != 1 || !t.live(now) {
			return errBadToken
		}
		expires = now.Add(ttl).UTC()
		if t.ExpiresAt.Before(expires) {
			expires = t.ExpiresAt
		}
		if _, err := s.exec(ctx, tx, "DELETE FROM tokens WHERE device_id = ? AND expires_at <= ?", t.DeviceID, micro(now)); err != nil {
			return dbError("drop expired sessions", err)
		}
		if err := s.insertTokens(ctx, tx, t.DeviceID, []tokenRow{{Hash: accessHash, Kind: kindAccess, ExpiresAt: expires}}); err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "UPDATE service_tokens SET last_used_at = ? WHERE id = ?", micro(now), id); err != nil {
			return dbError("touch service token", err)
		}
		a, err = s.scanAccount(s.row(ctx, tx, "SELECT "+accountCols+" FROM accounts WHERE id = ?", t.AccountID))
		return err
	})
	return t, a, expires, err
}

// isTokenAccount reports whether an account id is a service token's.
func isTokenAccount(id string) bool { return strings.HasPrefix(id, TokenAccountPrefix) }
