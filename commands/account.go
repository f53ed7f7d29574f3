package commands

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Accounts: creating one, signing devices in and out, and listing and
// revoking devices. Creating an account and signing in are human-only:
// the password comes from the terminal or --password-file, never argv or
// the environment, and the recovery kit goes to the terminal or a file
// of its own, never to stdout.

// AccountCmd groups account commands.
type AccountCmd struct {
	Create  AccountCreateCmd  `cmd:"" help:"Create a sync account on a server (human-only: asks for a new password, shows the recovery kit once)."`
	Show    AccountShowCmd    `cmd:"" help:"Show the sync account this vault is linked to (no network unless --check)."`
	Devices AccountDevicesCmd `cmd:"" help:"List the account's devices, or revoke one with --revoke ID."`
}

// SignInTarget names the account and device that account create and
// login work on.
type SignInTarget struct {
	Server     string `required:"" placeholder:"URL" help:"Sync server base URL (https://HOST[:PORT]; http only on loopback). A server with a private CA: set AGENTSECRETS_SERVER_CA_FILE to its CA certificate (PEM)." json:"server"`
	Email      string `required:"" help:"Account email." json:"email"`
	DeviceName string `placeholder:"NAME" help:"Name of this device (default: the host name)." json:"device_name,omitempty"`
}

// AccountCreateCmd creates an account.
type AccountCreateCmd struct {
	SignInTarget
	PasswordFile    string `placeholder:"PATH" help:"File holding the new account password (mode 600); default: ask on the terminal." json:"password_file,omitempty"`
	RecoveryKitFile string `placeholder:"PATH" help:"Write the recovery kit to this new file (mode 600) instead of showing it on the terminal." json:"recovery_kit_file,omitempty"`
}

// LoginCmd signs this device in.
type LoginCmd struct {
	SignInTarget
	PasswordFile   string `placeholder:"PATH" help:"File holding the account password (mode 600); default: ask on the terminal." json:"password_file,omitempty"`
	AccountKeyFile string `placeholder:"PATH" help:"Recovery kit file, or a file holding only the account key (mode 600); needed on a device that has not signed in before." json:"account_key_file,omitempty"`
}

// LogoutCmd signs this device out.
type LogoutCmd struct {
	ForgetDevice bool `help:"Also delete the account key and private keys from this device (a later login needs the recovery kit)." json:"forget_device,omitempty"`
}

// AccountShowCmd shows the linked account.
type AccountShowCmd struct {
	Check bool `help:"Also ask the server, and check that it still publishes this device's public keys." json:"check,omitempty"`
}

// AccountDevicesCmd lists or revokes devices.
type AccountDevicesCmd struct {
	Revoke string `placeholder:"ID" help:"Revoke this device: its sessions end at once (revoking this device signs it out)." json:"revoke,omitempty"`
}

// AccountResult describes the account a vault is linked to. It never holds
// a password, the account key, a private key or a token.
type AccountResult struct {
	Linked     bool       `json:"linked"`
	SignedIn   bool       `json:"signed_in"`
	Server     string     `json:"server,omitempty"`
	Email      string     `json:"email,omitempty"`
	AccountID  string     `json:"account_id,omitempty"`
	DeviceID   string     `json:"device_id,omitempty"`
	DeviceName string     `json:"device_name,omitempty"`
	SignedInAt *time.Time `json:"signed_in_at,omitempty"`
	// SealKey and SignKey are the fingerprints of the account's public
	// keys: the same on every device of the account.
	SealKey string `json:"seal_key_fingerprint,omitempty"`
	SignKey string `json:"sign_key_fingerprint,omitempty"`
	// Fingerprint covers both keys: what a workspace admin compares in
	// person (`workspace members --verify EMAIL --fingerprint FP`).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Checked is set by --check: the server answered and publishes the
	// same public keys.
	Checked bool `json:"checked,omitempty"`
	// RecoveryKit says where account create put the kit: "terminal" or a
	// file path.
	RecoveryKit string `json:"recovery_kit,omitempty"`
	// ServerNotified is false when logout could not tell the server.
	ServerNotified *bool    `json:"server_notified,omitempty"`
	Next           []string `json:"next,omitempty"`
	Notes
}

