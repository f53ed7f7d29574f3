package server

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// Store is what the HTTP layer needs from a database. SQLStore implements
// it over database/sql for SQLite and PostgreSQL; a backend is a dialect
// (see db.go), not a second copy of the queries.
type Store interface {
	Ping(ctx context.Context) error
	Close() error
	// ServerKey returns the key named name, storing fresh the first time;
	// every replica on one database gets the same key.
	ServerKey(ctx context.Context, name string, fresh []byte) ([]byte, error)

	// CreateAccount with closed set (signup closed) takes only the first
	// account of an empty server or an email with an open invite.
	CreateAccount(ctx context.Context, a accountRow, dev deviceRow, toks []tokenRow, closed bool) error
	AccountByEmail(ctx context.Context, email string) (accountRow, error)
	AccountByID(ctx context.Context, id string) (accountRow, error)
	CreateDevice(ctx context.Context, dev deviceRow, toks []tokenRow) error
	Authenticate(ctx context.Context, accessHash []byte, now time.Time) (principal, error)
	Refresh(ctx context.Context, refreshHash []byte, now time.Time, fresh []tokenRow) (principal, error)
	EndDevice(ctx context.Context, accountID, deviceID string, now time.Time) error
	Devices(ctx context.Context, accountID string) ([]deviceRow, error)

	CreateWorkspace(ctx context.Context, ws syncapi.Workspace, m syncapi.Member) error
	Workspaces(ctx context.Context, accountID string) ([]syncapi.Workspace, error)
	Role(ctx context.Context, wsID, accountID string) (string, error)
	WorkspaceDetail(ctx context.Context, wsID, accountID string) (syncapi.WorkspaceDetail, error)
	CreateProject(ctx context.Context, wsID string, p syncapi.Project) error
	// ProjectRole is the account's role in the workspace (errMissing if
	// not a member) and whether the project exists, in one query.
	ProjectRole(ctx context.Context, wsID, project, accountID string) (role string, exists bool, err error)
	Pull(ctx context.Context, wsID, project string, known map[string]int) (syncapi.PullResponse, error)
	// VersionCount is the number of versions the project holds. Versions
	// are only ever added, never changed or deleted, so an equal count
	// means the very same versions: pullCache relies on it.
	VersionCount(ctx context.Context, wsID, project string) (int, error)
	Push(ctx context.Context, wsID, project, author string, changes []syncapi.PushChange, now time.Time) ([]syncapi.SecretVersion, error)
	History(ctx context.Context, wsID, project, name string) ([]syncapi.HistoryEntry, error)
	Allowlist(ctx context.Context, wsID string, since int) ([]syncapi.AllowlistVersion, error)
	PushAllowlist(ctx context.Context, wsID string, base int, doc []byte, author string, now time.Time) (syncapi.AllowlistVersion, error)

	// CreateInvite stores an open invite; at most maxPending invites of a
	// workspace may be open or accepted at once.
	CreateInvite(ctx context.Context, inv syncapi.Invite, maxPending int) (syncapi.Invite, error)
	// Invites lists the open and accepted invites of a workspace,
	// InvitesFor those addressed to an email, oldest first.
	Invites(ctx context.Context, wsID string) ([]syncapi.Invite, error)
	InvitesFor(ctx context.Context, email string) ([]syncapi.Invite, error)
	// AcceptInvite records a's account, public keys and proof on the
	// open or accepted invite id addressed to a's email.
	AcceptInvite(ctx context.Context, id string, a accountRow, proof []byte, now time.Time) (syncapi.Invite, error)
	// CompleteInvite adds the accepted invite's account as a member with
	// the invite's role (m gives the record, sealed key and adder) and
	// marks the invite completed, in one transaction.
	CompleteInvite(ctx context.Context, wsID, id string, m syncapi.Member, now time.Time) (syncapi.Member, error)
	CancelInvite(ctx context.Context, wsID, id string, now time.Time) error

	// CreateToken adds a service token: its account, device, token and
	// member rows in one transaction (at most max live tokens per
	// workspace; errMissing for a project that does not exist).
	CreateToken(ctx context.Context, t serviceToken, a accountRow, dev deviceRow, m syncapi.Member, max int) (serviceToken, error)
	// Tokens lists a workspace's tokens, revoked ones included.
	Tokens(ctx context.Context, wsID string) ([]serviceToken, error)
	// ServiceToken is the token whose account id is accountID.
	ServiceToken(ctx context.Context, accountID string) (serviceToken, error)
	// RevokeToken marks the token revoked, ends its sessions and removes
	// its membership, in one transaction.
	RevokeToken(ctx context.Context, wsID, id string, now time.Time) error
	// TokenLogin checks a token's auth hash and stores a new access token
	// for it, valid until now+ttl or the token's expiry, whichever is
	// first (returned); errBadToken for a wrong, expired or revoked one.
	TokenLogin(ctx context.Context, id string, authHash, accessHash []byte, now time.Time, ttl time.Duration) (serviceToken, accountRow, time.Time, error)
	// Rotate removes req.RemovedAccountID and stores the rotated member
	// records, project keys and re-sealed versions (see rotate.go), in one
	// transaction; it returns the number of versions stored.
	Rotate(ctx context.Context, wsID, admin string, req syncapi.RotateRequest, now time.Time) (int, error)
	// Removed reports whether the account was removed from the workspace
	// (and not added back), with the workspace's name.
	Removed(ctx context.Context, wsID, accountID string) (name string, removed bool, err error)

	// PutAuditBatch stores a sealed audit batch as the workspace's next
	// batch id; AuditBatches lists a page of them after id since, oldest
	// first, and whether later ones follow (audit.go).
	PutAuditBatch(ctx context.Context, wsID, uploader string, batch []byte, now time.Time) (syncapi.AuditBatch, error)
	AuditBatches(ctx context.Context, wsID string, since int64) ([]syncapi.AuditBatch, bool, error)
}

