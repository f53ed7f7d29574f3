package sync

// Service tokens (docs/protocol.md, "Service tokens"): a workspace member
// for CI and headless agents. The creating admin's client generates the
// token secret and an identity, wraps the identity's private keys under a
// key derived from the secret, and signs a membership record for it like a
// person's. The token string carries the server URL and the secret; with
// it alone a job signs in (AGENTSECRETS_TOKEN_FILE), recovers the identity
// and opens the workspace key, with no person's password.

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Token format and derivations.
const (
	// TokenFileEnv names the file holding a service token; set, every sync
	// operation signs in with the token instead of a person's session.
	TokenFileEnv = "AGENTSECRETS_TOKEN_FILE"
	// TokenPrefix starts a token string.
	TokenPrefix = "ast1."
	// TokenSecretSize is the number of random bytes of a token secret.
	TokenSecretSize = 32
	// TokenAccountPrefix and TokenEmailPrefix start a token member's
	// account id and (display-only) email.
	TokenAccountPrefix = "tok-"
	TokenEmailPrefix   = "token:"

	tokenIDInfo   = "agentsecrets v1 token id"
	tokenAuthInfo = "agentsecrets v1 token auth key"
	tokenWrapInfo = "agentsecrets v1 token private-key wrap"
	tokenIDSize   = 16

	// DefaultTokenLife and MaxTokenLife bound --expires.
	DefaultTokenLife = 90 * 24 * time.Hour
	MaxTokenLife     = 365 * 24 * time.Hour
)

// tokenBase32 is lowercase base32 without padding: 32 bytes are 52
// characters.
var tokenBase32 = inviteBase32

// NewTokenSecret makes a random token secret.
func NewTokenSecret() ([]byte, error) { return crypto.Random(TokenSecretSize) }

// FormatToken is the token string: ast1. ‖ base64url-nopad(server URL) ‖
// . ‖ lowercase base32-nopad(secret).
func FormatToken(server string, secret []byte) string {
	return TokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(server)) + "." + tokenBase32.EncodeToString(secret)
}