func accountResult(a *vault.Account) *AccountResult {
	if a == nil {
		return &AccountResult{Next: []string{"agentsecrets login --server URL --email EMAIL", "agentsecrets account create --server URL --email EMAIL"}}
	}
	at := a.SignedInAt
	r := &AccountResult{Linked: true, SignedIn: a.SignedIn(), Server: a.Server, Email: a.Email, AccountID: a.ID,
		DeviceID: a.DeviceID, DeviceName: a.DeviceName, SignedInAt: &at}
	if len(a.SealPublic) > 0 {
		r.SealKey = crypto.KeyFingerprint(a.SealPublic)
	}
	if len(a.SignPublic) > 0 {
		r.SignKey = crypto.KeyFingerprint(a.SignPublic)
	}
	if len(a.SealPublic) > 0 && len(a.SignPublic) > 0 {
		r.Fingerprint = agentsync.AccountFingerprint(syncapi.PublicKeys{Seal: a.SealPublic, Sign: a.SignPublic})
	}
	if !r.SignedIn {
		r.DeviceID, r.SignedInAt = "", nil
		r.Next = []string{"agentsecrets login --server " + a.Server + " --email " + a.Email}
	}
	return r
}

func (r *AccountResult) WriteText(w io.Writer) error {
	if !r.Linked {
		fmt.Fprintln(w, "Not linked to a sync account.")
	} else {
		state := "signed in"
		if !r.SignedIn {
			state = "signed out"
		}
		fmt.Fprintf(w, "Account:      %s (%s)\n", r.Email, state)
		fmt.Fprintf(w, "Server:       %s\n", r.Server)
		fmt.Fprintf(w, "Account ID:   %s\n", r.AccountID)
		if r.DeviceID != "" {
			fmt.Fprintf(w, "Device:       %s (%s)\n", r.DeviceName, r.DeviceID)
		}
		if r.SealKey != "" {
			fmt.Fprintf(w, "Sealing key:  %s\n", r.SealKey)
			fmt.Fprintf(w, "Signing key:  %s\n", r.SignKey)
		}
		if r.Fingerprint != "" {
			fmt.Fprintf(w, "Fingerprint:  %s (read it to a workspace admin who verifies you in person)\n", r.Fingerprint)
		}
		if r.Checked {
			fmt.Fprintln(w, "Server check: ok (the server publishes these keys)")
		}
	}
	switch r.RecoveryKit {
	case "":
	case "terminal":
		fmt.Fprintln(w, "Recovery kit: shown on the terminal above; store it offline now.")
	default:
		fmt.Fprintf(w, "Recovery kit: written to %s; store it offline and delete it from this disk.\n", r.RecoveryKit)
	}
	if r.ServerNotified != nil && !*r.ServerNotified {
		fmt.Fprintln(w, "The server was not told: the session stays valid there until it expires or is revoked.")
	}
	for _, n := range r.Next {
		fmt.Fprintf(w, "Next: %s\n", n)
	}
	return nil
}

// checkEmail accepts a plain address; it is shown and sent, so nothing
// that could drive a terminal or be mistaken for a flag.
func checkEmail(email string) error {
	at := strings.IndexByte(email, '@')
	ok := len(email) >= 3 && len(email) <= 254 && at > 0 && at == strings.LastIndexByte(email, '@') && at < len(email)-1 &&
		!strings.HasPrefix(email, "-") && strings.IndexFunc(email, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
	if !ok {
		return errcode.WithHint(errcode.New(errcode.Usage, "--email is not an email address"), "pass --email NAME@DOMAIN")
	}
	return nil
}

func deviceName(name string) (string, error) {
	if name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "device"
		}
		name = h
	}
	if len(name) > 64 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", errcode.WithHint(errcode.New(errcode.Usage, "--device-name must be at most 64 printable characters"), "pass --device-name laptop")
	}
	return name, nil
}

// humanOnly is the error of a human-only step run without a terminal.
func humanOnly(what, rerun string) error {
	return errcode.WithHint(errcode.Errorf(errcode.ApprovalRequired, "%s needs a human at a terminal", what),
		"a human runs `"+rerun+"` on a terminal (or passes --password-file FILE); agents cannot create accounts or sign in")
}

