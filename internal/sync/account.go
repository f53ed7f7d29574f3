package sync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Account flows: creating an account on its first device, signing in a
// device with the password and the account key, and the recovery kit that
// carries the account key from one device to the next by a human's hand.

// MinPasswordLen is the shortest account password accepted. The password
// is one of two secrets (the account key is the other), but it alone
// protects the account key's recovery kit against whoever finds it.
const MinPasswordLen = 12

// minDistinct: a password of one or two repeated characters is refused
// whatever its length.
const minDistinct = 5

// CheckPassword refuses a weak account password. It is called before the
// confirmation prompt, so a human is not asked twice for a password that
// is then refused.
func CheckPassword(password []byte, email string) error {
	hint := fmt.Sprintf("choose a password of at least %d characters, not built from the email address (a passphrase of several words works well)", MinPasswordLen)
	if !utf8.Valid(password) {
		return errcode.WithHint(errcode.New(errcode.Usage, "the password is not UTF-8 text"), hint)
	}
	if utf8.RuneCount(password) < MinPasswordLen {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "the password is shorter than %d characters", MinPasswordLen), hint)
	}
	distinct := map[rune]bool{}
	for _, r := range string(password) {
		distinct[r] = true
	}
	if len(distinct) < minDistinct {
		return errcode.WithHint(errcode.New(errcode.Usage, "the password repeats too few different characters"), hint)
	}
	local, _, _ := strings.Cut(strings.ToLower(email), "@")
	if len(local) >= 4 && strings.Contains(strings.ToLower(string(password)), local) {
		return errcode.WithHint(errcode.New(errcode.Usage, "the password contains the email address"), hint)
	}
	return nil
}

// The account key's human form: "AS1-" then the base32 (RFC 4648, no
// padding) of key ‖ checksum in groups of four. The checksum is the first
// three bytes of SHA-256(domain ‖ key), so a mistyped character is caught
// before the key is used (and before a wrong key costs a login attempt).
const (
	keyPrefix      = "AS1-"
	checksumDomain = "agentsecrets v1 account key checksum"
	checksumLen    = 3
)

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func keyChecksum(key []byte) []byte {
	sum := sha256.Sum256(append([]byte(checksumDomain), key...))
	return sum[:checksumLen]
}

// FormatAccountKey is the human-copyable form of an account key.
func FormatAccountKey(key []byte) string {
	enc := keyEncoding.EncodeToString(append(bytes.Clone(key), keyChecksum(key)...))
	var groups []string
	for i := 0; i < len(enc); i += 4 {
		groups = append(groups, enc[i:min(i+4, len(enc))])
	}
	return keyPrefix + strings.Join(groups, "-")
}

var errKeyFormat = errcode.New(errcode.Usage, "the account key is not in the recovery kit's form (AS1-XXXX-XXXX-…)")

// ParseAccountKey reverses FormatAccountKey. It forgives case, spaces,
// dashes and the digits people write for look-alike letters (0 for O, 1
// for I, 8 for B), and refuses a key whose checksum does not match. Its
// errors never quote the input.
func ParseAccountKey(s string) ([]byte, error) {
	hint := "copy the account key exactly as the recovery kit shows it, or pass the kit file itself with --account-key-file"
	s = strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(s, strings.TrimSuffix(keyPrefix, "-")) {
		return nil, errcode.WithHint(errKeyFormat, hint)
	}
	s = strings.TrimPrefix(s, strings.TrimSuffix(keyPrefix, "-"))
	s = strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		case '0':
			return 'O'
		case '1':
			return 'I'
		case '8':
			return 'B'
		}
		return r
	}, s)
	raw, err := keyEncoding.DecodeString(s)
	if err != nil || len(raw) != crypto.AccountKeySize+checksumLen {
		return nil, errcode.WithHint(errKeyFormat, hint)
	}
	key, sum := raw[:crypto.AccountKeySize], raw[crypto.AccountKeySize:]
	if !bytes.Equal(sum, keyChecksum(key)) {
		clear(raw)
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "the account key's checksum does not match: a character is mistyped"), hint)
	}
	return key, nil
}