// ParseToken reverses FormatToken strictly (surrounding whitespace, as a
// file's trailing newline, aside): the prefix, a server URL CheckServerURL
// accepts in its normal form, and exactly TokenSecretSize bytes in the
// canonical encoding. Errors never echo the input: it is a secret.
func ParseToken(s string) (server string, tokenSecret []byte, err error) {
	bad := func(why string) error {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "the service token is not valid: %s", why),
			"use the token exactly as `agentsecrets workspace token create` wrote it: ast1. followed by two dot-separated parts")
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), TokenPrefix)
	if !ok {
		return "", nil, bad("it does not start with " + TokenPrefix)
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 2 {
		return "", nil, bad("it does not have exactly two parts after the prefix")
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != parts[0] {
		return "", nil, bad("its server part is not base64url")
	}
	u, err := CheckServerURL(string(raw))
	if err != nil || u.String() != string(raw) {
		return "", nil, bad("its server part is not a server URL in normal form")
	}
	sec, err := tokenBase32.DecodeString(parts[1])
	if err != nil || len(sec) != TokenSecretSize || tokenBase32.EncodeToString(sec) != parts[1] {
		clear(sec)
		return "", nil, bad("its secret part is not " + strconv.Itoa(tokenBase32.EncodedLen(TokenSecretSize)) + " characters of a-z and 2-7")
	}
	return string(raw), sec, nil
}

// TokenKeys are what a token secret derives: the token id (public), the
// auth key (sent at sign-in; the server keeps its SHA-256) and the key
// that wraps the token identity's private keys.
type TokenKeys struct {
	ID      string
	AuthKey []byte
	WrapKey []byte
}

// Wipe clears the keys.
func (k TokenKeys) Wipe() {
	clear(k.AuthKey)
	clear(k.WrapKey)
}

// AccountID is the token member's account id.
func (k TokenKeys) AccountID() string { return TokenAccountPrefix + k.ID }

// DeriveTokenKeys derives HKDF-SHA-256(secret, no salt, info, 32) for
// each info; the id is the hex of the first 16 bytes of its derivation.
func DeriveTokenKeys(tokenSecret []byte) (TokenKeys, error) {
	if len(tokenSecret) != TokenSecretSize {
		return TokenKeys{}, errcode.Errorf(errcode.Internal, "a token secret is %d bytes, not %d", TokenSecretSize, len(tokenSecret))
	}
	derive := func(info string) ([]byte, error) { return hkdf.Key(sha256.New, tokenSecret, nil, info, crypto.KeySize) }
	id, err := derive(tokenIDInfo)
	if err != nil {
		return TokenKeys{}, err
	}
	auth, err := derive(tokenAuthInfo)
	if err != nil {
		return TokenKeys{}, err
	}
	wrap, err := derive(tokenWrapInfo)
	if err != nil {
		clear(auth)
		return TokenKeys{}, err
	}
	return TokenKeys{ID: hex.EncodeToString(id[:tokenIDSize]), AuthKey: auth, WrapKey: wrap}, nil
}

// ParseTokenLife reads --expires: a whole number of hours (h) or days
// (d), at least one hour and at most MaxTokenLife.
func ParseTokenLife(s string) (time.Duration, error) {
	bad := errcode.WithHint(errcode.New(errcode.Usage, "--expires is a number of hours or days (like 12h or 30d), at most 365d"), "use --expires 90d")
	if len(s) < 2 {
		return 0, bad
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 1 || s[0] == '+' {
		return 0, bad
	}
	var d time.Duration
	switch s[len(s)-1] {
	case 'h':
		d = time.Duration(n) * time.Hour
	case 'd':
		d = time.Duration(n) * 24 * time.Hour
	default:
		return 0, bad
	}
	if n > int(MaxTokenLife/time.Hour) || d > MaxTokenLife {
		return 0, bad
	}
	return d, nil
}

// tokenAuth is a service token's sign-in: the session store of its client
// (the session lives in memory only, for this process) and the login that
// renews it. A token has no refresh token: a new access token is a new
// login with the auth key.
type tokenAuth struct {
	keys   TokenKeys
	client *Client
	mu     gosync.Mutex
	cur    vault.Session
	acct   syncapi.Account
}

func (t *tokenAuth) Session(context.Context) (vault.Session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur, nil
}

func (t *tokenAuth) UpdateSession(_ context.Context, fn func(cur vault.Session) (vault.Session, bool, error)) (vault.Session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	next, changed, err := fn(t.cur)
	if err != nil {
		return t.cur, err
	}
	if changed {
		t.cur = next
	}
	return t.cur, nil
}

// login signs the token in (under t.mu: UpdateSession holds it).
func (t *tokenAuth) login(ctx context.Context) (vault.Session, error) {
	var resp syncapi.SessionResponse
	err := t.client.do(ctx, call{method: "POST", path: syncapi.PathTokenLogin,
		in: syncapi.TokenLoginRequest{TokenID: t.keys.ID, AuthKey: t.keys.AuthKey}, out: &resp})
	if isUnauthorized(err) {
		return vault.Session{}, errcode.WithHint(errcode.New(errcode.Unauthorized, "the sync server refused the service token: it is unknown, expired or revoked"), tokenHint)
	}
	if err != nil {
		return vault.Session{}, err
	}
	if resp.Account.ID != t.keys.AccountID() {
		return vault.Session{}, refuse("the service token's sign-in", CheckKeys, "the server answered for another account")
	}
	t.acct = resp.Account
	return SessionOf(resp.Session), nil
}

// tokenHint is the next step of every unauthorized answer to a token.
const tokenHint = "the token in " + TokenFileEnv + " no longer works: ask a workspace admin for a new one (`agentsecrets workspace token create`)"

// identity signs in if needed and recovers the token's identity from the
// wrapped private keys the server returned, checked against its public
// keys.
func (t *tokenAuth) identity(ctx context.Context) (Identity, syncapi.Account, error) {
	if _, err := t.client.accessToken(ctx, ""); err != nil {
		return Identity{}, syncapi.Account{}, err
	}
	t.mu.Lock()
	acct := t.acct
	t.mu.Unlock()
	id, err := UnwrapIdentity(t.keys.WrapKey, acct.WrappedPrivateKeys, acct.PublicKeys)
	if err != nil {
		return Identity{}, acct, errcode.WithHint(err, "the server returned private keys the token does not open: check the server")
	}
	return id, acct, nil
}

// ConnectToken builds the connection of a service token: text is the
// token string (the content of the AGENTSECRETS_TOKEN_FILE file). The
// account is the token's; the vault (an encrypted file vault in CI) holds
// the pulled secrets and the pins, never the token. It makes no request.
func ConnectToken(st *vault.Store, text []byte, getenv func(string) string, now func() time.Time) (*Conn, error) {
	server, tokenSecret, err := ParseToken(string(text))
	if err != nil {
		return nil, err
	}
	keys, err := DeriveTokenKeys(tokenSecret)
	clear(tokenSecret)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	auth := &tokenAuth{keys: keys}
	c, err := NewClient(Options{Server: server, Sessions: auth, Getenv: getenv, Now: now, Relogin: auth.login, LoginHint: tokenHint})
	if err != nil {
		keys.Wipe()
		return nil, err
	}
	auth.client = c
	return &Conn{Client: c, Store: st, Account: vault.Account{Server: c.Server(), ID: keys.AccountID()}, now: now, token: auth}, nil
}

// TokenSpec is a service token to create.
type TokenSpec struct {
	Name     string
	Role     string
	Projects []string
	Life     time.Duration
	// Secret is the token secret (NewTokenSecret): the caller makes it
	// first, so the token can be written out before the server has it.
	Secret []byte
}

// TokenInfo is one service token as the commands show it (never its
// secret).
type TokenInfo struct {
	Name       string     `json:"name"`
	ID         string     `json:"id"`
	Role       string     `json:"role"`
	Projects   []string   `json:"projects"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	// Fingerprint is the token identity's account fingerprint.
	Fingerprint string `json:"fingerprint,omitempty"`
}

func tokenInfo(t syncapi.Token) TokenInfo {
	return TokenInfo{Name: t.Name, ID: t.ID, Role: t.Role, Projects: t.Projects, CreatedBy: t.CreatedByEmail, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt, RevokedAt: t.RevokedAt}
}

// TokenResult reports `workspace token create` and `revoke`.
type TokenResult struct {
	Workspace   string    `json:"workspace"`
	WorkspaceID string    `json:"workspace_id"`
	Token       TokenInfo `json:"token"`
	// Rotation is the key rotation a revoke made (the token was a
	// member until then).
	Rotation *RemoveResult `json:"rotation,omitempty"`
	TeamNotes
}

// ValidateTokenRole validates a token role given by a person.
func ValidateTokenRole(r string) error {
	if r != RoleReader && r != RoleMember {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "a service token's role is reader or member, not %q", r), "pass --role reader")
	}
	return nil
}

// CreateToken creates a service token in a remote workspace. The device's
// account must be an admin of the verified roster. The token's identity is
// made here, its private keys wrapped under the key the secret derives,
// the workspace key sealed to it and its membership record signed; the
// token's keys are pinned on this device.
func (c *Conn) CreateToken(ctx context.Context, wsName string, spec TokenSpec) (*TokenResult, error) {
	if err := vault.CheckSpaceName("token", spec.Name); err != nil {
		return nil, err
	}
	if err := ValidateTokenRole(spec.Role); err != nil {
		return nil, err
	}
	if spec.Life <= 0 || spec.Life > MaxTokenLife {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "a token expires after 1 hour to 365 days"), "use --expires 90d")
	}
	remote, k, err := c.adminKeys(ctx, wsName, "create service tokens")
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	projects := slices.Clone(spec.Projects)
	slices.Sort(projects)
	projects = slices.Compact(projects)
	for _, p := range projects {
		if !slices.ContainsFunc(k.Detail.Projects, func(q syncapi.Project) bool { return q.Name == p }) {
			return nil, unknownProject(p)
		}
	}
	keys, err := DeriveTokenKeys(spec.Secret)
	if err != nil {
		return nil, err
	}
	defer keys.Wipe()
	tid, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	defer tid.Wipe()
	wrapped, err := WrapIdentity(tid, keys.WrapKey)
	if err != nil {
		return nil, err
	}
	pub := tid.Public()
	sealed, err := SealWorkspaceKey(pub, k.Workspace)
	if err != nil {
		return nil, err
	}
	now := c.now().UTC()
	self := k.roster.Members[c.Account.ID].Record
	email := TokenEmailPrefix + spec.Name
	rec, err := SignMembership(k.id, MembershipRecord{WorkspaceID: remote.ID, AccountID: keys.AccountID(), Email: email, Role: spec.Role,
		PublicKeys: pub, KeyVersion: self.KeyVersion, AddedBy: c.Account.ID, AddedAt: now}, sealed)
	if err != nil {
		return nil, err
	}
	// Pinned before the server adds the member, as a completed invite.
	pin := &vault.Pin{Email: email, SealPublic: pub.Seal, SignPublic: pub.Sign, FirstSeen: now}
	if err := c.pin(ctx, remote.ID, map[string]*vault.Pin{keys.AccountID(): pin}); err != nil {
		return nil, err
	}
	tok, err := c.Client.CreateToken(ctx, remote.ID, syncapi.CreateTokenRequest{ID: keys.ID, Name: spec.Name, Role: spec.Role, Projects: projects,
		ExpiresAt: now.Add(spec.Life), AuthKey: keys.AuthKey, PublicKeys: pub, WrappedPrivateKeys: wrapped, Record: rec, SealedKey: sealed})
	if err != nil {
		return nil, err
	}
	if tok.ID != keys.ID || tok.Name != spec.Name || tok.Role != spec.Role {
		return nil, refuse("the new service token", CheckMetadata, "the server answered with another token than was sent")
	}
	info := tokenInfo(tok)
	info.Fingerprint = AccountFingerprint(pub)
	return &TokenResult{Workspace: wsName, WorkspaceID: remote.ID, Token: info, TeamNotes: c.notes}, nil
}

// TokensResult reports `workspace token list`.
type TokensResult struct {
	Workspace   string      `json:"workspace"`
	WorkspaceID string      `json:"workspace_id"`
	Tokens      []TokenInfo `json:"tokens"`
	TeamNotes
}

// Tokens lists a remote workspace's service tokens (admins), with the
// fingerprint of each live token's verified member record.
func (c *Conn) Tokens(ctx context.Context, wsName string) (*TokensResult, error) {
	remote, k, err := c.rosterOf(ctx, wsName)
	if err != nil {
		return nil, err
	}
	list, err := c.Client.Tokens(ctx, remote.ID)
	if err != nil {
		return nil, err
	}
	res := &TokensResult{Workspace: wsName, WorkspaceID: remote.ID, Tokens: []TokenInfo{}, TeamNotes: c.notes}
	for _, t := range list.Tokens {
		info := tokenInfo(t)
		if m := k.roster.Members[TokenAccountPrefix+t.ID]; m != nil {
			info.Fingerprint = AccountFingerprint(m.Record.PublicKeys)
		}
		res.Tokens = append(res.Tokens, info)
	}
	return res, nil
}

// RevokeToken revokes a service token by name or id: the server marks it
// revoked, ends its sessions and removes its membership in one
// transaction, so the token can neither sign in nor read anything after
// it. This is the one client-side entry of a revocation.
func (c *Conn) RevokeToken(ctx context.Context, wsName, nameOrID string) (*TokenResult, error) {
	list, err := c.Tokens(ctx, wsName)
	if err != nil {
		return nil, err
	}
	var found *TokenInfo
	for i := range list.Tokens {
		t := &list.Tokens[i]
		if t.ID == nameOrID || t.Name == nameOrID && t.RevokedAt == nil {
			found = t
		}
	}
	if found == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "no live service token %s in workspace %s", printableToken(nameOrID), wsName),
			"run `agentsecrets workspace token list`")
	}
	// A revoked token is a removed member: its keys rotate first, while
	// it is still one (the rotation revokes it on the server in the same
	// commit); the revoke after it is for a token no longer a member.
	var rotation *RemoveResult
	if found.RevokedAt == nil {
		// The server answered a scoped token for its projects only, so
		// only their secrets are marked rotate_upstream.
		var readable func(string) bool
		if len(found.Projects) > 0 {
			readable = func(project string) bool { return slices.Contains(found.Projects, project) }
		}
		if rotation, err = c.removeMember(ctx, wsName, TokenEmailPrefix+found.Name, readable); err != nil {
			return nil, err
		}
	}
	if err := c.Client.RevokeToken(ctx, list.WorkspaceID, found.ID); err != nil {
		return nil, err
	}
	now := c.now().UTC()
	found.RevokedAt = &now
	return &TokenResult{Workspace: wsName, WorkspaceID: list.WorkspaceID, Token: *found, Rotation: rotation, TeamNotes: c.notes}, nil
}

// printableToken echoes a token name or id only when shaped like one: a
// token string pasted by mistake must not come back.
func printableToken(s string) string {
	if vault.CheckSpaceName("token", s) != nil || len(s) > 64 {
		return "<" + strconv.Itoa(len(s)) + " bytes>"
	}
	return s
}

// IsToken reports whether the connection signs in with a service token.
func (c *Conn) IsToken() bool { return c.token != nil }

// tokenIdentity is Conn.identity for a token connection: the account's
// email and public keys become the token's as the server returned them.
func (c *Conn) tokenIdentity(ctx context.Context) (Identity, error) {
	id, acct, err := c.token.identity(ctx)
	if err != nil {
		return Identity{}, err
	}
	c.Account.Email = acct.Email
	c.Account.SealPublic, c.Account.SignPublic = bytes.Clone(acct.PublicKeys.Seal), bytes.Clone(acct.PublicKeys.Sign)
	return id, nil
}
