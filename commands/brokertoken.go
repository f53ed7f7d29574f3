package commands

// Per-agent broker tokens (issue 12): `broker token create|list|revoke`,
// run by the broker daemon, and the check daemon.exec makes when a client
// presents one (AGENTSECRETS_BROKER_TOKEN_FILE). A token narrows the uid
// that created it to some of its grants; it never widens anything, so
// creating and revoking one needs no admin approval.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
)

// BrokerTokenCmd groups the per-agent token commands.
type BrokerTokenCmd struct {
	Create BrokerTokenCreateCmd `cmd:"" help:"Create a token that limits one agent to some of your projects (shown once, or written to --out)."`
	List   BrokerTokenListCmd   `cmd:"" help:"List your broker tokens (names and grants, never the tokens)."`
	Revoke BrokerTokenRevokeCmd `cmd:"" help:"Revoke one of your broker tokens: an agent using it is refused from then on."`
}

// The token file in the daemon's data directory, and its lock.
const (
	brokerTokensFile = "broker-tokens.json"
	brokerTokensLock = "broker-tokens.lock"
	// brokerTokenPrefix marks a broker token string, so one pasted in the
	// wrong place is recognisable (and scanners can find it).
	brokerTokenPrefix = "asbt_"
)

// brokerToken is one stored token: only the SHA-256 of its secret, never
// the secret, so a copy of the daemon's files does not let anyone in.
type brokerToken struct {
	Name      string    `json:"name"`
	UID       uint32    `json:"uid"`
	Grants    []grant   `json:"grants"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at"`
}

type brokerTokens struct {
	Tokens []brokerToken `json:"tokens"`
}

// readBrokerTokens reads the daemon's token file; a missing one is empty.
func readBrokerTokens(dataDir string) (*brokerTokens, error) {
	var ts brokerTokens
	b, err := os.ReadFile(filepath.Join(dataDir, brokerTokensFile))
	if errors.Is(err, os.ErrNotExist) {
		return &ts, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &ts)
	}
	if err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Internal, "the broker's token file: %v", err),
			"the broker's admin restores "+brokerTokensFile+" in its state directory, or removes it (every token is then revoked)")
	}
	return &ts, nil
}

// updateBrokerTokens changes the token file under its lock and replaces
// it atomically: two creates at once both land, and a crash leaves the
// old file or the new one.
func updateBrokerTokens(ctx context.Context, dataDir string, change func(*brokerTokens) error) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return errcode.Errorf(errcode.Unavailable, "create the broker's data directory: %v", err)
	}
	return filelock.With(ctx, filepath.Join(dataDir, brokerTokensLock), func() error {
		ts, err := readBrokerTokens(dataDir)
		if err != nil {
			return err
		}
		if err := change(ts); err != nil {
			return err
		}
		b, err := json.MarshalIndent(ts, "", "  ")
		if err != nil {
			return errcode.Errorf(errcode.Internal, "encode the broker's tokens: %v", err)
		}
		if err := atomicfile.Write(filepath.Join(dataDir, brokerTokensFile), append(b, '\n'), 0o600, ".tokens-", nil); err != nil {
			return errcode.Errorf(errcode.Unavailable, "write the broker's token file: %v", err)
		}
		return nil
	})
}

// tokenHash is the stored form of a token string: SHA-256 of its random
// secret. ok is false for anything that is not a broker token.
func tokenHash(tok string) (hash string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(tok), brokerTokenPrefix))
	if err != nil || len(raw) != 32 || !strings.HasPrefix(strings.TrimSpace(tok), brokerTokenPrefix) {
		return "", false
	}
	sum := sha256.Sum256(raw)
	clear(raw)
	return hex.EncodeToString(sum[:]), true
}

var errBadBrokerToken = errcode.WithHint(errcode.New(errcode.Unauthorized, "the broker token is unknown or revoked"),
	"ask the user for a new one (`agentsecrets broker token create NAME --project WS/PROJECT`), or unset "+brokerd.EnvTokenFile)

// findBrokerToken returns the token a client presented, if it belongs to
// uid: unknown or revoked is unauthorized, another uid's is denied.
func findBrokerToken(dataDir, tok string, uid uint32) (*brokerToken, error) {
	hash, ok := tokenHash(tok)
	if !ok {
		return nil, errBadBrokerToken
	}
	ts, err := readBrokerTokens(dataDir)
	if err != nil {
		return nil, err
	}
	for i := range ts.Tokens {
		t := &ts.Tokens[i]
		if subtle.ConstantTimeCompare([]byte(t.SHA256), []byte(hash)) != 1 {
			continue
		}
		if t.UID != uid {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "broker token %s belongs to another user", t.Name),
				"use a token created by this user (`agentsecrets broker token create NAME --project WS/PROJECT`)")
		}
		return t, nil
	}
	return nil, errBadBrokerToken
}

