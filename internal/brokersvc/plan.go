// Package brokersvc installs and removes the broker as an OS service: the
// system user and group it runs as, its private state directory, the
// group-readable directory of its socket, a root-owned copy of the binary
// and the service definition (a systemd unit on Linux, a launchd daemon on
// macOS). It never reads or writes a secret value: the broker creates its
// own vault inside the state directory when it first runs.
//
// Every step checks what exists before it changes anything, so running
// Install again after a failure completes the installation, and running
// Uninstall again after a failure completes the removal.
package brokersvc

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Names of the service on each OS.
const (
	UnitName    = "agentsecrets-broker.service"
	LaunchLabel = "dev.agentsecrets.broker"
	SocketName  = "broker.sock"
)

// Plan is everything Install, Uninstall and Status act on. DefaultPlan
// fills it for an OS; every path can be changed (tests point them at
// temporary directories).
type Plan struct {
	// OS is "linux" or "darwin"; any other is refused as unsupported.
	OS string `json:"os"`
	// User and Group are the system account the broker runs as.
	User  string `json:"user"`
	Group string `json:"group"`
	// StateDir is the broker's AGENTSECRETS_HOME: vault, index, policy,
	// audit log. 0700, owned by User.
	StateDir string `json:"state_dir"`
	// SocketDir holds the socket. 0750, owned by User:Group, so only
	// members of Group (the clients) can reach the socket.
	SocketDir string `json:"socket_dir"`
	// Binary is the root-owned copy of agentsecrets the service runs.
	Binary string `json:"binary"`
	// Source is the binary copied to Binary (the running one).
	Source string `json:"source,omitempty"`
	// ServiceFile is the systemd unit or the launchd plist.
	ServiceFile string `json:"service_file"`
	// Clients are the users allowed to use the broker.
	Clients []Client `json:"clients"`
	// Systemd is true when PID 1 is systemd (Linux): only then does
	// Install start the unit. Without it the unit is written for a later
	// boot and the broker is started with `broker run --as`.
	Systemd bool `json:"systemd"`
}

// DefaultPlan is the standard layout on goos, with no clients yet.
func DefaultPlan(goos string) Plan {
	switch goos {
	case "darwin":
		return Plan{OS: goos, User: "_agentsecrets", Group: "_agentsecrets",
			StateDir: "/var/db/agentsecrets", SocketDir: "/var/run/agentsecrets",
			Binary:      "/usr/local/lib/agentsecrets/agentsecrets",
			ServiceFile: "/Library/LaunchDaemons/" + LaunchLabel + ".plist"}
	default:
		_, err := os.Stat("/run/systemd/system")
		return Plan{OS: goos, User: "agentsecrets", Group: "agentsecrets",
			StateDir: "/var/lib/agentsecrets", SocketDir: "/run/agentsecrets",
			Binary:      "/usr/local/lib/agentsecrets/agentsecrets",
			ServiceFile: "/etc/systemd/system/" + UnitName,
			// sd_booted(3): this directory exists only when systemd is PID 1.
			Systemd: goos == "linux" && err == nil}
	}
}

// Socket is the path the broker listens on.
func (p Plan) Socket() string { return filepath.Join(p.SocketDir, SocketName) }

// RunArgs is the broker's command line, shared by the unit's ExecStart,
// the plist's ProgramArguments and the `broker run --as` fallback, so the
// three cannot drift apart.
func (p Plan) RunArgs() []string {
	args := []string{p.Binary, "broker", "run", "--state", p.StateDir, "--socket", p.Socket()}
	for _, c := range p.Clients {
		args = append(args, "--user", c.String())
	}
	return args
}

// RunAsCommand is what root runs on a machine without systemd: the broker
// creates its directories and drops to User before it serves.
func (p Plan) RunAsCommand() []string {
	return append(p.RunArgs(), "--as", p.User)
}

// Client is a user allowed to connect, optionally narrowed to scopes
// (workspaces or workspace/project pairs, checked by `broker run`).
type Client struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes,omitempty"`
}

// String is the --user argument: NAME or NAME=SCOPE,SCOPE.
func (c Client) String() string {
	if len(c.Scopes) == 0 {
		return c.Name
	}
	return c.Name + "=" + strings.Join(c.Scopes, ",")
}

// The characters allowed in names, scopes and paths are those that need
// no quoting in a systemd command line, a plist or a shell: validating is
// simpler to trust than escaping for three syntaxes. They are compiled on
// first use: the bounded repetitions expand into large programs, and
// compiling them at package init cost every command's start (this package is
// linked into all of them) about a twentieth of its CPU.
var (
	accountRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`) })
	scopeRe   = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9._*-]{0,63}(/[A-Za-z0-9*][A-Za-z0-9._*-]{0,63})?$`)
	})
	pathRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`) })
)

// ParseClient reads a --user argument, NAME or NAME=SCOPE[,SCOPE...].
func ParseClient(s string) (Client, error) {
	name, scopes, hasScopes := strings.Cut(s, "=")
	if !accountRe().MatchString(name) {
		return Client{}, errcode.WithHint(errcode.Errorf(errcode.Usage, "invalid user name %q", printable(name)), "pass --user NAME with an existing login name")
	}
	c := Client{Name: name}
	if hasScopes {
		for _, sc := range strings.Split(scopes, ",") {
			if !scopeRe().MatchString(sc) {
				return Client{}, errcode.WithHint(errcode.Errorf(errcode.Usage, "invalid scope %q for user %s", printable(sc), name), "a scope is WORKSPACE or WORKSPACE/PROJECT, e.g. --user alice=default/web")
			}
			c.Scopes = append(c.Scopes, sc)
		}
	}
	return c, nil
}

// printable keeps whatever someone pasted into a flag out of an error
// unless it looks like a name.
func printable(s string) string {
	if len(s) > 64 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return fmt.Sprintf("<%d bytes>", len(s))
	}
	return s
}

// ErrUnsupported is returned on an OS without a service design built yet.
var ErrUnsupported = errcode.New(errcode.Usage, "the broker service is not supported on this OS yet")

// Check validates p before anything is touched: Install and Uninstall run
// it first, and --dry-run uses it to refuse what Install would refuse.
func (p Plan) Check() error {
	if p.OS != "linux" && p.OS != "darwin" {
		return errcode.WithHint(fmt.Errorf("%w (%s)", ErrUnsupported, p.OS), "see docs/broker.md#windows")
	}
	for _, a := range []string{p.User, p.Group} {
		if !accountRe().MatchString(a) {
			return errcode.Errorf(errcode.Usage, "invalid account name %q", printable(a))
		}
	}
	paths := map[string]string{"state dir": p.StateDir, "socket dir": p.SocketDir, "binary": p.Binary, "service file": p.ServiceFile}
	for what, path := range paths {
		if !pathRe().MatchString(path) || filepath.Clean(path) != path {
			return errcode.Errorf(errcode.Usage, "%s %q must be a clean absolute path of letters, digits and . _ + -", what, printable(path))
		}
	}
	for _, c := range p.Clients {
		if _, err := ParseClient(c.String()); err != nil {
			return err
		}
	}
	return nil
}
