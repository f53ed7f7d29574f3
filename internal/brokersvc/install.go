package brokersvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Actions a Step reports.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
	Removed   = "removed"
	Absent    = "absent"
	Kept      = "kept"
	Started   = "started"
	Stopped   = "stopped"
	Skipped   = "skipped"
)

// Step is one thing Install or Uninstall did.
type Step struct {
	What   string `json:"what"`
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// Report is what Install or Uninstall did, in order; on an error it holds
// the steps done before it, which a re-run finds done.
type Report struct {
	Steps []Step `json:"steps"`
	// Started is true when the service manager started the broker.
	Started bool `json:"started"`
	// RunAs, when the broker was not started, is the command root runs to
	// start it (no systemd: docs/broker.md "Without systemd").
	RunAs []string `json:"run_as,omitempty"`
}

func (r *Report) add(what, action, detail string) {
	r.Steps = append(r.Steps, Step{What: what, Action: action, Detail: detail})
}

// ErrNotRoot refuses Install and Uninstall for anyone but root: they
// create accounts and write root-owned files.
var ErrNotRoot = errcode.New(errcode.Denied, "installing or removing the broker service needs root")

func requireRoot(verb string) error {
	if os.Geteuid() != 0 {
		return errcode.WithHint(ErrNotRoot, "sudo agentsecrets broker "+verb)
	}
	return nil
}

// Install creates the accounts, directories, binary copy and service file
// of p and starts the service where a service manager runs.
func Install(ctx context.Context, p Plan, r Runner) (*Report, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if err := requireRoot("install"); err != nil {
		return nil, err
	}
	if p.Source == "" {
		return nil, errcode.New(errcode.Internal, "no binary to install")
	}
	if len(p.Clients) == 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "no user may use the broker"), "sudo agentsecrets broker install --user NAME")
	}
	for _, c := range p.Clients {
		if u, err := lookupUser(c.Name); err != nil || u == nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "user %s does not exist", c.Name), "pass --user with an existing login name")
		}
	}
	// Every directory the service trusts must be out of the clients'
	// reach, ancestors included, or a client could swap what runs.
	for _, path := range []string{p.Binary, p.StateDir, p.SocketDir, p.ServiceFile} {
		if err := checkRootChain(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	rep := &Report{}
	acc := accountsFor(p.OS)
	uid, gid, err := ensureAccounts(ctx, r, p, acc, rep)
	if err != nil {
		return rep, err
	}
	for _, c := range p.Clients {
		member, err := isMember(c.Name, strconv.Itoa(gid))
		if err != nil {
			return rep, errcode.Errorf(errcode.Internal, "check %s's groups: %w", c.Name, err)
		}
		if member {
			rep.add("member "+c.Name, Unchanged, "")
			continue
		}
		if err := acc.addMember(ctx, r, p, c.Name); err != nil {
			return rep, errcode.Errorf(errcode.Internal, "add %s to group %s: %w", c.Name, p.Group, err)
		}
		rep.add("member "+c.Name, Created, "group "+p.Group)
	}
	if err := installBinary(p, rep); err != nil {
		return rep, err
	}
	if err := ensureDir(p.StateDir, 0o700, uid, gid, true, rep); err != nil {
		return rep, err
	}
	if err := ensureDir(p.SocketDir, 0o750, uid, gid, false, rep); err != nil {
		return rep, err
	}
	text := UnitText(p)
	if p.OS == "darwin" {
		text = PlistText(p)
	}
	action, err := writeRootFile(p.ServiceFile, []byte(text), 0o644)
	if err != nil {
		return rep, errcode.Errorf(errcode.Internal, "write %s: %w", p.ServiceFile, err)
	}
	rep.add("service file", action, p.ServiceFile)
	if err := startService(ctx, r, p, rep); err != nil {
		return rep, err
	}
	return rep, nil
}

// ensureAccounts creates the group, then the user in it, and returns their
// ids. A user of that name that is not in the group is someone else's
// account: it is refused, never taken over.
func ensureAccounts(ctx context.Context, r Runner, p Plan, acc accounts, rep *Report) (uid, gid int, err error) {
	g, err := lookupGroup(p.Group)
	if err != nil {
		return 0, 0, errcode.Errorf(errcode.Internal, "look up group %s: %w", p.Group, err)
	}
	if g == nil {
		if err := acc.createGroup(ctx, r, p); err != nil {
			return 0, 0, errcode.Errorf(errcode.Internal, "create group %s: %w", p.Group, err)
		}
		if g, err = lookupGroup(p.Group); err != nil || g == nil {
			return 0, 0, errcode.Errorf(errcode.Internal, "group %s was created but cannot be found: %v", p.Group, err)
		}
		rep.add("group "+p.Group, Created, "gid "+g.Gid)
	} else {
		rep.add("group "+p.Group, Unchanged, "gid "+g.Gid)
	}
	u, err := lookupUser(p.User)
	if err != nil {
		return 0, 0, errcode.Errorf(errcode.Internal, "look up user %s: %w", p.User, err)
	}
	if u == nil {
		if err := acc.createUser(ctx, r, p, g.Gid); err != nil {
			return 0, 0, errcode.Errorf(errcode.Internal, "create user %s: %w", p.User, err)
		}
		if u, err = lookupUser(p.User); err != nil || u == nil {
			return 0, 0, errcode.Errorf(errcode.Internal, "user %s was created but cannot be found: %v", p.User, err)
		}
		rep.add("user "+p.User, Created, "uid "+u.Uid)
	} else {
		if u.Gid != g.Gid {
			return 0, 0, errcode.WithHint(errcode.Errorf(errcode.Conflict, "user %s exists with primary group %s, not %s: it is not the broker's account", p.User, u.Gid, g.Gid),
				"remove or rename that account, then rerun `sudo agentsecrets broker install`")
		}
		rep.add("user "+p.User, Unchanged, "uid "+u.Uid)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(g.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, errcode.Errorf(errcode.Internal, "numeric ids of %s: %w", p.User, err)
	}
	return uid, gid, nil
}

// installBinary copies Source to Binary, root-owned 0755 in a root-owned
// 0755 directory: the service must never execute a file its clients can
// write, or an agent could replace the broker with itself.
func installBinary(p Plan, rep *Report) error {
	if err := ensureDir(filepath.Dir(p.Binary), 0o755, 0, 0, false, nil); err != nil {
		return err
	}
	data, err := os.ReadFile(p.Source)
	if err != nil {
		return errcode.Errorf(errcode.Internal, "read %s: %w", p.Source, err)
	}
	action, err := writeRootFile(p.Binary, data, 0o755)
	if err != nil {
		return errcode.Errorf(errcode.Internal, "install %s: %w", p.Binary, err)
	}
	rep.add("binary", action, p.Binary+" sha256:"+shortSum(data))
	return nil
}

// writeRootFile replaces path with data, root-owned with mode perm, unless
// it already is exactly that.
func writeRootFile(path string, data []byte, perm fs.FileMode) (string, error) {
	action := Created
	if fi, err := os.Lstat(path); err == nil {
		uid, gid, _ := owner(fi)
		cur, rerr := os.ReadFile(path)
		if rerr == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == perm && uid == 0 && gid == 0 && bytes.Equal(cur, data) {
			return Unchanged, nil
		}
		action = Updated
	}
	// The temp file is created by root, so it is root-owned before the
	// rename makes it visible.
	if err := atomicfile.Write(path, data, perm, "."+filepath.Base(path)+".tmp-", nil); err != nil {
		return "", err
	}
	return action, os.Chown(path, 0, 0)
}

// ensureDir makes path a directory (never a symlink) owned by uid:gid with
// mode. With recursive, files inside owned by anyone else are given to
// uid:gid too: a state directory kept by `uninstall` was handed to root
// and comes back to the new account.
func ensureDir(path string, mode fs.FileMode, uid, gid int, recursive bool, rep *Report) error {
	action := Unchanged
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(path, mode); err != nil {
			return errcode.Errorf(errcode.Internal, "create %s: %w", path, err)
		}
		action = Created
	case err != nil:
		return errcode.Errorf(errcode.Internal, "inspect %s: %w", path, err)
	case !fi.IsDir():
		return errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s exists and is not a directory", path), "move it away, then rerun `sudo agentsecrets broker install`")
	default:
		u, g, _ := owner(fi)
		if u != uid || g != gid || fi.Mode().Perm() != mode {
			action = Updated
		}
	}
	if recursive {
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if u, g, _ := owner(fi); u != uid || g != gid {
				action = Updated
				return os.Lchown(p, uid, gid)
			}
			return nil
		})
	} else {
		err = os.Chown(path, uid, gid)
	}
	if err == nil {
		// Mkdir's mode went through the umask; this one does not.
		err = os.Chmod(path, mode)
	}
	if err != nil {
		return errcode.Errorf(errcode.Internal, "set owner and mode of %s: %w", path, err)
	}
	if rep != nil {
		rep.add("directory", action, fmt.Sprintf("%s %04o %d:%d", path, mode, uid, gid))
	}
	return nil
}

