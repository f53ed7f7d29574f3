package mcpconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Actions a change reports.
const (
	Added     = "added"
	Updated   = "updated"
	Unchanged = "unchanged"
	Removed   = "removed"
	Skipped   = "skipped"
	Absent    = "absent"
)

// ErrUnparseable is a config file the editor will not touch: it does not
// parse in the client's own dialect, or our entry sits in a form the
// editor cannot rewrite without disturbing the rest.
var ErrUnparseable = errcode.New(errcode.Conflict, "config file cannot be edited safely")

// Change is a planned edit of one client's file. Nothing is written until
// Write; Before and After are never shown, since a config may hold other
// servers' credentials.
type Change struct {
	Client *Client
	Path   string // the file as named by the client
	Real   string // the file written (symlinks resolved)
	Action string
	// Entry is our entry as it appears in the file's syntax, for --print.
	Entry  string
	before []byte
	after  []byte
	mode   fs.FileMode
	exists bool
}

// PlanInstall computes the edit that puts our entry into the client's file.
func (c *Client) PlanInstall(path, command string, args []string) (*Change, error) {
	return c.plan(path, command, args, true)
}

// PlanUninstall computes the edit that takes our entry out again.
func (c *Client) PlanUninstall(path string) (*Change, error) {
	return c.plan(path, "", nil, false)
}

func (c *Client) plan(path, command string, args []string, install bool) (*Change, error) {
	real, data, mode, exists, err := readConfig(path)
	if err != nil {
		return nil, c.readError(path, err)
	}
	ch := &Change{Client: c, Path: path, Real: real, before: data, mode: mode, exists: exists}
	if !exists {
		ch.mode = 0o600
	}
	entry := c.Entry(command, args)
	if install {
		if ch.Entry, err = c.renderEntry(entry); err != nil {
			return nil, errcode.Errorf(errcode.Internal, "render entry: %w", err)
		}
	}
	var out []byte
	var changed bool
	switch {
	case !install && !exists:
		ch.Action = Absent
		return ch, nil
	case c.Format.TOML && install:
		out, changed, err = tomlSet(data, c.Format.Path[0], ServerName, entry)
	case c.Format.TOML:
		out, changed, err = tomlRemove(data, c.Format.Path[0], ServerName)
	case install:
		out, changed, err = jsonSet(data, c.Format.Dialect, append(append([]string{}, c.Format.Path...), ServerName), entry)
	default:
		out, changed, err = jsonRemove(data, c.Format.Dialect, append(append([]string{}, c.Format.Path...), ServerName))
	}
	if err != nil {
		return nil, c.refuse(path, err)
	}
	ch.after = out
	switch {
	case !changed && install:
		ch.Action = Unchanged
	case !changed:
		ch.Action = Absent
	case !install:
		ch.Action = Removed
	case c.hasEntry(data):
		ch.Action = Updated
	default:
		ch.Action = Added
	}
	return ch, nil
}

// readError explains a config file that could not be read. A path that
// is not a regular file, or is too large, is refused with a hint; it is
// never read (or written) at all.
func (c *Client) readError(path string, err error) error {
	if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge) {
		return errcode.WithHint(fmt.Errorf("%s config %s: %w", c.Title, path, err),
			fmt.Sprintf("make it a regular file under %d MiB, or remove it; `agentsecrets mcp install --client %s --print` shows the entry to add by hand", MaxConfigSize>>20, c.Name))
	}
	return errcode.Errorf(errcode.Unavailable, "read %s: %w", path, err)
}

func (c *Client) refuse(path string, err error) error {
	syntax := c.Format.Dialect.String()
	if c.Format.TOML {
		syntax = "TOML"
	}
	return errcode.WithHint(fmt.Errorf("%s config %s is not %s agentsecrets can edit (%v): %w", c.Title, path, syntax, err, ErrUnparseable),
		"fix the file, or add the entry by hand: run `agentsecrets mcp install --client "+c.Name+" --print` to see it")
}

// hasEntry reports whether data (already known to parse) holds our entry.
func (c *Client) hasEntry(data []byte) bool {
	if c.Format.TOML {
		m, err := tomlDecode(data)
		if err != nil {
			return false
		}
		_, ok := tomlGet(m, c.Format.Path[0], ServerName)
		return ok
	}
	root, err := parseDoc(data, c.Format.Dialect)
	if err != nil || root == nil {
		return false
	}
	_, _, m, err := lookup(root, append(append([]string{}, c.Format.Path...), ServerName))
	return err == nil && m != nil
}

func (c *Client) renderEntry(entry Object) (string, error) {
	if c.Format.TOML {
		return renderTable(c.Format.Path[0], ServerName, entry)
	}
	v, err := marshal(nest(append(append([]string{}, c.Format.Path...), ServerName), entry), "", "  ")
	if err != nil {
		return "", err
	}
	return string(v) + "\n", nil
}

// Pending reports whether Write would change the file.
func (ch *Change) Pending() bool {
	return ch.Action == Added || ch.Action == Updated || ch.Action == Removed
}

// Write applies the change: a backup of the existing file next to it
// (FILE.agentsecrets-backup-UTCSTAMP, same mode), then an atomic replace
// that refuses if the file changed since it was read. It returns the
// backup's path ("" for a new file).
func (ch *Change) Write(now time.Time) (string, error) {
	if !ch.Pending() {
		return "", nil
	}
	backup := ""
	if ch.exists {
		stamp := now.UTC().Format("20060102T150405Z")
		for i := 1; ; i++ {
			name := ch.Real + ".agentsecrets-backup-" + stamp
			if i > 1 {
				name += "-" + strconv.Itoa(i)
			}
			err := atomicfile.Create(name, ch.before, ch.mode)
			if err == nil {
				backup = name
				break
			}
			if !errors.Is(err, fs.ErrExist) || i > 100 {
				return "", errcode.Errorf(errcode.Unavailable, "back up %s: %w", ch.Path, err)
			}
		}
	}
	if err := replaceConfig(ch.Real, ch.after, ch.mode, ch.before, ch.exists); err != nil {
		if backup != "" {
			os.Remove(backup)
		}
		if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge) {
			return "", ch.Client.readError(ch.Path, err)
		}
		if errors.Is(err, atomicfile.ErrChanged) {
			return "", errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s: %w", ch.Path, err), "close "+ch.Client.Title+" or wait for it to finish writing, then rerun the command")
		}
		return "", errcode.Errorf(errcode.Unavailable, "write %s: %w", ch.Path, err)
	}
	return backup, nil
}

// NameList is the client names joined for messages.
func NameList() string { return strings.Join(Names(), ", ") }
