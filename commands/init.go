package commands

import (
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/agentsecrets/agentsecrets/internal/agentfiles"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/home"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// InitCmd creates a local vault.
type InitCmd struct {
	Backend             string `enum:"auto,keychain,file" default:"auto" help:"Where values live: the OS keychain, an encrypted file, or auto (keychain if usable)." json:"backend,omitempty" jsonschema:"enum=auto,enum=keychain,enum=file"`
	AdminPassphraseFile string `placeholder:"PATH" help:"File holding the admin passphrase that approves policy changes (otherwise asked on the terminal)." json:"admin_passphrase_file,omitempty"`
	AgentFiles          bool   `help:"Also write agent instructions into the current directory (AGENTS.md, CLAUDE.md, .cursor/rules, .agent/workflows); safe to rerun on an existing vault." json:"agent_files,omitempty"`
}

// Paths says where the vault's files are.
type Paths struct {
	Config   string `json:"config"`
	Data     string `json:"data"`
	State    string `json:"state"`
	Explicit bool   `json:"explicit" jsonschema:"description=true when AGENTSECRETS_HOME chose the directories"`
}

func pathsOf(d home.Dirs) Paths {
	return Paths{Config: d.Config, Data: d.Data, State: d.State, Explicit: d.Explicit}
}

// adminPassphraseIntro is shown before init asks for the admin passphrase.
const adminPassphraseIntro = `The admin passphrase approves what widens a secret's reach (binding it to a
host, allowlisting a host). Only a person types it: keep it out of any file an
agent can read. To script init, pass --admin-passphrase-file PATH.
`

// InitResult describes the vault after init.
type InitResult struct {
	Created       bool     `json:"created" jsonschema:"description=false when a vault already existed and nothing was changed"`
	Backend       string   `json:"backend"`
	BackendReason string   `json:"backend_reason"`
	VaultID       string   `json:"vault_id"`
	Paths         Paths    `json:"paths"`
	Workspace     string   `json:"workspace"`
	Project       string   `json:"project"`
	Next          []string `json:"next"`
	// AgentFiles lists the instruction files written with --agent-files.
	AgentFiles []agentfiles.Result `json:"agent_files,omitempty"`
	Notes
}

func (c *InitCmd) Run(env *Env) (*InitResult, error) {
	if env.daemon {
		// The daemon has no login session, so no keychain: its values live
		// in its encrypted file, under a passphrase only it can read.
		if c.Backend == vault.KindKeychain {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "the broker keeps values in its own encrypted file, not a keychain"), "run `agentsecrets init` without --backend")
		}
		c.Backend = vault.KindFile
	}
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	// admin is kept for the vault passphrase's check: the two must differ,
	// which is said before the vault passphrase is confirmed.
	var admin []byte
	defer func() { clear(admin) }()
	opts := vault.InitOptions{
		Options: env.storeOptions(),
		Backend: c.Backend,
		AdminPassphrase: func() ([]byte, error) {
			var err error
			if c.AdminPassphraseFile != "" {
				admin, err = env.user().passphraseFile(c.AdminPassphraseFile, "--admin-passphrase-file")
			} else {
				admin, err = env.askNew(newSecret{
					intro:  adminPassphraseIntro,
					prompt: "Choose the admin passphrase (approves policy changes): ",
					check:  checkNewPassphrase,
					rerun:  "agentsecrets init",
					noTerminal: func(err error) error {
						return errcode.WithHint(fmt.Errorf("init needs an admin passphrase: %w", err),
							"run `agentsecrets init` on a terminal, or pass --admin-passphrase-file PATH")
					},
				})
			}
			return admin, err
		},
	}
	opts.VaultPassphrase = func(isNew bool) ([]byte, error) {
		return env.readVaultPassphrase(isNew, func(p []byte) error {
			if err := checkNewPassphrase(p); err != nil {
				return err
			}
			if subtle.ConstantTimeCompare(admin, p) == 1 {
				return errcode.WithHint(vault.ErrSamePassphrase, "choose a vault passphrase unlike the admin one, which stays out of any file an agent can read")
			}
			return nil
		})
	}
	st, created, err := vault.Init(env.ctx(), dirs, opts)
	if err != nil {
		return nil, err
	}
	res := &InitResult{
		Created: created, Backend: st.Config.Backend, BackendReason: st.Config.BackendReason,
		VaultID: st.Config.VaultID, Paths: pathsOf(dirs),
		Next: []string{"agentsecrets secrets set NAME", "agentsecrets secrets list", "agentsecrets status"},
	}
	if ix, err := st.Index(); err == nil {
		res.Workspace, res.Project = ix.Current.Workspace, ix.Current.Project
	}
	if c.AgentFiles {
		if res.AgentFiles, err = env.user().writeAgentFiles(env.Cwd); err != nil {
			return nil, err
		}
	}
	if !created {
		res.warn("a vault already exists at %s; the vault was not changed", dirs.Config)
		if c.Backend != "auto" && c.Backend != st.Config.Backend {
			res.warn("the existing vault uses the %s backend, not %s; to switch, use a new AGENTSECRETS_HOME", st.Config.Backend, c.Backend)
		}
	}
	return res, nil
}

func (r *InitResult) WriteText(w io.Writer) error {
	if r.Created {
		fmt.Fprintf(w, "Created a vault in %s\n", r.Paths.Data)
	} else {
		// A warning, printed once before this, says the vault was kept.
		fmt.Fprintf(w, "Vault:    %s\n", r.Paths.Data)
	}
	fmt.Fprintf(w, "Backend:  %s (%s)\n", r.Backend, r.BackendReason)
	fmt.Fprintf(w, "Project:  %s/%s\n", r.Workspace, r.Project)
	for _, f := range r.AgentFiles {
		fmt.Fprintf(w, "Agent file: %-9s %s\n", f.Action, f.Path)
	}
	fmt.Fprintln(w, "Passphrases:")
	fmt.Fprintln(w, "  admin  approves policy changes; only a person types it")
	if r.Backend == vault.KindFile {
		fmt.Fprintln(w, "  vault  unlocks the vault file; commands ask for it, or read the file")
		fmt.Fprintln(w, "         AGENTSECRETS_VAULT_PASSPHRASE_FILE names (one only you can read)")
	}
	fmt.Fprintln(w, "Next:")
	for _, n := range r.Next {
		fmt.Fprintf(w, "  %s\n", n)
	}
	return nil
}