// checkRootChain refuses a directory that has, itself or in an ancestor,
// an owner other than root or write access for others, unless sticky (as
// /tmp is, where others cannot rename root's entries).
func checkRootChain(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			uid, _, _ := owner(fi)
			if uid != 0 || fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
				return errcode.WithHint(errcode.Errorf(errcode.Denied, "%s is writable by users other than root", d),
					"the broker's files must live under root-owned directories; fix the owner and mode of "+d)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return errcode.Errorf(errcode.Internal, "inspect %s: %w", d, err)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Uninstall stops the service and removes what Install made. The state
// directory (the broker's vault) is deleted only with purge; without it,
// it is handed to root so that no account created later with the same uid
// inherits it.
func Uninstall(ctx context.Context, p Plan, r Runner, purge bool) (*Report, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if err := requireRoot("uninstall"); err != nil {
		return nil, err
	}
	rep := &Report{}
	if err := stopService(ctx, r, p, rep); err != nil {
		return rep, err
	}
	acc := accountsFor(p.OS)
	// Deleting the group removes every client's membership with it.
	if u, err := lookupUser(p.User); err != nil {
		return rep, errcode.Errorf(errcode.Internal, "look up user %s: %w", p.User, err)
	} else if u == nil {
		rep.add("user "+p.User, Absent, "")
	} else {
		if err := acc.deleteUser(ctx, r, p); err != nil {
			return rep, errcode.WithHint(errcode.Errorf(errcode.Conflict, "delete user %s: %w", p.User, err),
				"stop any `agentsecrets broker run` process (it runs as "+p.User+"), then rerun `sudo agentsecrets broker uninstall`")
		}
		rep.add("user "+p.User, Removed, "")
	}
	// userdel may already have removed a group named like the user.
	if g, err := lookupGroup(p.Group); err != nil {
		return rep, errcode.Errorf(errcode.Internal, "look up group %s: %w", p.Group, err)
	} else if g == nil {
		rep.add("group "+p.Group, Absent, "")
	} else {
		if err := acc.deleteGroup(ctx, r, p); err != nil {
			return rep, errcode.Errorf(errcode.Internal, "delete group %s: %w", p.Group, err)
		}
		rep.add("group "+p.Group, Removed, "")
	}
	for _, path := range []string{p.SocketDir, p.Binary} {
		if err := removeAll(path, rep); err != nil {
			return rep, err
		}
	}
	// Our directory goes only when empty: a package manager may share it.
	if err := os.Remove(filepath.Dir(p.Binary)); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(err) {
		return rep, errcode.Errorf(errcode.Internal, "remove %s: %w", filepath.Dir(p.Binary), err)
	}
	if purge {
		return rep, removeAll(p.StateDir, rep)
	}
	if _, err := os.Lstat(p.StateDir); errors.Is(err, fs.ErrNotExist) {
		rep.add("state directory", Absent, p.StateDir)
		return rep, nil
	}
	if err := ensureDir(p.StateDir, 0o700, 0, 0, true, nil); err != nil {
		return rep, err
	}
	rep.add("state directory", Kept, p.StateDir+" (owned by root now; `broker uninstall --purge` deletes it)")
	return rep, nil
}

func removeAll(path string, rep *Report) error {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		rep.add(path, Absent, "")
		return nil
	}
	if err := os.RemoveAll(path); err != nil {
		return errcode.Errorf(errcode.Internal, "remove %s: %w", path, err)
	}
	rep.add(path, Removed, "")
	return nil
}

func isNotEmpty(err error) bool {
	return errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST)
}
