// Package osuser looks up the system's users and groups the way the C
// library does, also in a binary built without cgo.
//
// The release binaries (and make install) are built with CGO_ENABLED=0:
// they start about a millisecond sooner, which every one-shot command pays.
// Without cgo, os/user on Linux and the BSDs reads only /etc/passwd and
// /etc/group, so a user that lives in LDAP or SSSD is "unknown" to it
// (macOS asks libc even without cgo). When os/user says unknown, this
// package asks the system's own tools (id, getent; dscl where there is no
// getent), which go through the name service, before it agrees.
package osuser

import (
	"errors"
	"os/user"
	"slices"
)

// Lookup is user.Lookup, then the name service.
func Lookup(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if _, unknown := errors.AsType[user.UnknownUserError](err); !unknown {
		return u, err
	}
	if u, ok := nsUser(name); ok && u.Username == name {
		return u, nil
	}
	return nil, err
}

// LookupId is user.LookupId, then the name service.
func LookupId(uid string) (*user.User, error) {
	u, err := user.LookupId(uid)
	if _, unknown := errors.AsType[user.UnknownUserIdError](err); !unknown {
		return u, err
	}
	if u, ok := nsUser(uid); ok && u.Uid == uid {
		return u, nil
	}
	return nil, err
}

// LookupGroup is user.LookupGroup, then the name service.
func LookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if _, unknown := errors.AsType[user.UnknownGroupError](err); !unknown {
		return g, err
	}
	if g, ok := nsGroup(name); ok && g.Name == name {
		return g, nil
	}
	return nil, err
}

// LookupGroupId is user.LookupGroupId, then the name service.
func LookupGroupId(gid string) (*user.Group, error) {
	g, err := user.LookupGroupId(gid)
	if _, unknown := errors.AsType[user.UnknownGroupIdError](err); !unknown {
		return g, err
	}
	if g, ok := nsGroup(gid); ok && g.Gid == gid {
		return g, nil
	}
	return nil, err
}

// GroupIds is u.GroupIds and the groups the name service lists for the
// user: without cgo, GroupIds sees only /etc/group.
func GroupIds(u *user.User) ([]string, error) {
	ids, err := u.GroupIds()
	more, ok := nsGroupIds(u.Username)
	if !ok {
		return ids, err
	}
	for _, id := range more {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
