package commands

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/brokersvc"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/osuser"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// grant is one workspace, or one project in it, that a broker client may
// use. An empty Project grants the whole workspace, workspace-wide
// commands (allowlist, members) included.
type grant struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project,omitempty"`
}

func (g grant) String() string {
	if g.Project == "" {
		return g.Workspace
	}
	return g.Workspace + "/" + g.Project
}

func (g grant) covers(sel vault.Selection) bool {
	if g.Workspace != sel.Workspace {
		return false
	}
	return g.Project == "" || g.Project == sel.Project
}

// parseGrant reads WORKSPACE or WORKSPACE/PROJECT.
func parseGrant(s string) (grant, error) {
	ws, proj, _ := strings.Cut(s, "/")
	if err := vault.CheckSpaceName("workspace", ws); err != nil {
		return grant{}, err
	}
	if proj != "" {
		if err := vault.CheckSpaceName("project", proj); err != nil {
			return grant{}, err
		}
	}
	return grant{Workspace: ws, Project: proj}, nil
}

// limits narrow what a broker client may use. A nil *limits allows
// everything: the user's own process, or a client with no limits.
type limits struct {
	// who names the client in refusals ("uid 1001", "token ci").
	who    string
	grants []grant
}

// allow refuses a selection no grant covers. A workspace-wide selection
// (Project "") needs a workspace-wide grant.
func (l *limits) allow(sel vault.Selection) error {
	if l == nil {
		return nil
	}
	for _, g := range l.grants {
		if g.covers(sel) {
			return nil
		}
	}
	what := "workspace " + sel.Workspace
	if sel.Project != "" {
		what = "project " + sel.Workspace + "/" + sel.Project
	}
	return errcode.WithHint(errcode.Errorf(errcode.Denied, "the broker does not let %s use %s", l.who, what),
		fmt.Sprintf("use one of: %s (`agentsecrets project use NAME --workspace WS`), or ask the machine's admin to change the broker's --user grants", l.list()))
}

func (l *limits) list() string {
	if len(l.grants) == 0 {
		return "nothing"
	}
	names := make([]string, len(l.grants))
	for i, g := range l.grants {
		names[i] = g.String()
	}
	return strings.Join(names, ", ")
}

// narrow is l further limited to grants (a token's): what both allow.
func (l *limits) narrow(who string, grants []grant) *limits {
	out := &limits{who: who}
	for _, g := range grants {
		if l == nil {
			out.grants = append(out.grants, g)
			continue
		}
		for _, have := range l.grants {
			switch {
			case have.Workspace != g.Workspace:
			case have.Project == "":
				out.grants = append(out.grants, g)
			case g.Project == "" || g.Project == have.Project:
				out.grants = append(out.grants, have)
			}
		}
	}
	return out
}

// clientSpec is one --user of `broker run`: a user, and the grants that
// limit it (none: everything).
type clientSpec struct {
	UID    uint32
	Name   string
	Grants []grant
}

// parseClient reads a --user of `broker run`: NAME or NAME=WS[/PROJECT],...
// as `broker install` writes it (brokersvc.ParseClient), or a numeric uid
// in NAME's place.
func parseClient(s string) (clientSpec, error) {
	name, scopes, hasScopes := strings.Cut(s, "=")
	bad := func(why string) error {
		return errcode.WithHint(errcode.Errorf(errcode.Usage, "--user %s: %s", name, why), "give --user NAME or --user NAME=WORKSPACE[/PROJECT],...")
	}
	var c brokersvc.Client
	if uid, err := strconv.ParseUint(name, 10, 32); err == nil {
		c = brokersvc.Client{Name: name}
		if hasScopes {
			c.Scopes = strings.Split(scopes, ",")
		}
		spec := clientSpec{UID: uint32(uid), Name: name}
		return spec.withGrants(c.Scopes, bad)
	}
	c, err := brokersvc.ParseClient(s)
	if err != nil {
		return clientSpec{}, err
	}
	u, err := osuser.Lookup(c.Name)
	if err != nil {
		return clientSpec{}, bad("no such user")
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return clientSpec{}, bad("the user has no numeric uid")
	}
	spec := clientSpec{UID: uint32(uid), Name: c.Name}
	return spec.withGrants(c.Scopes, bad)
}

func (spec clientSpec) withGrants(scopes []string, bad func(string) error) (clientSpec, error) {
	for _, sc := range scopes {
		g, err := parseGrant(sc)
		if err != nil {
			return clientSpec{}, bad(errcode.Classify(err).Message)
		}
		spec.Grants = append(spec.Grants, g)
	}
	return spec, nil
}