var _ Store = (*SQLStore)(nil)

// Store-level outcomes the HTTP layer turns into codes.
var (
	errMissing      = errors.New("no such row")
	errExists       = errors.New("already exists")
	errSignupClosed = errors.New("signup is closed")
	// errTokenReuse: a rotated refresh token came back; its device is
	// revoked (a copy of the token is in someone else's hands).
	errTokenReuse = errors.New("refresh token reused")
	errBadToken   = errors.New("unknown, expired or revoked token")
	// Invite outcomes.
	errAlreadyMember  = errors.New("already a member")
	errInvitePending  = errors.New("an invite for this email is pending")
	errNotAccepted    = errors.New("invite not accepted yet")
	errTooManyInvites = errors.New("too many pending invites")
)

// conflictError names every secret whose head moved under a push.
type conflictError struct{ names []string }

func (e *conflictError) Error() string { return "changed concurrently: " + strings.Join(e.names, ", ") }

type accountRow struct {
	ID         string
	Email      string
	KDF        crypto.KDFParams
	AuthSalt   []byte
	AuthHash   []byte
	PublicKeys syncapi.PublicKeys
	Wrapped    []byte
	CreatedAt  time.Time
}

func (a accountRow) api() syncapi.Account {
	return syncapi.Account{ID: a.ID, Email: a.Email, CreatedAt: a.CreatedAt, KDF: a.KDF, PublicKeys: a.PublicKeys, WrappedPrivateKeys: a.Wrapped}
}

type deviceRow struct {
	ID         string
	AccountID  string
	Name       string
	CreatedAt  time.Time
	LastSeenAt time.Time
	RevokedAt  *time.Time
}

const (
	kindAccess  = "access"
	kindRefresh = "refresh"
)

type tokenRow struct {
	Hash      []byte
	Kind      string
	ExpiresAt time.Time
}

// principal is the caller a valid access token names.
type principal struct {
	AccountID string
	DeviceID  string
}

// SQLStore is the Store over database/sql.
type SQLStore struct {
	db *sql.DB
	d  dialect

	// stmts caches prepared statements of the queries run outside a
	// transaction (every request runs a few of the same ones; SQLite
	// would parse each every time). Bounded: a query past the bound runs
	// unprepared.
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

const maxStmts = 64

// prepared returns the cached statement of query, preparing it once.
func (s *SQLStore) prepared(ctx context.Context, query string) *sql.Stmt {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.stmts[query]; ok {
		return st
	}
	if len(s.stmts) >= maxStmts {
		return nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // the unprepared path reports the error
	}
	if s.stmts == nil {
		s.stmts = map[string]*sql.Stmt{}
	}
	s.stmts[query] = st
	return st
}

// Backend names the database kind ("sqlite" or "postgres").
func (s *SQLStore) Backend() string { return s.d.name }

func (s *SQLStore) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }
func (s *SQLStore) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return s.db.Close()
}

func micro(t time.Time) int64 { return t.UnixMicro() }

// nullBytes stores an empty optional byte column as NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}
func fromMicro(us int64) time.Time { return time.UnixMicro(us).UTC() }

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func (s *SQLStore) exec(ctx context.Context, q querier, query string, args ...any) (sql.Result, error) {
	return q.ExecContext(ctx, s.d.rebind(query), args...)
}
func (s *SQLStore) query(ctx context.Context, q querier, query string, args ...any) (*sql.Rows, error) {
	query = s.d.rebind(query)
	if q == querier(s.db) {
		if st := s.prepared(ctx, query); st != nil {
			return st.QueryContext(ctx, args...)
		}
	}
	return q.QueryContext(ctx, query, args...)
}
func (s *SQLStore) row(ctx context.Context, q querier, query string, args ...any) *sql.Row {
	query = s.d.rebind(query)
	if q == querier(s.db) {
		if st := s.prepared(ctx, query); st != nil {
			return st.QueryRowContext(ctx, args...)
		}
	}
	return q.QueryRowContext(ctx, query, args...)
}

// tx runs f in one transaction: committed if f returns nil, rolled back
// otherwise (and if the process dies half-way, the database rolls it back).
// A commitErr result from f is committed and still returned: a revocation
// must stick although the request fails.
func (s *SQLStore) tx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return dbError("begin", err)
	}
	ferr := f(tx)
	var ce commitErr
	if ferr != nil && !errors.As(ferr, &ce) {
		tx.Rollback()
		return ferr
	}
	if err := tx.Commit(); err != nil {
		if s.d.unique(err) {
			return errExists
		}
		return dbError("commit", err)
	}
	if ferr != nil {
		return ce.err
	}
	return nil
}

type commitErr struct{ err error }

func (c commitErr) Error() string { return c.err.Error() }

