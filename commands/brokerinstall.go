package commands

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/osuser"
	"github.com/agentsecrets/agentsecrets/internal/term"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// BrokerInstallCmd installs the broker as a service running as its own
// system user (docs/broker.md "Install").
type BrokerInstallCmd struct {
	User   []string `placeholder:"NAME[=SCOPE,...]" help:"User allowed to use the broker, optionally narrowed to workspaces or workspace/project pairs (repeatable; default: the user who ran sudo)." json:"user,omitempty"`
	DryRun bool     `help:"Show the plan and the service file; change nothing." json:"dry_run,omitempty"`
	// AdminPassphraseFile: see initVault.
	AdminPassphraseFile string `placeholder:"PATH" help:"File holding the broker vault's admin passphrase (otherwise it is asked on the terminal)." json:"admin_passphrase_file,omitempty"`

	// testOnlyPlan adjusts the plan before it is used (temporary paths,
	// throwaway account names); nil outside tests.
	testOnlyPlan func(*brokersvc.Plan)
}

// BrokerUninstallCmd removes the broker service (docs/broker.md "Uninstall").
type BrokerUninstallCmd struct {
	Purge bool `help:"Also delete the broker's state directory: its vault, policy and audit log." json:"purge,omitempty"`

	testOnlyPlan func(*brokersvc.Plan)
}

// BrokerInstallResult is the plan and what was done about it.
type BrokerInstallResult struct {
	DryRun bool           `json:"dry_run" jsonschema:"description=true with --dry-run: nothing was changed"`
	Plan   brokersvc.Plan `json:"plan"`
	Socket string         `json:"socket"`
	// ServiceText is the unit or plist, shown with --dry-run.
	ServiceText string           `json:"service_text,omitempty" term:"lines"`
	Steps       []brokersvc.Step `json:"steps"`
	Started     bool             `json:"started" jsonschema:"description=The service manager started the broker"`
	// VaultInitialised: the broker's vault exists, with an admin
	// passphrase chosen by the person who installed it.
	VaultInitialised bool `json:"vault_initialised"`
	// RunAs is the command root runs to start the broker where no
	// service manager does (docs/broker.md "Without systemd").
	RunAs string   `json:"run_as,omitempty"`
	Next  []string `json:"next,omitempty"`
	Notes
}

// BrokerUninstallResult lists what was removed and what was kept.
type BrokerUninstallResult struct {
	Purged bool             `json:"purged"`
	Steps  []brokersvc.Step `json:"steps"`
	Notes
}

func (c *BrokerInstallCmd) Run(env *Env) (*BrokerInstallResult, error) {
	p := brokersvc.DefaultPlan(runtime.GOOS)
	names := c.User
	if len(names) == 0 {
		// sudo sets SUDO_USER to the person who ran it: the broker's
		// user is them, never root, whose access would gain nothing.
		who := env.Getenv("SUDO_USER")
		if who == "" || who == "root" {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "name the users who may use the broker"), "sudo agentsecrets broker install --user NAME")
		}
		names = []string{who}
	}
	for _, n := range names {
		cl, err := brokersvc.ParseClient(n)
		if err != nil {
			return nil, err
		}
		p.Clients = append(p.Clients, cl)
	}
	src, err := selfPath()
	if err != nil {
		return nil, err
	}
	p.Source = src
	if c.testOnlyPlan != nil {
		c.testOnlyPlan(&p)
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	res := &BrokerInstallResult{DryRun: c.DryRun, Plan: p, Socket: p.Socket(), Steps: []brokersvc.Step{}}
	if c.DryRun {
		res.ServiceText = brokersvc.UnitText(p)
		if p.OS == "darwin" {
			res.ServiceText = brokersvc.PlistText(p)
		}
		return res, nil
	}
	rep, err := brokersvc.Install(env.ctx(), p, brokersvc.Exec{})
	if err != nil {
		return nil, err
	}
	res.Steps, res.Started = rep.Steps, rep.Started
	if err := c.initVault(env, p, res); err != nil {
		return nil, err
	}
	if len(rep.RunAs) > 0 {
		res.RunAs = strings.Join(rep.RunAs, " ")
		res.Next = append(res.Next, "systemd is not running: start the broker as root with `"+res.RunAs+"` (docs/broker.md \"Without systemd\")")
	}
	res.Next = append(res.Next, "members of group "+p.Group+" see it at their next login (or run `newgrp "+p.Group+"`)")
	return res, nil
}

