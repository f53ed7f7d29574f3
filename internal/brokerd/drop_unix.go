//go:build linux || darwin

package brokerd

import (
	"os"
	"strconv"
	"syscall"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/osuser"
)

// DropTo is `broker run --as`: as root, it makes the state directory
// (0700) and the socket's directory (0750, the user's group, whose members
// are the clients) owned by name, then becomes name for good: groups,
// gid, then uid, so nothing of root is left to regain.
func DropTo(name, state, socketDir string) error {
	if os.Geteuid() != 0 {
		return errcode.WithHint(errcode.New(errcode.Denied, "--as needs root: only root can become another user"), "run `sudo agentsecrets broker run --as "+name+" ...`, or run it as "+name+" without --as")
	}
	u, err := osuser.Lookup(name)
	if err != nil {
		return errcode.WithHint(errcode.Errorf(errcode.NotFound, "--as %s: no such user", name), "run `sudo agentsecrets broker install` to create it")
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid == 0 {
		return errcode.Errorf(errcode.Usage, "--as %s: the broker's user must be an ordinary user with numeric ids", name)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{state, 0o700}, {socketDir, 0o750}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return errcode.Errorf(errcode.Unavailable, "create %s: %w", d.path, err)
		}
		if err := os.Chown(d.path, uid, gid); err != nil {
			return errcode.Errorf(errcode.Unavailable, "chown %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return errcode.Errorf(errcode.Unavailable, "chmod %s: %w", d.path, err)
		}
	}
	if err := syscall.Setgroups(nil); err != nil {
		return errcode.Errorf(errcode.Internal, "drop supplementary groups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return errcode.Errorf(errcode.Internal, "setgid: %w", err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return errcode.Errorf(errcode.Internal, "setuid: %w", err)
	}
	if syscall.Setuid(0) == nil {
		return errcode.New(errcode.Internal, "still able to become root after dropping privileges")
	}
	return nil
}