// brokerClient is the broker client a token command acts for: the uid the
// kernel named and the token it presented, if any. Outside the daemon
// there is none.
func brokerClient(env *Env, cmd string) (*audit.Client, error) {
	c := audit.ClientFrom(env.ctx())
	if !env.daemon || c == nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "`%s` runs in the broker, and no broker is configured", cmd),
			"set "+brokerd.EnvBroker+"=unix:PATH, or install one (`sudo agentsecrets broker install`); check with `agentsecrets broker status`")
	}
	return c, nil
}

// noTokenManagement refuses a client that holds a token: a token cannot
// make (or revoke) tokens, so an agent cannot widen itself or cut off
// its siblings.
func noTokenManagement(c *audit.Client, what string) error {
	if c.Token == "" {
		return nil
	}
	return errcode.WithHint(errcode.Errorf(errcode.Denied, "a client using broker token %s cannot %s", c.Token, what),
		"the user runs it without "+brokerd.EnvTokenFile)
}

// withinLimits reports whether g survives l (the user's own limits)
// unchanged: a token may only narrow its user.
func withinLimits(l *limits, g grant) bool {
	return slices.Equal(l.narrow("", []grant{g}).grants, []grant{g})
}

type BrokerTokenCreateCmd struct {
	Name      string   `arg:"" help:"Token name (a lowercase letter, then lowercase letters, digits and '_'); audit records name it." json:"name"`
	Project   []string `placeholder:"WS/PROJECT" help:"A project the token may use (repeatable)." json:"project,omitempty"`
	Workspace []string `placeholder:"WS" help:"A whole workspace the token may use (repeatable)." json:"workspace,omitempty"`
	Out       string   `placeholder:"FILE" help:"Write the token to this new file (mode 600) instead of showing it on the terminal." json:"out,omitempty"`
}

// BrokerTokenResult reports a created or revoked token. It never holds
// the token string: that goes to --out or the terminal only.
type BrokerTokenResult struct {
	Name    string  `json:"name"`
	UID     uint32  `json:"uid"`
	Grants  []grant `json:"grants,omitempty"`
	Revoked bool    `json:"revoked,omitempty"`
	// Out says where the token went: "terminal" or the --out file
	// (create only).
	Out string `json:"out,omitempty"`
}

func (c *BrokerTokenCreateCmd) Run(env *Env) (*BrokerTokenResult, error) {
	client, err := brokerClient(env, "broker token create")
	if err != nil {
		return nil, err
	}
	if !audit.ValidToken(c.Name) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "token name %q: use a lowercase letter, then up to 63 lowercase letters, digits or '_'", c.Name),
			"name it after the agent, like `claude_code` or `ci`")
	}
	if err := noTokenManagement(client, "create tokens"); err != nil {
		return nil, err
	}
	var want []grant
	for _, p := range c.Project {
		g, err := parseGrant(p)
		if err != nil {
			return nil, err
		}
		if g.Project == "" {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--project %q: give WORKSPACE/PROJECT", p), "or grant the whole workspace with --workspace "+p)
		}
		want = append(want, g)
	}
	for _, w := range c.Workspace {
		g, err := parseGrant(w)
		if err != nil {
			return nil, err
		}
		if g.Project != "" {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--workspace %q names a project", w), "use --project "+w)
		}
		want = append(want, g)
	}
	if len(want) == 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "a token needs at least one --project or --workspace"),
			"run `agentsecrets broker token create "+c.Name+" --project WS/PROJECT`")
	}
	// A token cannot give what its user does not have: each grant must
	// survive the user's own limits unchanged.
	for _, g := range want {
		if !withinLimits(env.limits, g) {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "this user may not use all of %s, so its token may not either", g),
				"grant only what `agentsecrets broker status` lists under grants")
		}
	}
	// The token goes to a new file or the terminal, never stdout: decided
	// before anything is created.
	rerun := "agentsecrets broker token create " + c.Name
	for _, g := range want {
		if g.Project == "" {
			rerun += " --workspace " + g.Workspace
		} else {
			rerun += " --project " + g.String()
		}
	}
	if err := checkTokenDestination(env, c.Out, rerun); err != nil {
		return nil, err
	}
	raw, err := crypto.Random(32)
	if err != nil {
		return nil, err
	}
	tok := brokerTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	clear(raw)
	env.touchToken(tok)
	hash, _ := tokenHash(tok)
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	rec := brokerToken{Name: c.Name, UID: client.UID, Grants: want, SHA256: hash, CreatedAt: env.Now().UTC()}
	if err := updateBrokerTokens(env.ctx(), dirs.Data, func(ts *brokerTokens) error {
		for _, t := range ts.Tokens {
			if t.UID == client.UID && t.Name == c.Name {
				return errcode.WithHint(errcode.Errorf(errcode.Conflict, "you already have a broker token named %s", c.Name),
					"revoke it first (`agentsecrets broker token revoke "+c.Name+"`) or choose another name")
			}
		}
		ts.Tokens = append(ts.Tokens, rec)
		return nil
	}); err != nil {
		return nil, err
	}
	// Stored first, then handed over: if the hand-over fails the token is
	// taken back, so no token exists that nobody was given.
	out, err := deliverToken(env, c.Out, tok, "\nBroker token "+c.Name+" (shown only now; give it to the agent as a file named by "+brokerd.EnvTokenFile+"):\n")
	if err != nil {
		if rerr := updateBrokerTokens(env.ctx(), dirs.Data, func(ts *brokerTokens) error {
			ts.Tokens = slices.DeleteFunc(ts.Tokens, func(t brokerToken) bool { return t.SHA256 == hash })
			return nil
		}); rerr != nil {
			return nil, errcode.WithHint(err, "revoke it: `agentsecrets broker token revoke "+c.Name+"`, then create another")
		}
		return nil, err
	}
	return &BrokerTokenResult{Name: c.Name, UID: client.UID, Grants: want, Out: out}, nil
}

