// Package syncapi is the wire contract between the sync client
// (internal/sync) and the sync server (internal/server): every request and
// response body of the HTTP JSON API under /v1, and the error envelope.
// schema/server holds the JSON Schemas generated from these types.
//
// Nothing here is ever a secret value. What crosses the wire is names needed
// for routing, public keys, signatures, opaque ciphertext (envelopes, sealed
// and wrapped keys), the authentication key (a derivation of the password,
// never the password; the server keeps only a slow hash of it) and session
// tokens. Byte fields are base64 (standard, padded) in JSON, as encoding/json
// does for []byte.
package syncapi

import (
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
)

// Version is the API version, the first segment of every path.
const Version = "v1"

// Limits the server enforces and the client respects.
const (
	// MaxBody is the largest request body the server reads.
	MaxBody = 8 << 20
	// MaxEnvelope is the largest single secret or allowlist envelope.
	MaxEnvelope = 256 << 10
	// MaxPushChanges is the most secrets one push may change.
	MaxPushChanges = 1000
)

// Paths. {ws} is a workspace id, {project} a project name, {name} a secret
// name, {id} a device id, {invite} an invite id.
//
// Answers: 200 with the JSON body named below, except the two DELETEs,
// which answer 204 with no body. Every failure is an Error with an errcode
// code and that code's HTTP status: 401 unauthorized for a missing, expired
// or revoked access token (or a wrong login), 404 not_found for an unknown
// workspace or project and equally for a workspace the caller is not a
// member of, 409 conflict (with Names on a push), 400 usage for a malformed
// body (unknown fields and trailing data included), 413 too_large, and 429
// rate_limited with a Retry-After header (seconds) on the authentication
// routes (prelogin, accounts, sessions, refresh). Authenticated routes take
// "Authorization: Bearer <access token>".
const (
	PathHealth         = "/healthz"
	PathReady          = "/readyz"
	PathPrelogin       = "/v1/prelogin"                                                  // POST PreloginRequest → PreloginResponse
	PathAccounts       = "/v1/accounts"                                                  // POST CreateAccountRequest → SessionResponse
	PathSessions       = "/v1/sessions"                                                  // POST LoginRequest → SessionResponse
	PathRefresh        = "/v1/sessions/refresh"                                          // POST RefreshRequest → SessionResponse
	PathSessionCurrent = "/v1/sessions/current"                                          // DELETE: logout (ends this device's session)
	PathAccount        = "/v1/account"                                                   // GET → Account
	PathDevices        = "/v1/devices"                                                   // GET → DeviceList
	PathDevice         = "/v1/devices/{id}"                                              // DELETE: revoke a device and its sessions
	PathWorkspaces     = "/v1/workspaces"                                                // GET → WorkspaceList; POST CreateWorkspaceRequest → Workspace
	PathWorkspace      = "/v1/workspaces/{ws}"                                           // GET → WorkspaceDetail
	PathProjects       = "/v1/workspaces/{ws}/projects"                                  // POST CreateProjectRequest → Project
	PathPull           = "/v1/workspaces/{ws}/projects/{project}/pull"                   // POST PullRequest → PullResponse
	PathPush           = "/v1/workspaces/{ws}/projects/{project}/push"                   // POST PushRequest → PushResponse
	PathHistory        = "/v1/workspaces/{ws}/projects/{project}/secrets/{name}/history" // GET → History
	PathAllowlist      = "/v1/workspaces/{ws}/allowlist"                                 // GET ?since=N → AllowlistVersions; POST AllowlistPushRequest → AllowlistVersion
	PathInvites        = "/v1/workspaces/{ws}/invites"                                   // GET → InviteList (admins: the workspace's open and accepted invites); POST CreateInviteRequest → Invite (admins)
	PathInvite         = "/v1/workspaces/{ws}/invites/{invite}"                          // DELETE: cancel an open or accepted invite (admins)
	PathInviteComplete = "/v1/workspaces/{ws}/invites/{invite}/complete"                 // POST CompleteInviteRequest → Member (admins; the invite must be accepted)
	PathMyInvites      = "/v1/invites"                                                   // GET → InviteList: open and accepted invites addressed to the caller's email
	PathInviteAccept   = "/v1/invites/{invite}/accept"                                   // POST AcceptInviteRequest → Invite (the invitee)
	PathTokens         = "/v1/workspaces/{ws}/tokens"                                    // GET → TokenList (admins); POST CreateTokenRequest → Token (admins)
	PathToken          = "/v1/workspaces/{ws}/tokens/{token}"                            // DELETE: revoke a service token: its sessions end and its membership goes (admins)
	PathTokenLogin     = "/v1/sessions/token"                                            // POST TokenLoginRequest → SessionResponse (access token only; rate-limited like a login)
	PathRotate         = "/v1/workspaces/{ws}/rotate"                                    // POST RotateRequest → RotateResponse (admins): remove a member, rotate every key
	PathAudit          = "/v1/workspaces/{ws}/audit"                                     // POST AuditUploadRequest → AuditBatch (any member, tokens included); GET ?since=ID → AuditBatches (admins)
)

