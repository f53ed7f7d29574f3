package commands

// Service tokens for CI and headless agents (issue 11, stage B):
// `workspace token create|list|revoke`, and the connection of a process
// that runs with AGENTSECRETS_TOKEN_FILE.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// WorkspaceTokenCmd groups the service token commands.
type WorkspaceTokenCmd struct {
	Create WorkspaceTokenCreateCmd `cmd:"" help:"Create a service token for CI (needs the admin passphrase; the token is shown once, or written to --out)."`
	List   WorkspaceTokenListCmd   `cmd:"" help:"List a remote workspace's service tokens."`
	Revoke WorkspaceTokenRevokeCmd `cmd:"" help:"Revoke a service token: it can no longer sign in or read anything (needs the admin passphrase)."`
}

// connect opens the sync connection of this process: the service token
// of AGENTSECRETS_TOKEN_FILE when it is set, else the vault's account. ix
// is the index the caller just read, or nil.
func (e *Env) connect(st *vault.Store, ix *vault.Index) (*agsync.Conn, error) {
	path := e.Getenv(agsync.TokenFileEnv)
	if path == "" {
		return agsync.Connect(st, ix, e.Getenv, e.Now)
	}
	// The token file follows the passphrase files' rule: a regular file
	// only its owner can read.
	text, err := readPassphraseFile(path, agsync.TokenFileEnv)
	if err != nil {
		return nil, err
	}
	defer clear(text)
	e.touchToken(string(text))
	return agsync.ConnectToken(st, text, e.Getenv, e.Now)
}

// syncable reports whether remote operations can run: the vault is signed
// in, or a service token is given.
func (e *Env) syncable(ix *vault.Index) bool {
	return ix.Account.SignedIn() || e.Getenv(agsync.TokenFileEnv) != ""
}

// touchToken gives the output guard a token string and its secret part, so
// neither reaches any output.
func (e *Env) touchToken(tok string) {
	tok = strings.TrimSpace(tok)
	e.touch(secret.New([]byte(tok)))
	if i := strings.LastIndexByte(tok, '.'); i >= 0 && i+1 < len(tok) {
		e.touch(secret.New([]byte(tok[i+1:])))
	}
}

// createPrivateFile writes data to a new file of mode 600: created
// exclusively (never over an existing file or through a symlink) and
// synced; removed again if the write fails. flag names the option in
// errors.
func createPrivateFile(path, flag string, data []byte) error {
	f, err := atomicfile.OpenRegular(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s %s: cannot create it: %v", flag, atomicfile.ShowPath(path), errors.Unwrap(err)),
			"name a new file in a directory you can write; an existing file is never overwritten")
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return errcode.Errorf(errcode.Unavailable, "%s %s: write: %v", flag, atomicfile.ShowPath(path), werr)
	}
	return nil
}

// checkTokenDestination refuses, before anything is created, a token
// that would have nowhere to go: it is written to a new file (--out) or
// shown on the terminal, never printed to stdout. rerun is the command a
// human runs instead.
func checkTokenDestination(env *Env, out, rerun string) error {
	if out != "" || env.IO.StdoutTTY {
		return nil
	}
	return errcode.WithHint(errcode.New(errcode.ApprovalRequired, "a token is shown only on a terminal, and stdout is not one"),
		"a human runs `"+rerun+"` on a terminal, or adds --out FILE (a new file, mode 600)")
}

// deliverToken hands a new token over: to the --out file (on the user's
// side: a broker writes it through its client), else on the terminal
// after intro. It returns where it went.
func deliverToken(env *Env, out, tok, intro string) (string, error) {
	if out != "" {
		if err := env.user().createFile(out, "--out", []byte(tok+"\n")); err != nil {
			return "", err
		}
		return out, nil
	}
	if err := env.IO.Show(intro + tok + "\n\n"); err != nil {
		return "", errcode.WithHint(errcode.Errorf(errcode.Internal, "the token could not be shown on the terminal: %v", err), "create it with --out FILE")
	}
	return "terminal", nil
}