// initVault creates the broker's vault at install time, with the admin
// passphrase of the person installing it, typed on their terminal (or read
// from --admin-passphrase-file). Left to the first client's `init`, the
// passphrase that approves every policy change would be chosen by whoever
// came first, and that could be an agent of an allowed user. Without a
// terminal or a file, install still succeeds and says to run init now.
func (c *BrokerInstallCmd) initVault(env *Env, p brokersvc.Plan, res *BrokerInstallResult) error {
	state := p.StateDir
	if _, err := os.Stat(filepath.Join(state, "config.json")); err == nil {
		res.VaultInitialised = true
		return nil
	}
	u, err := osuser.Lookup(p.User)
	if err != nil {
		return errcode.Errorf(errcode.Internal, "look up the broker's user %s: %v", p.User, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return errcode.Errorf(errcode.Internal, "the broker's user %s has no numeric ids", p.User)
	}
	// An earlier install that left the vault for later gave the state to
	// the broker's user; this process (root) works on it, then gives it
	// back.
	if err := chownTree(state, os.Getuid(), os.Getgid()); err != nil {
		return err
	}
	if err := ensurePassphraseFile(filepath.Join(state, daemonPassphraseFile)); err != nil {
		return err
	}
	// The daemon's own view: its home, its passphrase file, the file
	// backend, nothing of the installing user's environment.
	ienv := *env
	ienv.Getenv = daemonGetenv(state, env.Getenv)
	ienv.daemon = true
	initCmd := InitCmd{Backend: vault.KindFile, AdminPassphraseFile: c.AdminPassphraseFile}
	_, initErr := initCmd.Run(&ienv)
	// Whatever init created belongs to the broker's user, even after a
	// failure (the passphrase file at least).
	if err := chownTree(state, uid, gid); err != nil {
		return err
	}
	if initErr != nil {
		if !errors.Is(initErr, term.ErrNoTerminal) {
			return initErr
		}
		res.warn("the broker's vault was not created (no terminal to choose its admin passphrase on): run `agentsecrets init` as one of its users now, before any agent can")
		return nil
	}
	res.VaultInitialised = true
	return nil
}

// chownTree gives dir and everything in it to uid:gid, never following a
// symlink.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(path, uid, gid); err != nil {
			return errcode.Errorf(errcode.Unavailable, "give %s to the broker's user: %w", path, err)
		}
		return nil
	})
}

func (c *BrokerUninstallCmd) Run(env *Env) (*BrokerUninstallResult, error) {
	p := brokersvc.DefaultPlan(runtime.GOOS)
	if c.testOnlyPlan != nil {
		c.testOnlyPlan(&p)
	}
	rep, err := brokersvc.Uninstall(env.ctx(), p, brokersvc.Exec{}, c.Purge)
	if err != nil {
		return nil, err
	}
	res := &BrokerUninstallResult{Purged: c.Purge, Steps: rep.Steps}
	if !c.Purge {
		res.warn("the broker's vault stays in %s, owned by root; `sudo agentsecrets broker uninstall --purge` deletes it", p.StateDir)
	}
	return res, nil
}

func writeSteps(w io.Writer, steps []brokersvc.Step) {
	for _, s := range steps {
		line := fmt.Sprintf("  %-10s %s", s.Action, s.What)
		if s.Detail != "" {
			line += ": " + s.Detail
		}
		fmt.Fprintln(w, line)
	}
}

func (r *BrokerInstallResult) WriteText(w io.Writer) error {
	clients := make([]string, 0, len(r.Plan.Clients))
	for _, c := range r.Plan.Clients {
		clients = append(clients, c.String())
	}
	if r.DryRun {
		fmt.Fprintln(w, "Broker install plan (dry run: nothing changed)")
	} else {
		fmt.Fprintln(w, "Broker installed")
	}
	fmt.Fprintf(w, "  runs as   %s:%s\n  state     %s\n  socket    %s\n  binary    %s\n  service   %s\n  users     %s\n",
		r.Plan.User, r.Plan.Group, r.Plan.StateDir, r.Socket, r.Plan.Binary, r.Plan.ServiceFile, strings.Join(clients, " "))
	if r.ServiceText != "" {
		fmt.Fprintf(w, "--- %s ---\n%s", r.Plan.ServiceFile, r.ServiceText)
	}
	if len(r.Steps) > 0 {
		fmt.Fprintln(w, "Steps:")
		writeSteps(w, r.Steps)
	}
	if !r.DryRun {
		fmt.Fprintf(w, "  vault     %s\n", map[bool]string{true: "created, with your admin passphrase", false: "NOT created: run `agentsecrets init` now"}[r.VaultInitialised])
	}
	for _, n := range r.Next {
		fmt.Fprintf(w, "Next: %s\n", n)
	}
	return nil
}

func (r *BrokerUninstallResult) WriteText(w io.Writer) error {
	fmt.Fprintln(w, "Broker uninstalled")
	writeSteps(w, r.Steps)
	return nil
}