// Error is the body of every non-2xx response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody carries one of the CLI's error codes (internal/errcode), so the
// client reports a server error the way it reports its own.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Names lists the secrets a conflict is about.
	Names []string `json:"names,omitempty"`
}

// PreloginRequest asks for the password KDF parameters of an account.
type PreloginRequest struct {
	Email string `json:"email"`
}

// PreloginResponse gives them. For an unknown email the server answers with
// parameters derived from the email under a server-held key, the same every
// time, so the answer does not reveal whether an account exists.
type PreloginResponse struct {
	KDF crypto.KDFParams `json:"kdf"`
}

// PublicKeys are an account's (or later a service identity's) public keys.
type PublicKeys struct {
	Seal []byte `json:"seal"` // X25519, 32 bytes
	Sign []byte `json:"sign"` // Ed25519, 32 bytes
}

// CreateAccountRequest registers an account. AuthKey is derived from the
// password and the account key; the server stores only a slow hash of it.
// WrappedPrivateKeys is sealed under a key the server cannot derive.
type CreateAccountRequest struct {
	Email              string           `json:"email"`
	KDF                crypto.KDFParams `json:"kdf"`
	AuthKey            []byte           `json:"auth_key"`
	PublicKeys         PublicKeys       `json:"public_keys"`
	WrappedPrivateKeys []byte           `json:"wrapped_private_keys"`
	DeviceName         string           `json:"device_name"`
}

// LoginRequest opens a session on a new or returning device.
type LoginRequest struct {
	Email      string `json:"email"`
	AuthKey    []byte `json:"auth_key"`
	DeviceName string `json:"device_name"`
}

// RefreshRequest trades a refresh token for a new session; the old refresh
// token stops working (rotation).
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Session is a pair of bearer tokens. The client keeps both in the local
// vault; the server keeps only their SHA-256.
type Session struct {
	AccessToken      string    `json:"access_token"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	DeviceID         string    `json:"device_id"`
}

// SessionResponse answers account creation, login and refresh.
type SessionResponse struct {
	Session Session `json:"session"`
	Account Account `json:"account"`
}

// Account is what the server holds about an account, all of it safe for the
// server to see.
type Account struct {
	ID                 string           `json:"id"`
	Email              string           `json:"email"`
	CreatedAt          time.Time        `json:"created_at"`
	KDF                crypto.KDFParams `json:"kdf"`
	PublicKeys         PublicKeys       `json:"public_keys"`
	WrappedPrivateKeys []byte           `json:"wrapped_private_keys"`
}

// Device is one signed-in device (one session lineage).
type Device struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	Current    bool       `json:"current"`
}

// DeviceList answers GET /v1/devices.
type DeviceList struct {
	Devices []Device `json:"devices"`
}

// Member is one account's membership of a workspace: the workspace key
// sealed to the member's X25519 key, and a membership record signed by the
// admin who added them (the creator signs their own). The server stores and
// returns both as they were sent; clients verify them.
type Member struct {
	AccountID string `json:"account_id"`
	Email     string `json:"email"`
	Role      string `json:"role"` // admin, member, reader
	// Record is the signed membership record (internal/sync encodes and
	// verifies it); SealedKey is the workspace key sealed to the member.
	Record    []byte    `json:"record"`
	SealedKey []byte    `json:"sealed_key"`
	AddedBy   string    `json:"added_by"`
	AddedAt   time.Time `json:"added_at"`
	// Authority is set when the member signed its own current record (an
	// admin after running a removal): the latest record of it that another
	// admin signed, so clients can trace its role back to the creator.
	Authority []byte `json:"authority,omitempty"`
}

// Workspace is a remote workspace as listed.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// WorkspaceList answers GET /v1/workspaces: the workspaces the caller is a
// member of.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// CreateWorkspaceRequest creates a workspace with the caller as its first
// admin. The id is chosen by the client (32 lowercase hex digits) because it
// is bound into the associated data of everything under it before the
// server sees any of it.
type CreateWorkspaceRequest struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Record    []byte `json:"record"`
	SealedKey []byte `json:"sealed_key"`
}

// Project is a project's routing name and its key, wrapped under the
// workspace key (AES-256-GCM, opaque to the server).
type Project struct {
	Name       string    `json:"name"`
	WrappedKey []byte    `json:"wrapped_key"`
	KeyVersion int       `json:"key_version"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	// PreviousKeys are the project's older keys, each wrapped under the
	// current workspace key, so members can open versions sealed before
	// a rotation (see RotateRequest).
	PreviousKeys []ProjectKey `json:"previous_keys,omitempty"`
}