type WorkspaceTokenCreateCmd struct {
	Name    string   `arg:"" help:"Token name (a letter or digit, then letters, digits, '.', '_', '-'); members lists it as token:NAME." json:"name"`
	Role    string   `required:"" enum:"reader,member" help:"reader (pulls only) or member (pulls and pushes)." json:"role"`
	Project []string `placeholder:"P" help:"Limit the token to this project (repeatable; default: every project of the workspace)." json:"project,omitempty"`
	Expires string   `default:"90d" placeholder:"30d" help:"Lifetime in hours or days (like 12h or 30d), at most 365d." json:"expires,omitempty"`
	Out     string   `placeholder:"FILE" help:"Write the token to this new file (mode 600) instead of showing it on the terminal." json:"out,omitempty"`
	WorkspaceFlag
	Approval
}

// WorkspaceTokenResult reports a created or revoked token. It never
// holds the token string: that goes to --out or the terminal only.
type WorkspaceTokenResult struct {
	agsync.TokenResult
	// Out says where the token went: "terminal" or the --out file
	// (create only).
	Out      string `json:"out,omitempty"`
	Approved bool   `json:"approved" jsonschema:"description=true when the admin passphrase was checked"`
}

func (c *WorkspaceTokenCreateCmd) Run(env *Env) (*WorkspaceTokenResult, error) {
	if err := vault.CheckSpaceName("token", c.Name); err != nil {
		return nil, err
	}
	if err := agsync.ValidateTokenRole(c.Role); err != nil {
		return nil, err
	}
	life, err := agsync.ParseTokenLife(c.Expires)
	if err != nil {
		return nil, err
	}
	for _, p := range c.Project {
		if err := vault.CheckSpaceName("project", p); err != nil {
			return nil, err
		}
	}
	t, err := c.WorkspaceFlag.remote(env, "a service token reads a remote workspace")
	if err != nil {
		return nil, err
	}
	ix, sel, conn := t.ix, t.sel, t.conn
	rerun := "agentsecrets workspace token create " + c.Name + " --role " + c.Role + " --workspace " + sel.Workspace
	for _, p := range c.Project {
		rerun += " --project " + p
	}
	// The token goes to a new file or the terminal, never stdout: decided
	// before anything is asked or created.
	if err := checkTokenDestination(env, c.Out, rerun); err != nil {
		return nil, err
	}
	// A token reads every value of its projects: the same local human
	// approval as an invite.
	scope := "every project"
	if len(c.Project) > 0 {
		scope = "projects " + strings.Join(c.Project, ", ")
	}
	if err := c.Approval.approve(env, ix, sel, "creating service token "+c.Name+" ("+c.Role+") in workspace "+sel.Workspace,
		[]string{"token:   " + c.Name, "role:    " + c.Role, "scope:   " + scope, "expires: " + c.Expires}, rerun); err != nil {
		return nil, err
	}
	tokSecret, err := agsync.NewTokenSecret()
	if err != nil {
		return nil, err
	}
	defer clear(tokSecret)
	tok := agsync.FormatToken(conn.Client.Server(), tokSecret)
	env.touchToken(tok)
	out := "terminal"
	if c.Out != "" {
		// Written before the server has the token, like the recovery kit:
		// no crash leaves a token nobody was given.
		if err := env.user().createFile(c.Out, "--out", []byte(tok+"\n")); err != nil {
			return nil, err
		}
		out = c.Out
	}
	r, err := conn.CreateToken(env.ctx(), sel.Workspace, agsync.TokenSpec{Name: c.Name, Role: c.Role, Projects: c.Project, Life: life, Secret: tokSecret})
	if err != nil {
		if c.Out != "" && (agsync.NotSent(err) || errcode.Classify(err).Code != errcode.Unavailable) {
			env.user().removeFile(c.Out)
		}
		return nil, err
	}
	if c.Out == "" {
		if err := env.IO.Show("\nService token " + c.Name + " (shown only now; store it in your CI's secret store):\n" + tok + "\n\n"); err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Internal, "the token was created but could not be shown on the terminal: %v", err),
				"revoke it: `agentsecrets workspace token revoke "+c.Name+"`, then create another with --out FILE")
		}
	}
	return &WorkspaceTokenResult{TokenResult: *r, Out: out, Approved: true}, nil
}

