// Package home decides where agentsecrets keeps its files.
//
// AGENTSECRETS_HOME=DIR puts everything under DIR, like GNUPGHOME. Otherwise
// configuration, data and state follow the XDG base directories on Linux and
// the platform conventions elsewhere. Directories are created 0700 and files
// 0600; nothing here writes a file, it only names them.
package home

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// Dirs are the three places agentsecrets writes to.
type Dirs struct {
	Config string // config.json: vault id, backend choice
	Data   string // index.json, vault.enc, the lock file
	State  string // audit log, proxy pid and token files
	// Explicit is true when AGENTSECRETS_HOME chose the directories.
	Explicit bool
}

const appName = "agentsecrets"

// Resolve computes the directories from an environment lookup function, so
// tests and the CLI use the same rules without touching the real process env.
// A relative AGENTSECRETS_HOME is made absolute against the working
// directory (the user named it); a relative XDG_* variable is ignored, as
// the XDG spec says, and a relative $HOME counts as unset.
func Resolve(getenv func(string) string) (Dirs, error) {
	if h := getenv("AGENTSECRETS_HOME"); h != "" {
		abs, err := filepath.Abs(h)
		if err != nil {
			return Dirs{}, err
		}
		return Dirs{Config: abs, Data: abs, State: abs, Explicit: true}, nil
	}
	userHome := getenv("HOME")
	if runtime.GOOS == "windows" && userHome == "" {
		userHome = getenv("USERPROFILE")
	}
	// A relative home would name different directories from different
	// working directories (a second vault, a second audit log): it counts
	// as unset, and only an absolute AGENTSECRETS_HOME is made absolute.
	if !filepath.IsAbs(userHome) {
		userHome = ""
	}
	switch runtime.GOOS {
	case "windows":
		appData := getenv("AppData")
		local := getenv("LocalAppData")
		if !filepath.IsAbs(appData) || !filepath.IsAbs(local) {
			return Dirs{}, errors.New("%AppData% or %LocalAppData% is not set to an absolute path; set AGENTSECRETS_HOME")
		}
		return Dirs{
			Config: filepath.Join(appData, appName),
			Data:   filepath.Join(local, appName),
			State:  filepath.Join(local, appName, "state"),
		}, nil
	case "darwin":
		if userHome == "" {
			return Dirs{}, errors.New("$HOME is not set to an absolute path; set AGENTSECRETS_HOME")
		}
		base := filepath.Join(userHome, "Library", "Application Support", appName)
		return Dirs{Config: base, Data: base, State: filepath.Join(base, "state")}, nil
	default:
		xdg := func(name, fallback string) (string, error) {
			if v := getenv(name); v != "" && filepath.IsAbs(v) {
				return filepath.Join(v, appName), nil
			}
			if userHome == "" {
				return "", errors.New("$HOME is not set to an absolute path; set AGENTSECRETS_HOME")
			}
			return filepath.Join(userHome, fallback, appName), nil
		}
		cfg, err := xdg("XDG_CONFIG_HOME", ".config")
		if err != nil {
			return Dirs{}, err
		}
		data, err := xdg("XDG_DATA_HOME", filepath.Join(".local", "share"))
		if err != nil {
			return Dirs{}, err
		}
		state, err := xdg("XDG_STATE_HOME", filepath.Join(".local", "state"))
		if err != nil {
			return Dirs{}, err
		}
		return Dirs{Config: cfg, Data: data, State: state}, nil
	}
}

// All lists the distinct directories, for creation and permission checks.
func (d Dirs) All() []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range []string{d.Config, d.Data, d.State} {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Ensure creates the directories with mode 0700 and tightens them to 0700 if
// they already existed; parents such as ~/.config keep their own mode.
func (d Dirs) Ensure() error {
	for _, p := range d.All() {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o700); err != nil {
			return err
		}
	}
	return nil
}

// Paths of the individual files.
func (d Dirs) ConfigFile() string { return filepath.Join(d.Config, "config.json") }
func (d Dirs) IndexFile() string  { return filepath.Join(d.Data, "index.json") }
func (d Dirs) VaultFile() string  { return filepath.Join(d.Data, "vault.enc") }
func (d Dirs) LockFile() string   { return filepath.Join(d.Data, "lock") }

// KeychainItemsFile is where a keychain vault on Linux remembers the
// Secret Service's item paths of its keys (no values; see vault.Keychain).
func (d Dirs) KeychainItemsFile() string { return filepath.Join(d.Data, "keychain-items.json") }