// password reads the account password from file or the terminal. For a
// new password it checks strength before asking for the confirmation.
func (e *Env) password(file, email, rerun string, isNew bool) ([]byte, error) {
	if file != "" {
		p, err := e.user().passphraseFile(file, "--password-file")
		if err != nil {
			return nil, err
		}
		if isNew {
			if err := agentsync.CheckPassword(p, email); err != nil {
				return nil, err
			}
		}
		e.touch(secret.New(p))
		return p, nil
	}
	noTerminal := func(error) error { return humanOnly("the account password", rerun) }
	var p []byte
	var err error
	if isNew {
		p, err = e.askNew(newSecret{
			prompt: fmt.Sprintf("New account password for %s (at least %d characters): ", email, agentsync.MinPasswordLen),
			check:  func(p []byte) error { return agentsync.CheckPassword(p, email) },
			rerun:  rerun, noTerminal: noTerminal,
		})
	} else if p, err = e.IO.Prompt("Password for " + email + " on the sync server: "); err != nil {
		err = noTerminal(err)
	}
	if err != nil {
		return nil, err
	}
	e.touch(secret.New(p))
	return p, nil
}

// open is what account create and login check before anything is asked
// or sent: the server URL (returned normalised), the email and this
// device's name; then it opens the vault and reads its index.
func (t SignInTarget) open(e *Env) (server, name string, st *vault.Store, ix *vault.Index, err error) {
	u, err := agentsync.CheckServerURL(t.Server)
	if err != nil {
		return "", "", nil, nil, err
	}
	if err := checkEmail(t.Email); err != nil {
		return "", "", nil, nil, err
	}
	if name, err = deviceName(t.DeviceName); err != nil {
		return "", "", nil, nil, err
	}
	if st, ix, err = e.openIndex(); err != nil {
		return "", "", nil, nil, err
	}
	return u.String(), name, st, ix, nil
}

func (c *AccountCreateCmd) Run(env *Env) (*AccountResult, error) {
	server, name, st, ix, err := c.SignInTarget.open(env)
	if err != nil {
		return nil, err
	}
	if ix.Account != nil {
		return nil, errcode.WithHint(fmt.Errorf("%w (%s on %s)", vault.ErrOtherAccount, ix.Account.Email, ix.Account.Server),
			"this vault already has an account: `agentsecrets account show`; to start over, `agentsecrets logout --forget-device` first")
	}
	rerun := "agentsecrets account create --server " + server + " --email " + c.Email
	// The kit goes to a new file or the terminal, never stdout: decide
	// before anything is asked or created.
	if c.RecoveryKitFile == "" && !env.IO.StdoutTTY {
		return nil, errcode.WithHint(errcode.New(errcode.ApprovalRequired, "the recovery kit is shown only on a terminal, and stdout is not one"),
			"a human runs `"+rerun+"` on a terminal, or adds --recovery-kit-file PATH (a new file, mode 600)")
	}
	password, err := env.password(c.PasswordFile, c.Email, rerun, true)
	if err != nil {
		return nil, err
	}
	defer clear(password)
	key, err := agentsync.NewAccountKey()
	if err != nil {
		return nil, err
	}
	defer clear(key)
	env.touch(secret.New(key))
	kit := agentsync.Kit{Email: c.Email, Server: server, Key: key, CreatedAt: env.Now()}
	kitFile := c.RecoveryKitFile != ""
	if kitFile {
		// Written before the account exists, so the key is on disk before
		// anything depends on it.
		if err := env.user().createFile(c.RecoveryKitFile, "--recovery-kit-file", []byte(kit.Text())); err != nil {
			return nil, err
		}
	}
	client, err := agentsync.NewClient(agentsync.Options{Server: server, Email: c.Email, Getenv: env.Getenv})
	if err != nil {
		env.user().removeFile(c.RecoveryKitFile)
		return nil, err
	}
	signed, err := agentsync.CreateAccount(env.ctx(), client, c.Email, name, password, key)
	if err != nil {
		if !kitFile {
			return nil, err
		}
		if refusedBeforeCreating(err) {
			env.user().removeFile(c.RecoveryKitFile)
			return nil, err
		}
		// The answer was lost: the account may exist, with this key.
		return nil, errcode.WithHint(err, "keep "+atomicfile.ShowPath(c.RecoveryKitFile)+": the account may have been created; try `agentsecrets login --server "+
			server+" --email "+c.Email+" --account-key-file "+atomicfile.ShowPath(c.RecoveryKitFile)+"`")
	}
	defer signed.Wipe()
	if !kitFile {
		if err := env.IO.Show("\n" + kit.Text() + "\n"); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "the account was created but the recovery kit could not be shown on the terminal: %v", err)
		}
	}
	if err := signed.Save(env.ctx(), st, server, name, env.Now()); err != nil {
		return nil, errcode.WithHint(err, "the account was created; keep the recovery kit and sign in with `agentsecrets login --server "+server+" --email "+c.Email+" --account-key-file KIT`")
	}
	ix, err = st.Index()
	if err != nil {
		return nil, err
	}
	res := accountResult(ix.Account)
	res.RecoveryKit = "terminal"
	if kitFile {
		res.RecoveryKit = c.RecoveryKitFile
	}
	res.Next = []string{"on another device: agentsecrets login --server " + server + " --email " + c.Email + " --account-key-file KIT"}
	return res, nil
}

