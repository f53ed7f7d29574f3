//go:build unix

package osuser

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"time"
)

// toolTimeout bounds one name-service tool: a hung LDAP server must not
// hang a command.
const toolTimeout = 10 * time.Second

// tool runs one of the system's own lookup tools by its absolute path
// (never through PATH: broker install runs as root) and returns its
// output; ok is false when it is not installed or found nothing.
func tool(name string, args ...string) (string, bool) {
	var path string
	for _, dir := range []string{"/usr/bin", "/bin"} {
		if fi, err := os.Stat(dir + "/" + name); err == nil && !fi.IsDir() {
			path = dir + "/" + name
			break
		}
	}
	if path == "" {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	out, err := cmd.Output()
	if err != nil {
		return "", false
	}
	return string(out), true
}

// nsUser looks up a user name or numeric id with id(1).
func nsUser(nameOrID string) (*user.User, bool) {
	if nameOrID == "" || strings.HasPrefix(nameOrID, "-") {
		return nil, false
	}
	out, ok := tool("id", nameOrID)
	if !ok {
		return nil, false
	}
	u, _, ok := parseID(out)
	return u, ok
}

// nsGroupIds lists a user's groups with id(1).
func nsGroupIds(name string) ([]string, bool) {
	if name == "" || strings.HasPrefix(name, "-") {
		return nil, false
	}
	out, ok := tool("id", name)
	if !ok {
		return nil, false
	}
	_, groups, ok := parseID(out)
	return groups, ok
}

// nsGroup looks up a group name or numeric id with getent (Linux, the
// BSDs), or a group name with dscl (macOS).
func nsGroup(nameOrID string) (*user.Group, bool) {
	if nameOrID == "" || strings.HasPrefix(nameOrID, "-") || strings.ContainsAny(nameOrID, "/:") {
		return nil, false
	}
	if out, ok := tool("getent", "group", nameOrID); ok {
		return parseGetentGroup(out)
	}
	if out, ok := tool("dscl", ".", "-read", "/Groups/"+nameOrID, "PrimaryGroupID"); ok {
		return parseDsclGID(nameOrID, out)
	}
	return nil, false
}