// CreateProjectRequest adds a project; a project that exists is a conflict.
type CreateProjectRequest struct {
	Name       string `json:"name"`
	WrappedKey []byte `json:"wrapped_key"`
	KeyVersion int    `json:"key_version"`
}

// WorkspaceDetail answers GET /v1/workspaces/{ws}.
type WorkspaceDetail struct {
	Workspace Workspace `json:"workspace"`
	Members   []Member  `json:"members"`
	Projects  []Project `json:"projects"`
	// AllowlistVersion is the newest allowlist version (0: none yet).
	AllowlistVersion int `json:"allowlist_version"`
	// KeyVersion is the current workspace key version: 1 at creation, one
	// more per removal (RotateRequest). Every member record carries it.
	KeyVersion int `json:"key_version"`
}

// SecretVersion is one stored version of one secret. Envelope is opaque to
// the server: internal/sync seals, signs and verifies it. Version numbers
// start at 1 and increase by one per name; Deleted marks a tombstone
// version as the author declared it (the envelope says the same, signed).
type SecretVersion struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	Envelope  []byte    `json:"envelope"`
	AuthorID  string    `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
}

// PullRequest names the version the client already holds of each secret;
// the server returns every newer version of those names and all versions of
// any other name in the project, oldest first per name, so the client can
// check the hash chain from what it knows.
type PullRequest struct {
	Known map[string]int `json:"known"`
}

// PullResponse carries the versions and the head (newest version) of every
// name in the project.
type PullResponse struct {
	Versions []SecretVersion `json:"versions"`
	Heads    map[string]int  `json:"heads"`
}

// PushChange is one new version. BaseVersion is the head the author built
// on (0 for a new name); the server refuses the whole push with a conflict
// naming every secret whose head moved.
type PushChange struct {
	Name        string `json:"name"`
	BaseVersion int    `json:"base_version"`
	Envelope    []byte `json:"envelope"`
}

// PushRequest is all or nothing.
type PushRequest struct {
	Changes []PushChange `json:"changes"`
}

// PushResponse lists the stored versions.
type PushResponse struct {
	Versions []SecretVersion `json:"versions"`
}

// HistoryEntry is one version's metadata.
type HistoryEntry struct {
	Version   int       `json:"version"`
	AuthorID  string    `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
}

// History answers GET …/secrets/{name}/history, oldest first.
type History struct {
	Name     string         `json:"name"`
	Versions []HistoryEntry `json:"versions"`
}

// AllowlistVersion is one signed, encrypted, hash-linked version of a
// workspace's allowlist document, opaque to the server.
type AllowlistVersion struct {
	Version   int       `json:"version"`
	Document  []byte    `json:"document"`
	AuthorID  string    `json:"author_id"`
	CreatedAt time.Time `json:"created_at"`
}

// AllowlistVersions answers GET …/allowlist?since=N, oldest first.
type AllowlistVersions struct {
	Versions []AllowlistVersion `json:"versions"`
}