func (c *LoginCmd) Run(env *Env) (*AccountResult, error) {
	server, name, st, ix, err := c.SignInTarget.open(env)
	if err != nil {
		return nil, err
	}
	if err := vault.CheckAccount(ix.Account, server, c.Email); err != nil {
		return nil, err
	}
	rerun := "agentsecrets login --server " + server + " --email " + c.Email
	key, err := c.accountKey(env, st, ix, server)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	password, err := env.password(c.PasswordFile, c.Email, rerun, false)
	if err != nil {
		return nil, err
	}
	defer clear(password)
	client, err := agentsync.NewClient(agentsync.Options{Server: server, Email: c.Email, Getenv: env.Getenv})
	if err != nil {
		return nil, err
	}
	signed, err := agentsync.Login(env.ctx(), client, c.Email, name, password, key)
	if err != nil {
		return nil, err
	}
	defer signed.Wipe()
	if err := signed.Save(env.ctx(), st, server, name, env.Now()); err != nil {
		return nil, err
	}
	if ix, err = st.Index(); err != nil {
		return nil, err
	}
	return accountResult(ix.Account), nil
}

// accountKey is the account key from --account-key-file, else the one
// this device kept from an earlier sign-in.
func (c *LoginCmd) accountKey(env *Env, st *vault.Store, ix *vault.Index, server string) (secret.Value, error) {
	if c.AccountKeyFile != "" {
		data, err := env.user().passphraseFile(c.AccountKeyFile, "--account-key-file")
		if err != nil {
			return secret.Value{}, err
		}
		defer clear(data)
		kit, err := agentsync.ParseKit(data)
		if err != nil {
			return secret.Value{}, err
		}
		key := secret.New(kit.Key)
		if kit.Email != "" && !strings.EqualFold(kit.Email, c.Email) || kit.Server != "" && kit.Server != server {
			key.Wipe()
			return secret.Value{}, errcode.WithHint(errcode.Errorf(errcode.Usage, "the recovery kit is for %s on %s", kit.Email, kit.Server),
				"pass the --server and --email the kit names, or the kit of this account")
		}
		env.touch(key)
		return key, nil
	}
	if ix.Account == nil {
		return secret.Value{}, errcode.WithHint(errcode.New(errcode.Usage, "this device has not signed in to the account before, so it needs the account key"),
			"pass the recovery kit from `account create`: --account-key-file KIT")
	}
	m, err := st.AccountMaterial(env.ctx())
	if err != nil {
		return secret.Value{}, err
	}
	m.Identity.Wipe()
	return m.Key, nil
}

func (c *LogoutCmd) Run(env *Env) (*AccountResult, error) {
	st, ix, err := env.openIndex()
	if err != nil {
		return nil, err
	}
	if ix.Account == nil {
		return accountResult(nil), nil
	}
	res := &AccountResult{}
	if ix.Account.SignedIn() {
		told := true
		client, err := agentsync.ClientFor(st, env.Getenv)
		if err == nil {
			err = client.Logout(env.ctx())
		}
		switch rep := errcode.Classify(err); {
		case err == nil:
		case rep.Code == errcode.Unauthorized:
			// The session had already ended there (revoked or expired).
		case rep.Code == errcode.Unavailable || rep.Code == errcode.Timeout:
			told = false
			res.warn("the sync server could not be reached (%s); this device's session stays valid there until it expires, or revoke it from another device: agentsecrets account devices --revoke %s", rep.Message, ix.Account.DeviceID)
		default:
			return nil, err
		}
		res.ServerNotified = &told
	}
	if err := st.SignOut(env.ctx(), c.ForgetDevice); err != nil {
		return nil, err
	}
	if ix, err = st.Index(); err != nil {
		return nil, err
	}
	out := accountResult(ix.Account)
	out.ServerNotified, out.Notes = res.ServerNotified, res.Notes
	return out, nil
}