func (r *BrokerTokenResult) WriteText(w io.Writer) error {
	if r.Revoked {
		_, err := fmt.Fprintf(w, "Revoked broker token %s: a client using it is refused from now on.\n", r.Name)
		return err
	}
	fmt.Fprintf(w, "Created broker token %s for uid %d: %s.\n", r.Name, r.UID, (&limits{grants: r.Grants}).list())
	if r.Out != "terminal" && r.Out != "" {
		fmt.Fprintf(w, "The token is in %s (mode 600).\n", termEscape(atomicfile.ShowPath(r.Out)))
	}
	_, err := fmt.Fprintf(w, "The agent uses it with %s=FILE in its environment.\n", brokerd.EnvTokenFile)
	return err
}

type BrokerTokenListCmd struct{}

// BrokerTokensResult lists the calling user's tokens.
type BrokerTokensResult struct {
	UID    uint32              `json:"uid"`
	Tokens []BrokerTokenResult `json:"tokens"`
}

func (c *BrokerTokenListCmd) Run(env *Env) (*BrokerTokensResult, error) {
	client, err := brokerClient(env, "broker token list")
	if err != nil {
		return nil, err
	}
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	ts, err := readBrokerTokens(dirs.Data)
	if err != nil {
		return nil, err
	}
	res := &BrokerTokensResult{UID: client.UID, Tokens: []BrokerTokenResult{}}
	for _, t := range ts.Tokens {
		// Only the caller's own: another user's token names are theirs.
		if t.UID == client.UID {
			res.Tokens = append(res.Tokens, BrokerTokenResult{Name: t.Name, UID: t.UID, Grants: t.Grants})
		}
	}
	return res, nil
}

func (r *BrokerTokensResult) WriteText(w io.Writer) error {
	if len(r.Tokens) == 0 {
		_, err := fmt.Fprintf(w, "No broker tokens for uid %d.\n", r.UID)
		return err
	}
	for _, t := range r.Tokens {
		fmt.Fprintf(w, "%-24s %s\n", t.Name, (&limits{grants: t.Grants}).list())
	}
	return nil
}

type BrokerTokenRevokeCmd struct {
	Name string `arg:"" help:"Name of the token to revoke." json:"name"`
}

func (c *BrokerTokenRevokeCmd) Run(env *Env) (*BrokerTokenResult, error) {
	client, err := brokerClient(env, "broker token revoke")
	if err != nil {
		return nil, err
	}
	if err := noTokenManagement(client, "revoke tokens"); err != nil {
		return nil, err
	}
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	if err := updateBrokerTokens(env.ctx(), dirs.Data, func(ts *brokerTokens) error {
		n := len(ts.Tokens)
		ts.Tokens = slices.DeleteFunc(ts.Tokens, func(t brokerToken) bool { return t.UID == client.UID && t.Name == c.Name })
		if len(ts.Tokens) == n {
			shown := c.Name
			if !audit.ValidToken(shown) {
				shown = "<the given name>"
			}
			return errcode.WithHint(errcode.Errorf(errcode.NotFound, "you have no broker token named %s", shown), "list yours: `agentsecrets broker token list`")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return &BrokerTokenResult{Name: c.Name, UID: client.UID, Revoked: true}, nil
}
