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

// Write applies one change; see WriteAll. It returns the backup's path
// ("" for a new file or no change).
func (ch *Change) Write(now time.Time) (string, error) {
	backups, err := WriteAll([]*Change{ch}, now)
	if err != nil {
		return "", err
	}
	return backups[0], nil
}

// WriteAll applies several changes as one: either every file is written
// or every file is left as it was. It runs in two phases.
//
// Stage: every pending file is re-read and must still hold what was
// planned (a file changed, or swapped for a FIFO, since the plan is
// refused here, before anything is written), and a backup of each
// existing file is made next to it (FILE.agentsecrets-backup-UTCSTAMP,
// same mode). A failure removes the backups made so far.
//
// Commit: each file is replaced atomically, refusing if it changed since
// it was read. If one fails (a change at write time, a full disk), the
// files already replaced are restored from what was read (the same bytes
// their backups hold) and their backups removed; the error says so. A
// file that cannot be restored keeps its backup, and the error names it.
//
// It returns the backups' paths, one per change ("" for a new file or no
// change).
func WriteAll(changes []*Change, now time.Time) ([]string, error) {
	return writeAll(changes, now, (*Change).replace)
}

// writeAll is WriteAll with the commit step given, so a test can make a
// commit fail after others have succeeded.
func writeAll(changes []*Change, now time.Time, commit func(*Change) error) ([]string, error) {
	backups := make([]string, len(changes))
	removeBackups := func(from int) {
		for _, b := range backups[from:] {
			if b != "" {
				os.Remove(b)
			}
		}
	}
	for i, ch := range changes {
		if !ch.Pending() {
			continue
		}
		err := ch.unchanged()
		if err == nil {
			backups[i], err = ch.backup(now)
		}
		if err != nil {
			removeBackups(0)
			return nil, ch.writeError(err)
		}
	}
	for i, ch := range changes {
		if !ch.Pending() {
			continue
		}
		if err := commit(ch); err != nil {
			return nil, rollBack(changes[:i], backups[:i], ch.writeError(err), func() { removeBackups(i) })
		}
	}
	return backups, nil
}

// rollBack restores the files in done (already committed) after cause
// stopped the commit, and returns cause with what was restored and what
// was not. dropRest removes the backups of the files never written.
func rollBack(done []*Change, backups []string, cause error, dropRest func()) error {
	dropRest()
	var restored, kept []string
	for i, ch := range done {
		if !ch.Pending() {
			continue
		}
		if err := ch.restore(); err != nil {
			kept = append(kept, fmt.Sprintf("%s (backup %s)", ch.Path, backups[i]))
			continue
		}
		if backups[i] != "" {
			os.Remove(backups[i])
		}
		restored = append(restored, ch.Path)
	}
	switch {
	case len(kept) > 0:
		return fmt.Errorf("%w; could not restore %s: copy each backup over its file", cause, strings.Join(kept, ", "))
	case len(restored) > 0:
		return fmt.Errorf("%w; restored %s, which had already been written: no file was changed", cause, strings.Join(restored, ", "))
	}
	return cause
}

// unchanged checks that the file still holds what the plan read (or is
// still absent).
func (ch *Change) unchanged() error { return holds(ch.Real, ch.before, ch.exists) }

// backup copies the file as read to FILE.agentsecrets-backup-UTCSTAMP
// (a -N suffix when that exists), with the file's mode.
func (ch *Change) backup(now time.Time) (string, error) {
	if !ch.exists {
		return "", nil
	}
	stamp := now.UTC().Format("20060102T150405Z")
	for i := 1; ; i++ {
		name := ch.Real + ".agentsecrets-backup-" + stamp
		if i > 1 {
			name += "-" + strconv.Itoa(i)
		}
		err := atomicfile.Create(name, ch.before, ch.mode)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) || i > 100 {
			return "", errcode.Errorf(errcode.Unavailable, "back up %s: %w", ch.Path, err)
		}
	}
}

// replace writes the planned content if the file still holds what was read.
func (ch *Change) replace() error {
	return replaceConfig(ch.Real, ch.after, ch.mode, ch.before, ch.exists)
}

// restore undoes a committed replace, if the file still holds what was
// written: the content read at plan time goes back, or the file is
// removed if there was none.
func (ch *Change) restore() error {
	if !ch.exists {
		if err := holds(ch.Real, ch.after, true); err != nil {
			return err
		}
		return os.Remove(ch.Real)
	}
	return replaceConfig(ch.Real, ch.before, ch.mode, ch.after, true)
}

// writeError explains a failed stage or commit of this change.
func (ch *Change) writeError(err error) error {
	var coded *errcode.Error
	switch {
	case errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge):
		return ch.Client.readError(ch.Path, err)
	case errors.Is(err, atomicfile.ErrChanged):
		return errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s: %w", ch.Path, err), "close "+ch.Client.Title+" or wait for it to finish writing, then rerun the command")
	case errors.As(err, &coded):
		return err
	}
	return errcode.Errorf(errcode.Unavailable, "write %s: %w", ch.Path, err)
}

// NameList is the client names joined for messages.
func NameList() string { return strings.Join(Names(), ", ") }
