package osuser

import (
	"os/user"
	"strings"
)

// parseID reads the output of `id NAME` (the same on Linux and macOS):
//
//	uid=1000(alice) gid=1000(alice) groups=1000(alice),27(sudo)
func parseID(out string) (u *user.User, groups []string, ok bool) {
	u = &user.User{}
	for _, field := range strings.Fields(out) {
		key, val, found := strings.Cut(field, "=")
		if !found {
			continue
		}
		switch key {
		case "uid":
			u.Uid, u.Username, ok = idName(val)
			if !ok {
				return nil, nil, false
			}
		case "gid":
			u.Gid, _, _ = idName(val)
		case "groups":
			for _, g := range strings.Split(val, ",") {
				if id, _, found := idName(g); found {
					groups = append(groups, id)
				}
			}
		}
	}
	if u.Uid == "" || u.Gid == "" {
		return nil, nil, false
	}
	return u, groups, true
}

// idName splits "1000(alice)" into its number and name; the name is
// optional (an id without an entry prints bare).
func idName(s string) (id, name string, ok bool) {
	id, rest, paren := strings.Cut(s, "(")
	if paren {
		name = strings.TrimSuffix(rest, ")")
	}
	if id == "" || strings.Trim(id, "0123456789") != "" {
		return "", "", false
	}
	return id, name, true
}

// parseGetentGroup reads a line of `getent group X`: name:passwd:gid:members.
func parseGetentGroup(out string) (*user.Group, bool) {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	parts := strings.Split(line, ":")
	if len(parts) < 3 || parts[0] == "" || parts[2] == "" || strings.Trim(parts[2], "0123456789") != "" {
		return nil, false
	}
	return &user.Group{Name: parts[0], Gid: parts[2]}, true
}

// parseDsclGID reads `dscl . -read /Groups/NAME PrimaryGroupID`:
// "PrimaryGroupID: 20".
func parseDsclGID(name, out string) (*user.Group, bool) {
	key, val, found := strings.Cut(strings.TrimSpace(out), ":")
	val = strings.TrimSpace(val)
	if !found || key != "PrimaryGroupID" || val == "" || strings.Trim(val, "0123456789") != "" {
		return nil, false
	}
	return &user.Group{Name: name, Gid: val}, true
}