func (c *AccountShowCmd) Run(env *Env) (*AccountResult, error) {
	st, ix, err := env.openIndex()
	if err != nil {
		return nil, err
	}
	res := accountResult(ix.Account)
	if !c.Check || ix.Account == nil {
		return res, nil
	}
	client, err := agentsync.ClientFor(st, env.Getenv)
	if err != nil {
		return nil, err
	}
	acct, err := client.Account(env.ctx())
	if err != nil {
		return nil, err
	}
	if acct.ID != ix.Account.ID || !equalKeys(acct.PublicKeys, ix.Account) {
		return nil, errcode.WithHint(errcode.New(errcode.Conflict, "the sync server publishes other public keys for this account than this device signed in with"),
			"do not sync until this is explained: check the server and its database, and compare `agentsecrets account show` on your other devices")
	}
	res.Checked = true
	return res, nil
}

func equalKeys(k syncapi.PublicKeys, a *vault.Account) bool {
	return string(k.Seal) == string(a.SealPublic) && string(k.Sign) == string(a.SignPublic)
}

// DeviceInfo is one device of the account.
type DeviceInfo struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Current    bool       `json:"current"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// AccountDevicesResult lists the account's devices.
type AccountDevicesResult struct {
	Devices []DeviceInfo `json:"devices"`
	// Revoked is the device --revoke ended; SignedOut is set when it was
	// this one.
	Revoked   string `json:"revoked,omitempty"`
	SignedOut bool   `json:"signed_out,omitempty"`
}

func (r *AccountDevicesResult) WriteText(w io.Writer) error {
	if r.Revoked != "" {
		fmt.Fprintf(w, "Revoked device %s.\n", r.Revoked)
	}
	if r.SignedOut {
		fmt.Fprintln(w, "That was this device: it is signed out.")
	}
	for _, d := range r.Devices {
		mark := " "
		if d.Current {
			mark = "*"
		}
		state := "last seen " + d.LastSeenAt.UTC().Format(time.RFC3339)
		if d.RevokedAt != nil {
			state = "revoked " + d.RevokedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s %-24s %-20s %s\n", mark, d.ID, d.Name, state)
	}
	return nil
}

func (c *AccountDevicesCmd) Run(env *Env) (*AccountDevicesResult, error) {
	st, ix, err := env.openIndex()
	if err != nil {
		return nil, err
	}
	client, err := agentsync.ClientFor(st, env.Getenv)
	if err != nil {
		return nil, err
	}
	res := &AccountDevicesResult{Devices: []DeviceInfo{}}
	if c.Revoke != "" {
		if err := client.RevokeDevice(env.ctx(), c.Revoke); err != nil {
			if errcode.Classify(err).Code == errcode.NotFound {
				err = errcode.WithHint(err, "run `agentsecrets account devices` to see the device ids")
			}
			return nil, err
		}
		res.Revoked = c.Revoke
		if c.Revoke == ix.Account.DeviceID {
			// This device's sessions are gone on the server: drop the
			// tokens here too, keeping the keys, as logout does.
			if err := st.SignOut(env.ctx(), false); err != nil {
				return nil, err
			}
			res.SignedOut = true
			return res, nil
		}
	}
	list, err := client.Devices(env.ctx())
	if err != nil {
		return nil, err
	}
	for _, d := range list.Devices {
		res.Devices = append(res.Devices, DeviceInfo{ID: d.ID, Name: d.Name, Current: d.Current, CreatedAt: d.CreatedAt, LastSeenAt: d.LastSeenAt, RevokedAt: d.RevokedAt})
	}
	return res, nil
}

// refusedBeforeCreating reports whether the server answered a create
// with a refusal (so no account exists), rather than failing somewhere
// an account may have been created without the client hearing of it.
func refusedBeforeCreating(err error) bool {
	if agentsync.NotSent(err) {
		return true
	}
	switch errcode.Classify(err).Code {
	case errcode.Usage, errcode.Conflict, errcode.Denied, errcode.Unauthorized, errcode.TooLarge, errcode.NotFound, errcode.ApprovalRequired:
		return true
	}
	return false
}