// Kit is a recovery kit: the account key and where it belongs.
type Kit struct {
	Email     string
	Server    string
	Key       []byte
	CreatedAt time.Time
}

const kitTitle = "agentsecrets recovery kit"

// Text is the kit as a human keeps it (printed, or in a password manager).
func (k Kit) Text() string {
	var b strings.Builder
	b.WriteString(kitTitle + "\n\n")
	b.WriteString("Keep this offline: printed, or in a password manager. With your password it\n")
	b.WriteString("signs a new device in to your sync account. agentsecrets cannot recover it.\n\n")
	fmt.Fprintf(&b, "Email:        %s\n", k.Email)
	fmt.Fprintf(&b, "Server:       %s\n", k.Server)
	fmt.Fprintf(&b, "Account key:  %s\n", FormatAccountKey(k.Key))
	fmt.Fprintf(&b, "Created:      %s\n\n", k.CreatedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "New device:   agentsecrets login --server %s --email %s --account-key-file THIS_FILE\n", k.Server, k.Email)
	return b.String()
}

// ParseKit reads a recovery kit file, or a file holding only the account
// key. Email and Server are empty for a bare key.
func ParseKit(data []byte) (Kit, error) {
	text := string(data)
	if !strings.Contains(text, kitTitle) {
		key, err := ParseAccountKey(text)
		return Kit{Key: key}, err
	}
	var k Kit
	var keyLine string
	for _, line := range strings.Split(text, "\n") {
		field, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.TrimSpace(field) {
		case "Email":
			k.Email = val
		case "Server":
			k.Server = val
		case "Account key":
			keyLine = val
		}
	}
	key, err := ParseAccountKey(keyLine)
	if err != nil {
		return Kit{}, err
	}
	k.Key = key
	return k, nil
}

// SignedIn is what account creation or a login returns: everything the
// device keeps. Wipe it when done.
type SignedIn struct {
	Account    syncapi.Account
	Session    syncapi.Session
	AccountKey []byte
	Identity   Identity
}

// Wipe zeroes the key material.
func (s *SignedIn) Wipe() {
	clear(s.AccountKey)
	s.Identity.Wipe()
}

// Save stores the account key, identity and session in the vault backend
// and the account in the index, in one journalled write.
func (s *SignedIn) Save(ctx context.Context, st *vault.Store, server, deviceName string, now time.Time) error {
	acct := vault.Account{Server: server, Email: s.Account.Email, ID: s.Account.ID, DeviceID: s.Session.DeviceID,
		DeviceName: deviceName, SignedInAt: now.UTC(), SealPublic: s.Account.PublicKeys.Seal, SignPublic: s.Account.PublicKeys.Sign}
	exported := ExportIdentity(s.Identity)
	defer exported.Wipe()
	return st.SignIn(ctx, acct, vault.AccountMaterial{Key: secret.New(bytes.Clone(s.AccountKey)), Identity: exported}, SessionOf(s.Session))
}

// CreateAccount registers a new account from this device: a fresh account
// key and identity, the KDF parameters, the authentication key and the
// wrapped private keys. The password and the account key never leave the
// device.
// The account key comes from NewAccountKey, so the caller can write the
// recovery kit before the account exists: no crash leaves an account
// whose key nobody was given.
func CreateAccount(ctx context.Context, c *Client, email, deviceName string, password, accountKey []byte) (*SignedIn, error) {
	kdf, err := crypto.DefaultKDF()
	if err != nil {
		return nil, err
	}
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	authKey, wrapKey, err := crypto.AccountKeys(password, accountKey, kdf)
	if err != nil {
		return nil, err
	}
	defer clear(authKey)
	defer clear(wrapKey)
	wrapped, err := WrapIdentity(id, wrapKey)
	if err != nil {
		return nil, err
	}
	resp, err := c.CreateAccount(ctx, syncapi.CreateAccountRequest{Email: email, KDF: kdf, AuthKey: authKey,
		PublicKeys: id.Public(), WrappedPrivateKeys: wrapped, DeviceName: deviceName})
	if err != nil {
		return nil, err
	}
	pub := id.Public()
	if !strings.EqualFold(resp.Account.Email, email) || !bytes.Equal(resp.Account.PublicKeys.Seal, pub.Seal) || !bytes.Equal(resp.Account.PublicKeys.Sign, pub.Sign) {
		c.endSession(ctx, resp.Session.AccessToken)
		return nil, refuse("the new account", CheckKeys, "the server answered with another email or other public keys than were sent")
	}
	return &SignedIn{Account: resp.Account, Session: resp.Session, AccountKey: bytes.Clone(accountKey), Identity: id}, nil
}