func (s *SQLStore) ServerKey(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if _, err := s.exec(ctx, s.db, "INSERT INTO server_keys (name, key) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", name, fresh); err != nil {
		return nil, dbError("server key", err)
	}
	var key []byte
	if err := s.row(ctx, s.db, "SELECT key FROM server_keys WHERE name = ?", name).Scan(&key); err != nil {
		return nil, dbError("server key", err)
	}
	return key, nil
}

func (s *SQLStore) insertDevice(ctx context.Context, tx *sql.Tx, dev deviceRow, toks []tokenRow) error {
	if _, err := s.exec(ctx, tx, "INSERT INTO devices (id, account_id, name, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
		dev.ID, dev.AccountID, dev.Name, micro(dev.CreatedAt), micro(dev.LastSeenAt)); err != nil {
		return dbError("insert device", err)
	}
	return s.insertTokens(ctx, tx, dev.ID, toks)
}

func (s *SQLStore) insertTokens(ctx context.Context, tx *sql.Tx, deviceID string, toks []tokenRow) error {
	for _, t := range toks {
		if _, err := s.exec(ctx, tx, "INSERT INTO tokens (hash, device_id, kind, expires_at) VALUES (?, ?, ?, ?)",
			t.Hash, deviceID, t.Kind, micro(t.ExpiresAt)); err != nil {
			return dbError("insert token", err)
		}
	}
	return nil
}

func (s *SQLStore) CreateAccount(ctx context.Context, a accountRow, dev deviceRow, toks []tokenRow, closed bool) error {
	kdf, err := json.Marshal(a.KDF)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if closed {
			var n int
			if err := s.row(ctx, tx, "SELECT COUNT(*) FROM accounts").Scan(&n); err != nil {
				return dbError("count accounts", err)
			}
			switch {
			case n > 0:
				// An invited email may still sign up: that is how a
				// team member gets an account on a closed server.
				var invited int
				if err := s.row(ctx, tx, "SELECT COUNT(*) FROM invites WHERE email = ? AND state = ?", a.Email, syncapi.InviteOpen).Scan(&invited); err != nil {
					return dbError("look up invites", err)
				}
				if invited == 0 {
					return errSignupClosed
				}
			default:
				// Two first signups racing on two replicas both count
				// zero; only one can insert this row (the other waits for
				// it and then inserts nothing).
				res, err := s.exec(ctx, tx, "INSERT INTO server_keys (name, key) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", firstAccountKey, []byte(a.ID))
				if err != nil {
					return dbError("claim the first account", err)
				}
				if n, _ := res.RowsAffected(); n != 1 {
					return errSignupClosed
				}
			}
		}
		return s.insertAccount(ctx, tx, a, kdf, dev, toks)
	})
}

