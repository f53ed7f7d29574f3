package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// Account material lives in the backend (keychain or encrypted file) under
// keys of the vault's own "meta/" namespace: two segments, so no secret's
// workspace/project/NAME key can ever equal one, and doctor's orphan scan
// (which skips meta/) never mistakes them for leftovers of a secret.
const (
	accountKeyItem      = "meta/sync-account-key"
	accountIdentityItem = "meta/sync-identity"
	accountSessionItem  = "meta/sync-session"
)

var accountItems = []string{accountKeyItem, accountIdentityItem, accountSessionItem}

var (
	// ErrSignedOut: the vault holds no session (never signed in, signed
	// out, or signed in to nothing yet).
	ErrSignedOut = errcode.New(errcode.Unauthorized, "not signed in to a sync server")
	// ErrNoAccountKey: the vault holds no account key (a new device).
	ErrNoAccountKey = errcode.New(errcode.NotFound, "this device holds no account key")
	// ErrOtherAccount: the vault belongs to another account.
	ErrOtherAccount = errcode.New(errcode.Conflict, "this vault is linked to another sync account")
)

// AccountMaterial is what a device keeps to act as the account without
// the password: the account key (needed again only to sign in) and the
// unwrapped identity, encoded by internal/sync. Both are opaque here.
type AccountMaterial struct {
	Key      secret.Value
	Identity secret.Value
}

// Session is a pair of bearer tokens and their expiry.
type Session struct {
	Access           secret.Value
	AccessExpiresAt  time.Time
	Refresh          secret.Value
	RefreshExpiresAt time.Time
}

