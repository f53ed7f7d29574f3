package brokersvc

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/osuser"
)

// accounts creates and deletes the system user and group and manages the
// group's members, with each OS's own tools. Whether something exists is
// always asked through os/user, which sees what the system's name service
// sees, so each method only changes what is missing or present.
type accounts interface {
	createGroup(ctx context.Context, r Runner, p Plan) error
	createUser(ctx context.Context, r Runner, p Plan, gid string) error
	addMember(ctx context.Context, r Runner, p Plan, name string) error
	deleteUser(ctx context.Context, r Runner, p Plan) error
	deleteGroup(ctx context.Context, r Runner, p Plan) error
	// members lists the group's supplementary members.
	members(ctx context.Context, r Runner, p Plan) ([]string, error)
}

func accountsFor(goos string) accounts {
	if goos == "darwin" {
		return dsAccounts{}
	}
	return shadowAccounts{}
}

// shadowAccounts uses the shadow-utils tools every Linux distribution has.
type shadowAccounts struct{}

func (shadowAccounts) createGroup(ctx context.Context, r Runner, p Plan) error {
	_, err := r.Run(ctx, "groupadd", "--system", p.Group)
	return err
}

func (shadowAccounts) createUser(ctx context.Context, r Runner, p Plan, _ string) error {
	_, err := r.Run(ctx, "useradd", "--system", "--gid", p.Group, "--home-dir", p.StateDir,
		"--shell", "/usr/sbin/nologin", "--no-create-home", "--comment", "agentsecrets broker", p.User)
	return err
}

func (shadowAccounts) addMember(ctx context.Context, r Runner, p Plan, name string) error {
	_, err := r.Run(ctx, "usermod", "--append", "--groups", p.Group, name)
	return err
}

func (shadowAccounts) deleteUser(ctx context.Context, r Runner, p Plan) error {
	_, err := r.Run(ctx, "userdel", p.User)
	return err
}

func (shadowAccounts) deleteGroup(ctx context.Context, r Runner, p Plan) error {
	_, err := r.Run(ctx, "groupdel", p.Group)
	return err
}

func (shadowAccounts) members(ctx context.Context, r Runner, p Plan) ([]string, error) {
	out, err := r.Run(ctx, "getent", "group", p.Group)
	if err != nil {
		return nil, err
	}
	// name:password:gid:member,member
	fields := strings.Split(strings.TrimSpace(string(out)), ":")
	if len(fields) != 4 || fields[3] == "" {
		return []string{}, nil
	}
	return strings.Split(fields[3], ","), nil
}

// dsAccounts uses macOS Directory Services (dscl, dseditgroup), the way
// system daemons' accounts (names starting with _) are made. It cannot run
// on Linux; its commands are checked by TestDarwinAccountCommands.
type dsAccounts struct{}

func (dsAccounts) createGroup(ctx context.Context, r Runner, p Plan) error {
	id, err := freeDarwinID(ctx, r)
	if err != nil {
		return err
	}
	g := "/Groups/" + p.Group
	return runAll(ctx, r,
		[]string{"dscl", ".", "-create", g},
		[]string{"dscl", ".", "-create", g, "PrimaryGroupID", id},
		[]string{"dscl", ".", "-create", g, "RealName", "agentsecrets broker"},
		[]string{"dscl", ".", "-create", g, "Password", "*"})
}

// createUser gives the user the group's id as its uid when that is free,
// as macOS's own daemon accounts do.
func (dsAccounts) createUser(ctx context.Context, r Runner, p Plan, gid string) error {
	id := gid
	if _, err := osuser.LookupId(gid); err == nil {
		if id, err = freeDarwinID(ctx, r); err != nil {
			return err
		}
	}
	u := "/Users/" + p.User
	return runAll(ctx, r,
		[]string{"dscl", ".", "-create", u},
		[]string{"dscl", ".", "-create", u, "UniqueID", id},
		[]string{"dscl", ".", "-create", u, "PrimaryGroupID", gid},
		[]string{"dscl", ".", "-create", u, "UserShell", "/usr/bin/false"},
		[]string{"dscl", ".", "-create", u, "NFSHomeDirectory", p.StateDir},
		[]string{"dscl", ".", "-create", u, "RealName", "agentsecrets broker"},
		[]string{"dscl", ".", "-create", u, "Password", "*"},
		[]string{"dscl", ".", "-create", u, "IsHidden", "1"})
}

func (dsAccounts) addMember(ctx context.Context, r Runner, p Plan, name string) error {
	_, err := r.Run(ctx, "dseditgroup", "-o", "edit", "-a", name, "-t", "user", p.Group)
	return err
}

func (dsAccounts) deleteUser(ctx context.Context, r Runner, p Plan) error {
	_, err := r.Run(ctx, "dscl", ".", "-delete", "/Users/"+p.User)
	return err
}

func (dsAccounts) deleteGroup(ctx context.Context, r Runner, p Plan) error {
	_, err := r.Run(ctx, "dscl", ".", "-delete", "/Groups/"+p.Group)
	return err
}

func (dsAccounts) members(ctx context.Context, r Runner, p Plan) ([]string, error) {
	out, err := r.Run(ctx, "dscl", ".", "-read", "/Groups/"+p.Group, "GroupMembership")
	if err != nil {
		// dscl fails with "No such key" on a group without members.
		return []string{}, nil
	}
	_, list, _ := strings.Cut(string(out), ":")
	return append([]string{}, strings.Fields(list)...), nil
}

// freeDarwinID picks the lowest id in macOS's range for daemon accounts
// (200-400) that is neither a uid nor a gid.
func freeDarwinID(ctx context.Context, r Runner) (string, error) {
	users, err := r.Run(ctx, "dscl", ".", "-list", "/Users", "UniqueID")
	if err != nil {
		return "", err
	}
	groups, err := r.Run(ctx, "dscl", ".", "-list", "/Groups", "PrimaryGroupID")
	if err != nil {
		return "", err
	}
	id, ok := lowestFree(200, 400, string(users)+"\n"+string(groups))
	if !ok {
		return "", errcode.New(errcode.Conflict, "no free id between 200 and 400 for the broker's account")
	}
	return strconv.Itoa(id), nil
}

// lowestFree reads `dscl -list` output (a name and an id per line) and
// returns the lowest id in [lo, hi) not in it.
func lowestFree(lo, hi int, listing string) (int, bool) {
	used := map[int]bool{}
	for _, ln := range strings.Split(listing, "\n") {
		f := strings.Fields(ln)
		if len(f) < 2 {
			continue
		}
		if n, err := strconv.Atoi(f[len(f)-1]); err == nil {
			used[n] = true
		}
	}
	for id := lo; id < hi; id++ {
		if !used[id] {
			return id, true
		}
	}
	return 0, false
}

func runAll(ctx context.Context, r Runner, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := r.Run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// isMember reports whether name has gid among its groups.
func isMember(name, gid string) (bool, error) {
	u, err := osuser.Lookup(name)
	if err != nil {
		return false, err
	}
	ids, err := osuser.GroupIds(u)
	if err != nil {
		return false, fmt.Errorf("groups of %s: %w", name, err)
	}
	return slices.Contains(ids, gid), nil
}

// lookupUser and lookupGroup return nil, nil when the account is absent.
func lookupUser(name string) (*user.User, error) {
	u, err := osuser.Lookup(name)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, nil
	}
	return u, err
}

func lookupGroup(name string) (*user.Group, error) {
	g, err := osuser.LookupGroup(name)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return nil, nil
	}
	return g, err
}