// AllowlistPushRequest stores version BaseVersion+1.
type AllowlistPushRequest struct {
	BaseVersion int    `json:"base_version"`
	Document    []byte `json:"document"`
}

// Invite states. An invite is created open; the invitee's client accepts
// it with a proof of their public keys made with the invite code (which
// the server never sees); the inviting admin's client then checks the
// proof, seals the workspace key to those keys and completes it, which
// adds the member. Canceled and completed invites are not listed.
const (
	InviteOpen      = "open"
	InviteAccepted  = "accepted"
	InviteCompleted = "completed"
	InviteCanceled  = "canceled"
)

// Invite is an invitation of an email to a workspace with a role.
// Statement is signed by the inviter and authenticated under the invite
// code (internal/sync makes and checks it); the server stores it as sent.
type Invite struct {
	ID             string    `json:"id"`
	WorkspaceID    string    `json:"workspace_id"`
	WorkspaceName  string    `json:"workspace_name"`
	Email          string    `json:"email"`
	Role           string    `json:"role"`
	InvitedBy      string    `json:"invited_by"`
	InvitedByEmail string    `json:"invited_by_email"`
	CreatedAt      time.Time `json:"created_at"`
	Statement      []byte    `json:"statement"`
	State          string    `json:"state"`
	// Set once the invitee accepted: their account and public keys, as the
	// server has them, and the proof their client made of those keys.
	AccountID  string      `json:"account_id,omitempty"`
	PublicKeys *PublicKeys `json:"public_keys,omitempty"`
	Proof      []byte      `json:"proof,omitempty"`
	AcceptedAt *time.Time  `json:"accepted_at,omitempty"`
}

// CreateInviteRequest invites Email with Role. The id (32 lowercase hex
// digits) is the client's, because the signed statement names it.
type CreateInviteRequest struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	Role      string `json:"role"`
	Statement []byte `json:"statement"`
}

// AcceptInviteRequest carries the invitee's proof; the server adds the
// caller's account id and public keys to the invite.
type AcceptInviteRequest struct {
	Proof []byte `json:"proof"`
}

// CompleteInviteRequest adds the accepted invitee as a member with the
// invite's role: the membership record, signed by the caller, and the
// workspace key sealed to the invitee.
type CompleteInviteRequest struct {
	Record    []byte `json:"record"`
	SealedKey []byte `json:"sealed_key"`
}

// InviteList answers the invite listings, oldest first.
type InviteList struct {
	Invites []Invite `json:"invites"`
}

// Key rotation.

// ProjectKey is one older key of a project, wrapped under the current
// workspace key (the associated data names its own key version).
type ProjectKey struct {
	KeyVersion int    `json:"key_version"`
	WrappedKey []byte `json:"wrapped_key"`
}

// RotateMember is a remaining member's new membership record (key version
// KeyVersion, signed by the rotating admin) and the new workspace key
// sealed to them. Role must be the member's current role.
type RotateMember struct {
	AccountID string `json:"account_id"`
	Role      string `json:"role"`
	Record    []byte `json:"record"`
	SealedKey []byte `json:"sealed_key"`
	// Authority is the rotating admin's own authority record (see
	// Member.Authority); empty for every other member.
	Authority []byte `json:"authority,omitempty"`
}

// RotateProject is one project's new key (version KeyVersion, wrapped
// under the new workspace key), all its older keys re-wrapped under the
// new workspace key, and every live secret re-sealed under the new key as
// a new version. Heads are the head versions the admin built on, every
// name of the project (deleted ones included): a push that landed since
// is a conflict.
type RotateProject struct {
	Name         string         `json:"name"`
	KeyVersion   int            `json:"key_version"`
	WrappedKey   []byte         `json:"wrapped_key"`
	PreviousKeys []ProjectKey   `json:"previous_keys"`
	Heads        map[string]int `json:"heads"`
	Changes      []PushChange   `json:"changes"`
}