// NewAccountKey generates a random account key.
func NewAccountKey() ([]byte, error) { return crypto.Random(crypto.AccountKeySize) }

// Login signs a device in with the password and the account key: the
// KDF parameters from prelogin, the authentication key, then the wrapped
// private keys unwrapped and checked against the published public keys.
// A server that swapped either is refused, and the session it opened is
// ended.
func Login(ctx context.Context, c *Client, email, deviceName string, password []byte, accountKey secret.Value) (*SignedIn, error) {
	pre, err := c.Prelogin(ctx, email)
	if err != nil {
		return nil, err
	}
	if err := pre.KDF.Validate(); err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "the sync server sent password KDF parameters that are not acceptable: %v", err),
			"check that --server names your agentsecrets server")
	}
	authKey, wrapKey, err := crypto.AccountKeys(password, accountKey.Reveal(), pre.KDF)
	if err != nil {
		return nil, err
	}
	defer clear(authKey)
	defer clear(wrapKey)
	resp, err := c.Login(ctx, syncapi.LoginRequest{Email: email, AuthKey: authKey, DeviceName: deviceName})
	if isUnauthorized(err) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Unauthorized, "the sync server refused the sign-in of %s: wrong email, password or account key", email),
			"check the password; on a device that has not signed in before, pass the recovery kit with --account-key-file FILE")
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(resp.Account.Email, email) {
		c.endSession(ctx, resp.Session.AccessToken)
		return nil, refuse("the account", CheckKeys, "the server answered for another email")
	}
	id, err := UnwrapIdentity(wrapKey, resp.Account.WrappedPrivateKeys, resp.Account.PublicKeys)
	if err != nil {
		c.endSession(ctx, resp.Session.AccessToken)
		return nil, err
	}
	return &SignedIn{Account: resp.Account, Session: resp.Session, AccountKey: bytes.Clone(accountKey.Reveal()), Identity: id}, nil
}

// endSession ends a session the client refuses to keep, best effort: the
// sign-in is refused either way.
func (c *Client) endSession(ctx context.Context, accessToken string) {
	if accessToken == "" {
		return
	}
	_ = c.attempts(ctx, call{method: "DELETE", path: syncapi.PathSessionCurrent}, nil, accessToken)
}

// LoadIdentity reads this device's identity from the vault and checks it
// against the public keys the index recorded at sign-in.
func LoadIdentity(ctx context.Context, st *vault.Store) (Identity, error) {
	ix, err := st.Index()
	if err != nil {
		return Identity{}, err
	}
	m, err := st.AccountMaterial(ctx)
	if err != nil {
		return Identity{}, err
	}
	defer m.Key.Wipe()
	defer m.Identity.Wipe()
	return ImportIdentity(m.Identity, syncapi.PublicKeys{Seal: ix.Account.SealPublic, Sign: ix.Account.SignPublic})
}

// ClientFor builds the client of the account a vault is signed in to.
func ClientFor(st *vault.Store, getenv func(string) string) (*Client, error) {
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	if ix.Account == nil {
		return nil, errcode.WithHint(errcode.New(errcode.Unauthorized, "this vault is not linked to a sync account"),
			"sign in: `agentsecrets login --server URL --email EMAIL` (or create one with `agentsecrets account create`)")
	}
	return NewClient(Options{Server: ix.Account.Server, Email: ix.Account.Email, Sessions: st, Getenv: getenv})
}
