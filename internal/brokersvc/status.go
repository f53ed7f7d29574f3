package brokersvc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"

	"github.com/agentsecrets/agentsecrets/internal/osuser"
)

// Status is what is installed. `broker status` adds whether the broker
// answers on Socket.
type Status struct {
	OS      string   `json:"os"`
	User    Account  `json:"user"`
	Group   Account  `json:"group"`
	Members []string `json:"members" jsonschema:"description=Users allowed to use the broker (the group's members)"`
	Binary  File     `json:"binary"`
	// BinarySHA256 is the first 12 hex digits of the installed binary's
	// SHA-256, to compare with the one on PATH after an upgrade.
	BinarySHA256 string `json:"binary_sha256,omitempty"`
	ServiceFile  File   `json:"service_file"`
	// Service is the service manager's state of the broker; empty when no
	// service manager runs it (no systemd).
	Service   string `json:"service,omitempty"`
	StateDir  File   `json:"state_dir"`
	SocketDir File   `json:"socket_dir"`
	Socket    File   `json:"socket"`
	// Problems lists what is installed wrongly, each with its fix.
	Problems []string `json:"problems"`
}

// Account is a system user or group.
type Account struct {
	Name   string `json:"name"`
	Exists bool   `json:"exists"`
	ID     string `json:"id,omitempty"`
}

// File is a path's presence, mode and owner.
type File struct {
	Path    string `json:"path"`
	Present bool   `json:"present"`
	Mode    string `json:"mode,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Group   string `json:"group,omitempty"`
}

// Installed reports whether the broker's account and service file exist.
func (s *Status) Installed() bool { return s.User.Exists && s.ServiceFile.Present }

// Inspect reports what of p is installed. It changes nothing and needs no root: it reads
// names, modes and owners, and asks the service manager.
func Inspect(ctx context.Context, p Plan, r Runner) *Status {
	s := &Status{OS: p.OS, User: Account{Name: p.User}, Group: Account{Name: p.Group}, Members: []string{}, Problems: []string{}}
	if u, err := lookupUser(p.User); err == nil && u != nil {
		s.User.Exists, s.User.ID = true, u.Uid
	}
	if g, err := lookupGroup(p.Group); err == nil && g != nil {
		s.Group.Exists, s.Group.ID = true, g.Gid
		if m, err := accountsFor(p.OS).members(ctx, r, p); err == nil {
			s.Members = m
		}
	}
	s.Binary = inspectFile(p.Binary)
	if data, err := os.ReadFile(p.Binary); err == nil {
		s.BinarySHA256 = shortSum(data)
	}
	s.ServiceFile = inspectFile(p.ServiceFile)
	s.Service = serviceState(ctx, r, p)
	s.StateDir = inspectFile(p.StateDir)
	s.SocketDir = inspectFile(p.SocketDir)
	s.Socket = inspectFile(p.Socket())
	if s.Binary.Present && (s.Binary.Owner != "root" || s.Binary.Mode != "0755") {
		s.Problems = append(s.Problems, fmt.Sprintf("%s is %s %s, not root 0755: rerun `sudo agentsecrets broker install`", p.Binary, s.Binary.Owner, s.Binary.Mode))
	}
	if s.StateDir.Present && s.User.Exists && (s.StateDir.Owner != p.User || s.StateDir.Mode != "0700") {
		s.Problems = append(s.Problems, fmt.Sprintf("%s is %s %s, not %s 0700: rerun `sudo agentsecrets broker install`", p.StateDir, s.StateDir.Owner, s.StateDir.Mode, p.User))
	}
	if s.SocketDir.Present && s.User.Exists && (s.SocketDir.Owner != p.User || s.SocketDir.Group != p.Group || s.SocketDir.Mode != "0750") {
		s.Problems = append(s.Problems, fmt.Sprintf("%s is %s:%s %s, not %s:%s 0750: rerun `sudo agentsecrets broker install`", p.SocketDir, s.SocketDir.Owner, s.SocketDir.Group, s.SocketDir.Mode, p.User, p.Group))
	}
	return s
}

func inspectFile(path string) File {
	f := File{Path: path}
	fi, err := os.Lstat(path)
	if err != nil {
		return f
	}
	f.Present = true
	f.Mode = fmt.Sprintf("%04o", fi.Mode().Perm())
	if uid, gid, ok := owner(fi); ok {
		f.Owner, f.Group = strconv.Itoa(uid), strconv.Itoa(gid)
		if u, err := osuser.LookupId(f.Owner); err == nil {
			f.Owner = u.Username
		}
		if g, err := osuser.LookupGroupId(f.Group); err == nil {
			f.Group = g.Name
		}
	}
	return f
}

func shortSum(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:6])
}