func (s *SQLStore) insertAccount(ctx context.Context, tx *sql.Tx, a accountRow, kdf []byte, dev deviceRow, toks []tokenRow) error {
	if _, err := s.exec(ctx, tx, `INSERT INTO accounts (id, email, kdf, auth_salt, auth_hash, seal_pub, sign_pub, wrapped_keys, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, a.Email, string(kdf), a.AuthSalt, a.AuthHash, a.PublicKeys.Seal, a.PublicKeys.Sign, a.Wrapped, micro(a.CreatedAt)); err != nil {
		if s.d.unique(err) {
			return errExists
		}
		return dbError("insert account", err)
	}
	return s.insertDevice(ctx, tx, dev, toks)
}

// firstAccountKey is the server_keys row the first account of a closed
// server claims.
const firstAccountKey = "first-account"

const accountCols = "id, email, kdf, auth_salt, auth_hash, seal_pub, sign_pub, wrapped_keys, created_at"

func (s *SQLStore) scanAccount(r *sql.Row) (accountRow, error) {
	var a accountRow
	var kdf string
	var created int64
	if err := r.Scan(&a.ID, &a.Email, &kdf, &a.AuthSalt, &a.AuthHash, &a.PublicKeys.Seal, &a.PublicKeys.Sign, &a.Wrapped, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return a, errMissing
		}
		return a, dbError("read account", err)
	}
	if err := json.Unmarshal([]byte(kdf), &a.KDF); err != nil {
		return a, dbError("read account kdf", err)
	}
	a.CreatedAt = fromMicro(created)
	return a, nil
}

func (s *SQLStore) AccountByEmail(ctx context.Context, email string) (accountRow, error) {
	return s.scanAccount(s.row(ctx, s.db, "SELECT "+accountCols+" FROM accounts WHERE email = ?", email))
}

func (s *SQLStore) AccountByID(ctx context.Context, id string) (accountRow, error) {
	return s.scanAccount(s.row(ctx, s.db, "SELECT "+accountCols+" FROM accounts WHERE id = ?", id))
}

func (s *SQLStore) CreateDevice(ctx context.Context, dev deviceRow, toks []tokenRow) error {
	return s.tx(ctx, func(tx *sql.Tx) error { return s.insertDevice(ctx, tx, dev, toks) })
}

// lastSeenEvery bounds how often an access updates a device's last_seen_at:
// a pull should not be a write.
const lastSeenEvery = time.Minute

func (s *SQLStore) Authenticate(ctx context.Context, hash []byte, now time.Time) (principal, error) {
	var p principal
	var expires, lastSeen int64
	var revoked sql.NullInt64
	err := s.row(ctx, s.db, `SELECT d.id, d.account_id, t.expires_at, d.revoked_at, d.last_seen_at
		FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = ? AND t.kind = ?`, hash, kindAccess).
		Scan(&p.DeviceID, &p.AccountID, &expires, &revoked, &lastSeen)
	if errors.Is(err, sql.ErrNoRows) {
		return p, errBadToken
	}
	if err != nil {
		return p, dbError("read token", err)
	}
	if revoked.Valid || micro(now) >= expires {
		return p, errBadToken
	}
	if micro(now)-lastSeen > lastSeenEvery.Microseconds() {
		if _, err := s.exec(ctx, s.db, "UPDATE devices SET last_seen_at = ? WHERE id = ?", micro(now), p.DeviceID); err != nil {
			return p, dbError("touch device", err)
		}
	}
	return p, nil
}

func (s *SQLStore) Refresh(ctx context.Context, hash []byte, now time.Time, fresh []tokenRow) (principal, error) {
	var p principal
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var expires int64
		var rotated, revoked sql.NullInt64
		err := s.row(ctx, tx, `SELECT d.id, d.account_id, t.expires_at, t.rotated_at, d.revoked_at
			FROM tokens t JOIN devices d ON d.id = t.device_id WHERE t.hash = ? AND t.kind = ?`, hash, kindRefresh).
			Scan(&p.DeviceID, &p.AccountID, &expires, &rotated, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadToken
		}
		if err != nil {
			return dbError("read token", err)
		}
		if revoked.Valid || micro(now) >= expires {
			return errBadToken
		}
		if !rotated.Valid {
			// Only one of two racing refreshes can rotate the token; the
			// other sees no row and is treated as the reuse it is.
			res, err := s.exec(ctx, tx, "UPDATE tokens SET rotated_at = ? WHERE hash = ? AND rotated_at IS NULL", micro(now), hash)
			if err != nil {
				return dbError("rotate token", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				if _, err := s.exec(ctx, tx, "DELETE FROM tokens WHERE device_id = ? AND (kind = ? OR expires_at <= ?)", p.DeviceID, kindAccess, micro(now)); err != nil {
					return dbError("drop old tokens", err)
				}
				if _, err := s.exec(ctx, tx, "UPDATE devices SET last_seen_at = ? WHERE id = ?", micro(now), p.DeviceID); err != nil {
					return dbError("touch device", err)
				}
				return s.insertTokens(ctx, tx, p.DeviceID, fresh)
			}
		}
		if err := s.endDevice(ctx, tx, p.DeviceID, now); err != nil {
			return err
		}
		return commitErr{errTokenReuse}
	})
	return p, err
}

func (s *SQLStore) endDevice(ctx context.Context, tx *sql.Tx, deviceID string, now time.Time) error {
	if _, err := s.exec(ctx, tx, "UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", micro(now), deviceID); err != nil {
		return dbError("revoke device", err)
	}
	if _, err := s.exec(ctx, tx, "DELETE FROM tokens WHERE device_id = ?", deviceID); err != nil {
		return dbError("revoke tokens", err)
	}
	return nil
}

func (s *SQLStore) EndDevice(ctx context.Context, accountID, deviceID string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var id string
		if err := s.row(ctx, tx, "SELECT id FROM devices WHERE id = ? AND account_id = ?", deviceID, accountID).Scan(&id); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return errMissing
			}
			return dbError("read device", err)
		}
		return s.endDevice(ctx, tx, deviceID, now)
	})
}

func (s *SQLStore) Devices(ctx context.Context, accountID string) ([]deviceRow, error) {
	rows, err := s.query(ctx, s.db, "SELECT id, name, created_at, last_seen_at, revoked_at FROM devices WHERE account_id = ? ORDER BY created_at, id", accountID)
	if err != nil {
		return nil, dbError("list devices", err)
	}
	defer rows.Close()
	var out []deviceRow
	for rows.Next() {
		d := deviceRow{AccountID: accountID}
		var created, seen int64
		var revoked sql.NullInt64
		if err := rows.Scan(&d.ID, &d.Name, &created, &seen, &revoked); err != nil {
			return nil, dbError("list devices", err)
		}
		d.CreatedAt, d.LastSeenAt = fromMicro(created), fromMicro(seen)
		if revoked.Valid {
			t := fromMicro(revoked.Int64)
			d.RevokedAt = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *SQLStore) CreateWorkspace(ctx context.Context, ws syncapi.Workspace, m syncapi.Member) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.exec(ctx, tx, "INSERT INTO workspaces (id, name, created_by, created_at) VALUES (?, ?, ?, ?)",
			ws.ID, ws.Name, ws.CreatedBy, micro(ws.CreatedAt)); err != nil {
			if s.d.unique(err) {
				return errExists
			}
			return dbError("insert workspace", err)
		}
		return s.insertMember(ctx, tx, ws.ID, m)
	})
}

func (s *SQLStore) insertMember(ctx context.Context, tx *sql.Tx, wsID string, m syncapi.Member) error {
	if _, err := s.exec(ctx, tx, `INSERT INTO members (workspace_id, account_id, role, record, sealed_key, added_by, added_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, wsID, m.AccountID, m.Role, m.Record, m.SealedKey, m.AddedBy, micro(m.AddedAt)); err != nil {
		if s.d.unique(err) {
			return errExists
		}
		return dbError("insert member", err)
	}
	// Added back after a removal: a member again, not "removed".
	if _, err := s.exec(ctx, tx, "DELETE FROM removals WHERE workspace_id = ? AND account_id = ?", wsID, m.AccountID); err != nil {
		return dbError("insert member", err)
	}
	return nil
}

func (s *SQLStore) Workspaces(ctx context.Context, accountID string) ([]syncapi.Workspace, error) {
	rows, err := s.query(ctx, s.db, `SELECT w.id, w.name, m.role, w.created_by, w.created_at FROM workspaces w
		JOIN members m ON m.workspace_id = w.id WHERE m.account_id = ? ORDER BY w.name, w.id`, accountID)
	if err != nil {
		return nil, dbError("list workspaces", err)
	}
	defer rows.Close()
	out := []syncapi.Workspace{}
	for rows.Next() {
		var w syncapi.Workspace
		var created int64
		if err := rows.Scan(&w.ID, &w.Name, &w.Role, &w.CreatedBy, &created); err != nil {
			return nil, dbError("list workspaces", err)
		}
		w.CreatedAt = fromMicro(created)
		out = append(out, w)
	}
	return out, rows.Err()
}

func (s *SQLStore) Role(ctx context.Context, wsID, accountID string) (string, error) {
	var role string
	err := s.row(ctx, s.db, "SELECT role FROM members WHERE workspace_id = ? AND account_id = ?", wsID, accountID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errMissing
	}
	if err != nil {
		return "", dbError("read membership", err)
	}
	return role, nil
}

func (s *SQLStore) WorkspaceDetail(ctx context.Context, wsID, accountID string) (syncapi.WorkspaceDetail, error) {
	var d syncapi.WorkspaceDetail
	var created int64
	err := s.row(ctx, s.db, `SELECT w.id, w.name, m.role, w.created_by, w.created_at, w.key_version FROM workspaces w
		JOIN members m ON m.workspace_id = w.id WHERE w.id = ? AND m.account_id = ?`, wsID, accountID).
		Scan(&d.Workspace.ID, &d.Workspace.Name, &d.Workspace.Role, &d.Workspace.CreatedBy, &created, &d.KeyVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return d, errMissing
	}
	if err != nil {
		return d, dbError("read workspace", err)
	}
	d.Workspace.CreatedAt = fromMicro(created)
	// A service token's member is listed as token:NAME, as its record
	// names it (its accounts row holds no email).
	rows, err := s.query(ctx, s.db, `SELECT m.account_id, COALESCE('token:' || t.name, a.email), m.role, m.record, m.sealed_key, m.added_by, m.added_at, m.authority
		FROM members m JOIN accounts a ON a.id = m.account_id LEFT JOIN service_tokens t ON t.account_id = m.account_id
		WHERE m.workspace_id = ? ORDER BY m.added_at, m.account_id`, wsID)
	if err != nil {
		return d, dbError("list members", err)
	}
	defer rows.Close()
	d.Members = []syncapi.Member{}
	for rows.Next() {
		var m syncapi.Member
		var added int64
		if err := rows.Scan(&m.AccountID, &m.Email, &m.Role, &m.Record, &m.SealedKey, &m.AddedBy, &added, &m.Authority); err != nil {
			return d, dbError("list members", err)
		}
		m.AddedAt = fromMicro(added)
		d.Members = append(d.Members, m)
	}
	if err := rows.Err(); err != nil {
		return d, dbError("list members", err)
	}
	prow, err := s.query(ctx, s.db, "SELECT name, wrapped_key, key_version, created_by, created_at FROM projects WHERE workspace_id = ? ORDER BY name", wsID)
	if err != nil {
		return d, dbError("list projects", err)
	}
	defer prow.Close()
	d.Projects = []syncapi.Project{}
	for prow.Next() {
		var p syncapi.Project
		var created int64
		if err := prow.Scan(&p.Name, &p.WrappedKey, &p.KeyVersion, &p.CreatedBy, &created); err != nil {
			return d, dbError("list projects", err)
		}
		p.CreatedAt = fromMicro(created)
		d.Projects = append(d.Projects, p)
	}
	if err := prow.Err(); err != nil {
		return d, dbError("list projects", err)
	}
	if err := s.previousKeys(ctx, wsID, d.Projects); err != nil {
		return d, err
	}
	if err := s.row(ctx, s.db, "SELECT COALESCE(MAX(version), 0) FROM allowlist_versions WHERE workspace_id = ?", wsID).Scan(&d.AllowlistVersion); err != nil {
		return d, dbError("read allowlist head", err)
	}
	return d, nil
}

func (s *SQLStore) CreateProject(ctx context.Context, wsID string, p syncapi.Project) error {
	_, err := s.exec(ctx, s.db, "INSERT INTO projects (workspace_id, name, wrapped_key, key_version, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		wsID, p.Name, p.WrappedKey, p.KeyVersion, p.CreatedBy, micro(p.CreatedAt))
	if s.d.unique(err) {
		return errExists
	}
	if err != nil {
		return dbError("insert project", err)
	}
	return nil
}

func (s *SQLStore) ProjectRole(ctx context.Context, wsID, project, accountID string) (string, bool, error) {
	var role string
	var exists bool
	err := s.row(ctx, s.db, `SELECT m.role, EXISTS (SELECT 1 FROM projects p WHERE p.workspace_id = m.workspace_id AND p.name = ?)
		FROM members m WHERE m.workspace_id = ? AND m.account_id = ?`, project, wsID, accountID).Scan(&role, &exists)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, errMissing
	}
	if err != nil {
		return "", false, dbError("read membership", err)
	}
	return role, exists, nil
}

func (s *SQLStore) heads(ctx context.Context, q querier, wsID, project string) (map[string]int, error) {
	rows, err := s.query(ctx, q, "SELECT name, MAX(version) FROM secret_versions WHERE workspace_id = ? AND project = ? GROUP BY name", wsID, project)
	if err != nil {
		return nil, dbError("read heads", err)
	}
	defer rows.Close()
	heads := map[string]int{}
	for rows.Next() {
		var name string
		var v int
		if err := rows.Scan(&name, &v); err != nil {
			return nil, dbError("read heads", err)
		}
		heads[name] = v
	}
	return heads, rows.Err()
}

func (s *SQLStore) VersionCount(ctx context.Context, wsID, project string) (int, error) {
	var n int
	if err := s.row(ctx, s.db, "SELECT COUNT(*) FROM secret_versions WHERE workspace_id = ? AND project = ?", wsID, project).Scan(&n); err != nil {
		return 0, dbError("count versions", err)
	}
	return n, nil
}

// pullChunk bounds the names per versions query (two placeholders each):
// far below SQLite's and PostgreSQL's parameter limits.
const pullChunk = 200

// Pull reads the heads first, then the versions each name needs, bounded by
// those heads: versions are never changed once written, so the answer is
// consistent without a transaction even while pushes land.
func (s *SQLStore) Pull(ctx context.Context, wsID, project string, known map[string]int) (syncapi.PullResponse, error) {
	heads, err := s.heads(ctx, s.db, wsID, project)
	if err != nil {
		return syncapi.PullResponse{}, err
	}
	res := syncapi.PullResponse{Versions: []syncapi.SecretVersion{}, Heads: heads}
	var names []string
	for name, head := range heads {
		if head > known[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	if len(names) > pullChunk/10 {
		// Most of the project: one scan in key order is cheaper than a
		// long OR of conditions, and the filter is the same.
		err = s.collect(ctx, &res, known, heads, "SELECT name, version, envelope, author_id, created_at FROM secret_versions WHERE workspace_id = ? AND project = ? ORDER BY name, version", wsID, project)
		return res, err
	}
	for len(names) > 0 {
		chunk := names[:min(pullChunk, len(names))]
		names = names[len(chunk):]
		args := []any{wsID, project}
		conds := make([]string, 0, len(chunk))
		for _, name := range chunk {
			conds = append(conds, "(name = ? AND version > ? AND version <= ?)")
			args = append(args, name, max(known[name], 0), heads[name])
		}
		if err := s.collect(ctx, &res, known, heads, "SELECT name, version, envelope, author_id, created_at FROM secret_versions WHERE workspace_id = ? AND project = ? AND ("+
			strings.Join(conds, " OR ")+") ORDER BY name, version", args...); err != nil {
			return res, err
		}
	}
	return res, nil
}

// collect appends the rows of a versions query that lie after the known
// version and at or below the head read before it.
func (s *SQLStore) collect(ctx context.Context, res *syncapi.PullResponse, known, heads map[string]int, query string, args ...any) error {
	rows, err := s.query(ctx, s.db, query, args...)
	if err != nil {
		return dbError("read versions", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v syncapi.SecretVersion
		var created int64
		if err := rows.Scan(&v.Name, &v.Version, &v.Envelope, &v.AuthorID, &created); err != nil {
			return dbError("read versions", err)
		}
		if v.Version <= known[v.Name] || v.Version > heads[v.Name] {
			continue
		}
		v.CreatedAt = fromMicro(created)
		res.Versions = append(res.Versions, v)
	}
	if err := rows.Err(); err != nil {
		return dbError("read versions", err)
	}
	return nil
}

// Push stores every change as version base+1 in one transaction, or none.
// A head that moved is a conflict naming every such secret. Two replicas
// that both read the same head race on the primary key: the loser's commit
// (or insert) fails as a unique violation and is answered the same way.
func (s *SQLStore) Push(ctx context.Context, wsID, project, author string, changes []syncapi.PushChange, now time.Time) ([]syncapi.SecretVersion, error) {
	var out []syncapi.SecretVersion
	err := s.tx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		// Takes the project's row lock: a rotation (rotate.go) takes it
		// before reading heads, so it waits for this push, sees its
		// versions and refuses to rotate without them.
		if _, err := s.exec(ctx, tx, "UPDATE projects SET key_version = key_version WHERE workspace_id = ? AND name = ?", wsID, project); err != nil {
			return dbError("lock project", err)
		}
		var moved []string
		for _, c := range changes {
			var head int
			if err := s.row(ctx, tx, "SELECT COALESCE(MAX(version), 0) FROM secret_versions WHERE workspace_id = ? AND project = ? AND name = ?",
				wsID, project, c.Name).Scan(&head); err != nil {
				return dbError("read head", err)
			}
			if head != c.BaseVersion {
				moved = append(moved, c.Name)
			}
		}
		if len(moved) > 0 {
			return &conflictError{names: moved}
		}
		for _, c := range changes {
			v := syncapi.SecretVersion{Name: c.Name, Version: c.BaseVersion + 1, Envelope: c.Envelope, AuthorID: author, CreatedAt: now.UTC().Truncate(time.Microsecond)}
			if _, err := s.exec(ctx, tx, "INSERT INTO secret_versions (workspace_id, project, name, version, envelope, author_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
				wsID, project, v.Name, v.Version, v.Envelope, v.AuthorID, micro(v.CreatedAt)); err != nil {
				if s.d.unique(err) {
					return errExists
				}
				return dbError("insert version", err)
			}
			out = append(out, v)
		}
		return nil
	})
	if errors.Is(err, errExists) {
		// Lost a race: say which heads moved, as read now.
		heads, herr := s.heads(ctx, s.db, wsID, project)
		if herr != nil {
			return nil, herr
		}
		var moved []string
		for _, c := range changes {
			if heads[c.Name] != c.BaseVersion {
				moved = append(moved, c.Name)
			}
		}
		if len(moved) == 0 {
			for _, c := range changes {
				moved = append(moved, c.Name)
			}
		}
		return nil, &conflictError{names: moved}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *SQLStore) History(ctx context.Context, wsID, project, name string) ([]syncapi.HistoryEntry, error) {
	rows, err := s.query(ctx, s.db, "SELECT version, author_id, created_at FROM secret_versions WHERE workspace_id = ? AND project = ? AND name = ? ORDER BY version",
		wsID, project, name)
	if err != nil {
		return nil, dbError("read history", err)
	}
	defer rows.Close()
	out := []syncapi.HistoryEntry{}
	for rows.Next() {
		var h syncapi.HistoryEntry
		var created int64
		if err := rows.Scan(&h.Version, &h.AuthorID, &created); err != nil {
			return nil, dbError("read history", err)
		}
		h.CreatedAt = fromMicro(created)
		out = append(out, h)
	}
	return out, rows.Err()
}

func (s *SQLStore) Allowlist(ctx context.Context, wsID string, since int) ([]syncapi.AllowlistVersion, error) {
	rows, err := s.query(ctx, s.db, "SELECT version, document, author_id, created_at FROM allowlist_versions WHERE workspace_id = ? AND version > ? ORDER BY version", wsID, since)
	if err != nil {
		return nil, dbError("read allowlist", err)
	}
	defer rows.Close()
	out := []syncapi.AllowlistVersion{}
	for rows.Next() {
		var v syncapi.AllowlistVersion
		var created int64
		if err := rows.Scan(&v.Version, &v.Document, &v.AuthorID, &created); err != nil {
			return nil, dbError("read allowlist", err)
		}
		v.CreatedAt = fromMicro(created)
		out = append(out, v)
	}
	return out, rows.Err()
}

func (s *SQLStore) PushAllowlist(ctx context.Context, wsID string, base int, doc []byte, author string, now time.Time) (syncapi.AllowlistVersion, error) {
	v := syncapi.AllowlistVersion{Version: base + 1, Document: doc, AuthorID: author, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var head int
		if err := s.row(ctx, tx, "SELECT COALESCE(MAX(version), 0) FROM allowlist_versions WHERE workspace_id = ?", wsID).Scan(&head); err != nil {
			return dbError("read allowlist head", err)
		}
		if head != base {
			return &conflictError{}
		}
		return s.insertAllowlist(ctx, tx, wsID, v)
	})
	return v, err
}

// insertAllowlist stores one allowlist version inside the caller's
// transaction; a racing writer of the same version is a conflict.
func (s *SQLStore) insertAllowlist(ctx context.Context, tx *sql.Tx, wsID string, v syncapi.AllowlistVersion) error {
	if _, err := s.exec(ctx, tx, "INSERT INTO allowlist_versions (workspace_id, version, document, author_id, created_at) VALUES (?, ?, ?, ?, ?)",
		wsID, v.Version, v.Document, v.AuthorID, micro(v.CreatedAt)); err != nil {
		if s.d.unique(err) {
			return &conflictError{}
		}
		return dbError("insert allowlist", err)
	}
	return nil
}

// inviteSelect reads invites with their workspace name and inviter email;
// callers add the WHERE conditions after it. Only pending (open or
// accepted) invites are ever listed: the last two arguments are their
// states.
const inviteSelect = `SELECT i.id, i.workspace_id, w.name, i.email, i.role, i.invited_by, a.email, i.created_at, i.statement, i.state,
	i.account_id, i.seal_pub, i.sign_pub, i.proof, i.accepted_at
	FROM invites i JOIN workspaces w ON w.id = i.workspace_id JOIN accounts a ON a.id = i.invited_by
	WHERE i.state IN (?, ?) AND `

func (s *SQLStore) invites(ctx context.Context, q querier, cond string, args ...any) ([]syncapi.Invite, error) {
	rows, err := s.query(ctx, q, inviteSelect+cond+" ORDER BY i.created_at, i.id", append([]any{syncapi.InviteOpen, syncapi.InviteAccepted}, args...)...)
	if err != nil {
		return nil, dbError("list invites", err)
	}
	defer rows.Close()
	out := []syncapi.Invite{}
	for rows.Next() {
		var inv syncapi.Invite
		var created int64
		var account sql.NullString
		var accepted sql.NullInt64
		var seal, sign []byte
		if err := rows.Scan(&inv.ID, &inv.WorkspaceID, &inv.WorkspaceName, &inv.Email, &inv.Role, &inv.InvitedBy, &inv.InvitedByEmail, &created,
			&inv.Statement, &inv.State, &account, &seal, &sign, &inv.Proof, &accepted); err != nil {
			return nil, dbError("list invites", err)
		}
		inv.CreatedAt = fromMicro(created)
		if account.Valid {
			inv.AccountID = account.String
			inv.PublicKeys = &syncapi.PublicKeys{Seal: seal, Sign: sign}
		}
		if accepted.Valid {
			t := fromMicro(accepted.Int64)
			inv.AcceptedAt = &t
		}
		out = append(out, inv)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("list invites", err)
	}
	return out, nil
}

func (s *SQLStore) CreateInvite(ctx context.Context, inv syncapi.Invite, maxPending int) (syncapi.Invite, error) {
	var out syncapi.Invite
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := s.row(ctx, tx, `SELECT COUNT(*) FROM members m JOIN accounts a ON a.id = m.account_id WHERE m.workspace_id = ? AND a.email = ?`,
			inv.WorkspaceID, inv.Email).Scan(&n); err != nil {
			return dbError("look up members", err)
		}
		if n > 0 {
			return errAlreadyMember
		}
		var pending, sameEmail, sameID int
		if err := s.row(ctx, tx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN email = ? THEN 1 ELSE 0 END), 0) FROM invites WHERE workspace_id = ? AND state IN (?, ?)`,
			inv.Email, inv.WorkspaceID, syncapi.InviteOpen, syncapi.InviteAccepted).Scan(&pending, &sameEmail); err != nil {
			return dbError("count invites", err)
		}
		if sameEmail > 0 {
			return errInvitePending
		}
		if pending >= maxPending {
			return errTooManyInvites
		}
		if err := s.row(ctx, tx, "SELECT COUNT(*) FROM invites WHERE id = ?", inv.ID).Scan(&sameID); err != nil {
			return dbError("look up invite", err)
		}
		if sameID > 0 {
			return errExists
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO invites (id, workspace_id, email, role, invited_by, statement, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			inv.ID, inv.WorkspaceID, inv.Email, inv.Role, inv.InvitedBy, inv.Statement, syncapi.InviteOpen, micro(inv.CreatedAt)); err != nil {
			if s.d.unique(err) {
				// Checked above: only a concurrent invite of the same
				// email (the invites_pending index) gets here.
				return errInvitePending
			}
			return dbError("insert invite", err)
		}
		var err error
		out, err = s.invite(ctx, tx, inv.ID)
		return err
	})
	return out, err
}

// invite reads one pending invite back, as the listings show it.
func (s *SQLStore) invite(ctx context.Context, tx *sql.Tx, id string) (syncapi.Invite, error) {
	list, err := s.invites(ctx, tx, "i.id = ?", id)
	if err != nil {
		return syncapi.Invite{}, err
	}
	if len(list) != 1 {
		return syncapi.Invite{}, errMissing
	}
	return list[0], nil
}

func (s *SQLStore) Invites(ctx context.Context, wsID string) ([]syncapi.Invite, error) {
	return s.invites(ctx, s.db, "i.workspace_id = ?", wsID)
}

func (s *SQLStore) InvitesFor(ctx context.Context, email string) ([]syncapi.Invite, error) {
	return s.invites(ctx, s.db, "i.email = ?", email)
}

func (s *SQLStore) AcceptInvite(ctx context.Context, id string, a accountRow, proof []byte, now time.Time) (syncapi.Invite, error) {
	var out syncapi.Invite
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// Accepting again (a retry) replaces the proof and keys.
		res, err := s.exec(ctx, tx, `UPDATE invites SET state = ?, account_id = ?, seal_pub = ?, sign_pub = ?, proof = ?, accepted_at = ?
			WHERE id = ? AND email = ? AND state IN (?, ?)`, syncapi.InviteAccepted, a.ID, a.PublicKeys.Seal, a.PublicKeys.Sign, proof, micro(now),
			id, a.Email, syncapi.InviteOpen, syncapi.InviteAccepted)
		if err != nil {
			return dbError("accept invite", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errMissing
		}
		out, err = s.invite(ctx, tx, id)
		return err
	})
	return out, err
}

func (s *SQLStore) CompleteInvite(ctx context.Context, wsID, id string, m syncapi.Member, now time.Time) (syncapi.Member, error) {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var state string
		var account sql.NullString
		err := s.row(ctx, tx, "SELECT state, role, account_id FROM invites WHERE id = ? AND workspace_id = ?", id, wsID).Scan(&state, &m.Role, &account)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return errMissing
		case err != nil:
			return dbError("read invite", err)
		case state == syncapi.InviteOpen:
			return errNotAccepted
		case state != syncapi.InviteAccepted || !account.Valid:
			return errMissing
		}
		m.AccountID = account.String
		if err := s.row(ctx, tx, "SELECT email FROM accounts WHERE id = ?", m.AccountID).Scan(&m.Email); err != nil {
			return dbError("read account", err)
		}
		if err := s.insertMember(ctx, tx, wsID, m); errors.Is(err, errExists) {
			return errAlreadyMember
		} else if err != nil {
			return err
		}
		if _, err := s.exec(ctx, tx, "UPDATE invites SET state = ?, completed_at = ? WHERE id = ?", syncapi.InviteCompleted, micro(now), id); err != nil {
			return dbError("complete invite", err)
		}
		return nil
	})
	return m, err
}

func (s *SQLStore) CancelInvite(ctx context.Context, wsID, id string, now time.Time) error {
	res, err := s.exec(ctx, s.db, "UPDATE invites SET state = ?, completed_at = ? WHERE id = ? AND workspace_id = ? AND state IN (?, ?)",
		syncapi.InviteCanceled, micro(now), id, wsID, syncapi.InviteOpen, syncapi.InviteAccepted)
	if err != nil {
		return dbError("cancel invite", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errMissing
	}
	return nil
}