// RotateRequest removes RemovedAccountID from the workspace and rotates:
// workspace key version KeyVersion (the current one plus one), Members
// (exactly the current members minus the removed one, else conflict) and
// Projects (exactly the workspace's projects). All or nothing. The removed
// account's later requests on the workspace answer unauthorized.
type RotateRequest struct {
	RemovedAccountID string          `json:"removed_account_id"`
	KeyVersion       int             `json:"key_version"`
	Members          []RotateMember  `json:"members"`
	Projects         []RotateProject `json:"projects"`
	// Allowlist is the allowlist document's newest version re-sealed
	// under the new workspace key, as the next version; required exactly
	// when the workspace has an allowlist (a member who joins later opens
	// only the newest version).
	Allowlist *AllowlistPushRequest `json:"allowlist,omitempty"`
}

// MaxRotateBody is the largest rotation body: it carries every live
// secret of the workspace re-sealed, so it may exceed MaxBody.
const MaxRotateBody = 256 << 20

// RotateResponse answers a rotation: the new key version and how many
// secret versions were stored.
type RotateResponse struct {
	KeyVersion int `json:"key_version"`
	Versions   int `json:"versions"`
}

// Service tokens.

// A service token is a workspace member for CI and headless agents: an
// identity the creating admin's client generates, whose private keys are
// wrapped under a key derived from the token secret (which the server never
// sees) and stored on the server, with a membership record the admin signs
// like a person's. Its account id is "tok-" + the token id; its email, for
// display only, "token:" + its name. Roles reader and member only.

// CreateTokenRequest creates a service token in a workspace. ID, AuthKey
// and the wrapped keys derive from the token secret (docs/protocol.md);
// the server keeps only the SHA-256 of AuthKey. Projects limits what the
// token may pull, list and push (empty: every project); the server
// enforces it.
type CreateTokenRequest struct {
	ID                 string     `json:"id"`
	Name               string     `json:"name"`
	Role               string     `json:"role"`
	Projects           []string   `json:"projects"`
	ExpiresAt          time.Time  `json:"expires_at"`
	AuthKey            []byte     `json:"auth_key"`
	PublicKeys         PublicKeys `json:"public_keys"`
	WrappedPrivateKeys []byte     `json:"wrapped_private_keys"`
	Record             []byte     `json:"record"`
	SealedKey          []byte     `json:"sealed_key"`
}

// Token is a service token as listed (never its secret or auth key).
type Token struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	AccountID      string     `json:"account_id"`
	Role           string     `json:"role"`
	Projects       []string   `json:"projects"`
	CreatedBy      string     `json:"created_by"`
	CreatedByEmail string     `json:"created_by_email"`
	CreatedAt      time.Time  `json:"created_at"`
	ExpiresAt      time.Time  `json:"expires_at"`
	LastUsedAt     *time.Time `json:"last_used_at,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
}

// TokenList answers GET …/tokens: every token of the workspace, revoked
// ones included, oldest first.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// TokenLoginRequest opens a session for a service token. The answer's
// Session has no refresh token (a job logs in per run) and its access
// token ends at the token's expiry at the latest; its Account carries the
// token's public and wrapped private keys.
type TokenLoginRequest struct {
	TokenID string `json:"token_id"`
	AuthKey []byte `json:"auth_key"`
}

// Team audit.
//
// A member's client uploads the audit records it wrote for a workspace as
// a batch sealed to the workspace's admins (internal/sync/teamaudit.go,
// docs/protocol.md): the server stores the bytes as sent and can read
// none of them, only who uploaded them and when.

// Limits of the team audit stream.
const (
	// MaxAuditBatch is the largest sealed batch the server stores.
	MaxAuditBatch = 1 << 20
	// AuditPage is the most batches one GET …/audit answers.
	AuditPage = 100
)

// AuditUploadRequest stores one sealed batch.
type AuditUploadRequest struct {
	Batch []byte `json:"batch"`
}

// AuditBatch is one stored batch: its id (per workspace, from 1, in the
// order the server stored them), the uploading account and when. Batch
// is empty in the answer to an upload.
type AuditBatch struct {
	ID         int64     `json:"id"`
	UploaderID string    `json:"uploader_id"`
	CreatedAt  time.Time `json:"created_at"`
	Batch      []byte    `json:"batch,omitempty"`
}

// AuditBatches answers GET …/audit?since=ID: the batches after ID, oldest
// first, at most AuditPage and about 8 MiB of them; More says there are
// later ones (ask again with since = the last id).
type AuditBatches struct {
	Batches []AuditBatch `json:"batches"`
	More    bool         `json:"more,omitempty"`
}