// storedSession is the backend form of a Session: one item, so the access
// and refresh tokens are replaced together or not at all.
type storedSession struct {
	Access           string    `json:"access"`
	AccessExpiresAt  time.Time `json:"access_expires_at"`
	Refresh          string    `json:"refresh"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

func encodeSession(s Session) secret.Value {
	b, _ := json.Marshal(storedSession{string(s.Access.Reveal()), s.AccessExpiresAt, string(s.Refresh.Reveal()), s.RefreshExpiresAt})
	return secret.New(b)
}

func decodeSession(v secret.Value) (Session, error) {
	var st storedSession
	if err := json.Unmarshal(v.Reveal(), &st); err != nil || st.Access == "" || st.Refresh == "" {
		return Session{}, errcode.WithHint(errcode.New(errcode.Unauthorized, "the stored sync session is malformed"), "sign in again with `agentsecrets login`")
	}
	return Session{secret.New([]byte(st.Access)), st.AccessExpiresAt, secret.New([]byte(st.Refresh)), st.RefreshExpiresAt}, nil
}

// Binary material is stored as base64 text: keychains store strings.
func encodeBytes(v secret.Value) secret.Value {
	return secret.New([]byte(base64.StdEncoding.EncodeToString(v.Reveal())))
}

func decodeBytes(v secret.Value) (secret.Value, error) {
	b, err := base64.StdEncoding.DecodeString(string(v.Reveal()))
	if err != nil {
		return secret.Value{}, errcode.WithHint(errcode.New(errcode.Internal, "the stored account material is malformed"),
			"sign in again with `agentsecrets login --account-key-file FILE`")
	}
	return secret.New(b), nil
}

// SignedIn reports whether the index says this vault has a session.
func (a *Account) SignedIn() bool { return a != nil && a.SignedOutAt == nil }

// namedAccountItem reports, for a backend key of account material, whether
// the index names it (the item should exist): the key and the identity
// while the vault is linked to an account, the session while signed in.
// It is what lets settlePending remove what an interrupted sign-in or
// sign-out left, exactly like a secret's value.
func (ix *Index) namedAccountItem(key string) (named, isAccount bool) {
	if id, ok := strings.CutPrefix(key, inviteCodePrefix); ok {
		return ix.heldInvite(id) != nil, true
	}
	if !slices.Contains(accountItems, key) {
		return false, false
	}
	if key == accountSessionItem {
		return ix.Account.SignedIn(), true
	}
	return ix.Account != nil, true
}

// SignIn stores the account material and session of a new sign-in (or a
// new account) and records acct in the index, the way PutSecrets stores a
// value: the keys journalled first, the items written, then the index. A
// crash in between leaves journalled items no index entry names, which the
// next write removes (and doctor, which skips meta/, never reports).
func (s *Store) SignIn(ctx context.Context, acct Account, m AccountMaterial, sess Session) error {
	if m.Key.Empty() || m.Identity.Empty() || sess.Access.Empty() || sess.Refresh.Empty() {
		return errcode.New(errcode.Internal, "sign-in without complete account material")
	}
	for _, v := range []secret.Value{m.Key, m.Identity, sess.Access, sess.Refresh} {
		s.observe(v)
	}
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	return s.lockedIndex(ctx, backend, func(ix *Index) error {
		if err := checkSameAccount(ix.Account, acct); err != nil {
			return err
		}
		if err := s.journal(accountItems, nil); err != nil {
			return err
		}
		items := map[string]secret.Value{
			accountKeyItem:      encodeBytes(m.Key),
			accountIdentityItem: encodeBytes(m.Identity),
			accountSessionItem:  encodeSession(sess),
		}
		defer wipeAll(items)
		if err := backend.Put(ctx, items); err != nil {
			return err
		}
		cur, err := s.Index()
		if err != nil {
			return err
		}
		a := acct
		a.SignedOutAt = nil
		cur.Account = &a
		cur.Pending = without(cur.Pending, accountItems)
		return s.writeIndex(cur)
	})
}

// CheckAccount refuses to link a vault to a second account: it holds one
// account key, and replacing it would strand the first account's data.
func CheckAccount(cur *Account, server, email string) error {
	if cur == nil || cur.Server == server && cur.Email == email {
		return nil
	}
	return errcode.WithHint(fmt.Errorf("%w (%s on %s)", ErrOtherAccount, cur.Email, cur.Server),
		"run `agentsecrets logout --forget-device` first, or use another AGENTSECRETS_HOME")
}

func checkSameAccount(cur *Account, next Account) error {
	if err := CheckAccount(cur, next.Server, next.Email); err != nil {
		return err
	}
	if cur != nil && cur.ID != "" && cur.ID != next.ID {
		return errcode.WithHint(fmt.Errorf("%w (the server reports another account id for %s)", ErrOtherAccount, next.Email),
			"run `agentsecrets logout --forget-device` first, or use another AGENTSECRETS_HOME")
	}
	return nil
}

func wipeAll(items map[string]secret.Value) {
	for _, v := range items {
		v.Wipe()
	}
}

// AccountMaterial reads the account key and identity.
func (s *Store) AccountMaterial(ctx context.Context) (AccountMaterial, error) {
	ix, err := s.Index()
	if err != nil {
		return AccountMaterial{}, err
	}
	if ix.Account == nil {
		return AccountMaterial{}, errcode.WithHint(ErrNoAccountKey, "run `agentsecrets login --server URL --email EMAIL --account-key-file KIT`")
	}
	b, err := s.openBackend(ctx)
	if err != nil {
		return AccountMaterial{}, err
	}
	var out [2]secret.Value
	for i, key := range []string{accountKeyItem, accountIdentityItem} {
		v, err := b.Get(ctx, key)
		if errors.Is(err, ErrValueMissing) {
			return AccountMaterial{}, errcode.WithHint(fmt.Errorf("%w (%s is missing from the %s backend)", ErrNoAccountKey, key, b.Kind()),
				"run `agentsecrets login --server "+ix.Account.Server+" --email "+ix.Account.Email+" --account-key-file KIT`")
		}
		if err != nil {
			return AccountMaterial{}, err
		}
		out[i], err = decodeBytes(v)
		v.Wipe()
		if err != nil {
			return AccountMaterial{}, err
		}
		s.observe(out[i])
	}
	return AccountMaterial{Key: out[0], Identity: out[1]}, nil
}

// Session reads the stored session; ErrSignedOut when there is none.
func (s *Store) Session(ctx context.Context) (Session, error) {
	ix, err := s.Index()
	if err != nil {
		return Session{}, err
	}
	return s.SessionOf(ctx, ix)
}

func (s *Store) readSession(ctx context.Context, b Backend) (Session, error) {
	v, err := b.Get(ctx, accountSessionItem)
	if errors.Is(err, ErrValueMissing) {
		return Session{}, ErrSignedOut
	}
	if err != nil {
		return Session{}, err
	}
	defer v.Wipe()
	sess, err := decodeSession(v)
	if err != nil {
		return Session{}, err
	}
	s.observe(sess.Access)
	s.observe(sess.Refresh)
	return sess, nil
}

// UpdateSession runs fn under the store's lock with the session as stored
// now, and stores the session fn returns when fn reports a change. The
// sync client refreshes its tokens inside fn: a second process waiting on
// the lock then sees the new tokens and does not spend the old refresh
// token again. Never call it while holding the store's lock (Update).
func (s *Store) UpdateSession(ctx context.Context, fn func(cur Session) (Session, bool, error)) (Session, error) {
	b, err := s.openBackend(ctx)
	if err != nil {
		return Session{}, err
	}
	var out Session
	err = s.lockedIndex(ctx, nil, func(ix *Index) error {
		if !ix.Account.SignedIn() {
			return ErrSignedOut
		}
		cur, err := s.readSession(ctx, b)
		if err != nil {
			return err
		}
		next, changed, err := fn(cur)
		if err != nil {
			return err
		}
		if !changed {
			out = cur
			return nil
		}
		if next.Access.Empty() || next.Refresh.Empty() {
			return errcode.New(errcode.Internal, "refusing to store an empty sync session")
		}
		s.observe(next.Access)
		s.observe(next.Refresh)
		item := encodeSession(next)
		defer item.Wipe()
		// One item: the file vault replaces its file atomically and a
		// keychain sets one entry, so no crash splits the pair.
		if err := b.Put(ctx, map[string]secret.Value{accountSessionItem: item}); err != nil {
			return err
		}
		out = next
		return nil
	})
	return out, err
}

// SignOut deletes the session and marks the account signed out; forget
// also deletes the account key and identity and unlinks the account. The
// index is written first with the keys journalled, then the items are
// deleted, then the journal is cleared, as DeleteSecrets does.
func (s *Store) SignOut(ctx context.Context, forget bool) error {
	ix, err := s.Index()
	if err != nil {
		return err
	}
	if ix.Account == nil {
		return nil
	}
	backend, err := s.openBackend(ctx)
	if err != nil {
		return err
	}
	keys := []string{accountSessionItem}
	if forget {
		keys = accountItems
	}
	return s.updateWith(ctx, backend, func(ix *Index) error {
		if ix.Account == nil {
			return ErrUnchanged
		}
		if forget {
			ix.Account = nil
		} else if ix.Account.SignedOutAt == nil {
			now := s.now()
			ix.Account.SignedOutAt = &now
		}
		ix.Pending = append(without(ix.Pending, keys), keys...)
		return nil
	}, func() error {
		if err := backend.Delete(ctx, keys); err != nil {
			return errcode.WithHint(fmt.Errorf("signed out in the index, but deleting the session from the backend failed: %w", err), repairHint)
		}
		return s.journal(nil, keys)
	})
}