func (r *WorkspaceTokenResult) WriteText(w io.Writer) error {
	t := r.Token
	if t.RevokedAt != nil {
		fmt.Fprintf(w, "Revoked service token %s (%s) of workspace %s: it can no longer sign in or read anything.\n", t.Name, t.ID, r.Workspace)
		if r.Rotation != nil {
			fmt.Fprintf(w, "Keys rotated to version %d: %d secret versions re-encrypted and marked rotate_upstream (the token could read them).\n",
				r.Rotation.KeyVersion, r.Rotation.Reencrypted)
		}
		return nil
	}
	fmt.Fprintf(w, "Created service token %s (%s) in workspace %s: role %s, %s, expires %s.\n", t.Name, t.ID, r.Workspace, t.Role,
		tokenScope(t.Projects), t.ExpiresAt.UTC().Format("2006-01-02 15:04 MST"))
	if r.Out != "terminal" && r.Out != "" {
		fmt.Fprintf(w, "The token is in %s (mode 600): move it into your CI's secret store and delete the file.\n", atomicfile.ShowPath(r.Out))
	}
	fmt.Fprintf(w, "CI uses it with: %s=FILE agentsecrets workspace switch %s, then secrets pull (into an encrypted file vault).\n", agsync.TokenFileEnv, r.Workspace)
	return nil
}

func tokenScope(projects []string) string {
	if len(projects) == 0 {
		return "every project"
	}
	return "projects " + strings.Join(projects, ", ")
}

type WorkspaceTokenListCmd struct {
	WorkspaceFlag
}

// WorkspaceTokensResult lists a workspace's tokens.
type WorkspaceTokensResult struct {
	agsync.TokensResult
}

func (c *WorkspaceTokenListCmd) Run(env *Env) (*WorkspaceTokensResult, error) {
	name, conn, err := c.WorkspaceFlag.connect(env)
	if err != nil {
		return nil, err
	}
	r, err := conn.Tokens(env.ctx(), name)
	if err != nil {
		return nil, err
	}
	return &WorkspaceTokensResult{*r}, nil
}

func (r *WorkspaceTokensResult) WriteText(w io.Writer) error {
	if len(r.Tokens) == 0 {
		fmt.Fprintf(w, "No service tokens in workspace %s.\n", r.Workspace)
	}
	for _, t := range r.Tokens {
		state := "expires " + t.ExpiresAt.UTC().Format("2006-01-02")
		if t.RevokedAt != nil {
			state = "revoked " + t.RevokedAt.UTC().Format("2006-01-02")
		}
		used := "never used"
		if t.LastUsedAt != nil {
			used = "last used " + t.LastUsedAt.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(w, "%-24s %-6s %s, %s, %s, by %s (%s)\n", t.Name, t.Role, tokenScope(t.Projects), state, used, t.CreatedBy, t.ID)
	}
	return nil
}

type WorkspaceTokenRevokeCmd struct {
	Token string `arg:"" help:"Name or id of the token to revoke." json:"token"`
	WorkspaceFlag
	Approval
}

func (c *WorkspaceTokenRevokeCmd) Run(env *Env) (*WorkspaceTokenResult, error) {
	t, err := c.WorkspaceFlag.remote(env, "it has no service tokens")
	if err != nil {
		return nil, err
	}
	ix, sel, conn := t.ix, t.sel, t.conn
	shown := c.Token
	if vault.CheckSpaceName("token", shown) != nil {
		shown = "<the given token>"
	}
	rerun := "agentsecrets workspace token revoke " + shown + " --workspace " + sel.Workspace
	if err := c.Approval.approve(env, ix, sel, "revoking service token "+shown+" of workspace "+sel.Workspace,
		[]string{"token: " + shown}, rerun); err != nil {
		return nil, err
	}
	r, err := conn.RevokeToken(env.ctx(), sel.Workspace, c.Token)
	if err != nil {
		return nil, err
	}
	return &WorkspaceTokenResult{TokenResult: *r, Approved: true}, nil
}
