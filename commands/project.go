package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// ProjectCmd groups project commands.
type ProjectCmd struct {
	Create ProjectCreateCmd `cmd:"" help:"Create a project in a workspace."`
	List   ProjectListCmd   `cmd:"" help:"List projects of a workspace."`
	Use    ProjectUseCmd    `cmd:"" help:"Make a project current (for the user, or with --link for this directory)."`
	Delete ProjectDeleteCmd `cmd:"" help:"Delete a project and every secret value in it."`
	Link   ProjectLinkCmd   `cmd:"" help:"Create a project of a remote workspace on its server, and set auto-push."`
}

// ProjectInfo describes one project.
type ProjectInfo struct {
	Workspace string    `json:"workspace"`
	Name      string    `json:"name"`
	Current   bool      `json:"current"`
	Secrets   int       `json:"secrets"`
	CreatedAt time.Time `json:"created_at"`
}

func projectInfo(ix *vault.Index, ws, name string) ProjectInfo {
	p := ix.Workspaces[ws].Projects[name]
	return ProjectInfo{Workspace: ws, Name: name, Current: ix.Current == vault.Selection{Workspace: ws, Project: name},
		Secrets: len(p.Secrets), CreatedAt: p.CreatedAt}
}

type ProjectCreateCmd struct {
	Name string `arg:"" help:"Project name." json:"name"`
	Use  bool   `help:"Also make it the current project." json:"use,omitempty"`
	WorkspaceFlag
}

// ProjectResult reports the project a command created or selected.
type ProjectResult struct {
	Project ProjectInfo `json:"project"`
	Created bool        `json:"created"`
	// LinkFile is set when `project use --link` wrote a directory link.
	LinkFile string `json:"link_file,omitempty"`
	// Fetched is true when a remote project was fetched on first use.
	Fetched bool `json:"fetched,omitempty"`
	Notes
}

func (c *ProjectCreateCmd) Run(env *Env) (*ProjectResult, error) {
	if err := vault.CheckSpaceName("project", c.Name); err != nil {
		return nil, err
	}
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	if _, w, err := c.WorkspaceFlag.resolve(env, ix); err == nil && w.Remote != nil {
		// A project of a remote workspace is created on the server too:
		// signed in, or nothing is created.
		if _, err := env.syncConn(); err != nil {
			return nil, err
		}
	}
	res := &ProjectResult{}
	remote := false
	err = st.Update(env.ctx(), func(ix *vault.Index) error {
		wsName, w, err := c.WorkspaceFlag.resolve(env, ix)
		if err != nil {
			return err
		}
		if _, ok := w.Projects[c.Name]; !ok {
			w.Projects[c.Name] = vault.NewProject(env.Now())
			res.Created = true
		}
		if c.Use {
			ix.Current = vault.Selection{Workspace: wsName, Project: c.Name}
		}
		res.Project = projectInfo(ix, wsName, c.Name)
		remote = w.Remote != nil && w.Projects[c.Name].Sync == nil
		if !res.Created && !c.Use {
			return vault.ErrUnchanged
		}
		return nil
	})
	if err != nil || !remote {
		return res, err
	}
	// In a remote workspace the project is created on the server too; if
	// that fails the local project stays and `project link` finishes.
	conn, err := env.syncConn()
	if err == nil {
		_, err = conn.Link(env.ctx(), vault.Selection{Workspace: res.Project.Workspace, Project: c.Name}, nil)
	}
	if err != nil {
		return nil, errcode.WithHint(err, "the project exists locally; run `agentsecrets project link "+c.Name+" --workspace "+res.Project.Workspace+"` once the server is reachable")
	}
	return res, nil
}

type ProjectListCmd struct {
	WorkspaceFlag
}

// ProjectListResult lists a workspace's projects.
type ProjectListResult struct {
	Workspace string        `json:"workspace"`
	Projects  []ProjectInfo `json:"projects"`
}

func (c *ProjectListCmd) Run(env *Env) (*ProjectListResult, error) {
	_, ix, wsName, w, err := c.WorkspaceFlag.open(env)
	if err != nil {
		return nil, err
	}
	res := &ProjectListResult{Workspace: wsName, Projects: []ProjectInfo{}}
	for _, name := range vault.SortedKeys(w.Projects) {
		res.Projects = append(res.Projects, projectInfo(ix, wsName, name))
	}
	return res, nil
}

func (r *ProjectListResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Workspace %s: %s\n", r.Workspace, plural(len(r.Projects), "project"))
	if len(r.Projects) == 0 {
		return nil
	}
	t := newTable(w)
	fmt.Fprintln(t, "\tPROJECT\tSECRETS\tCREATED")
	for _, p := range r.Projects {
		fmt.Fprintf(t, "%s\t%s\t%d\t%s\n", currentMark(p.Current), p.Name, p.Secrets, p.CreatedAt.Format(time.DateOnly))
	}
	return t.Flush()
}

type ProjectUseCmd struct {
	Name string `arg:"" predictor:"project" help:"Project to use." json:"name"`
	Link bool   `help:"Write .agentsecrets/project.json in the working directory instead of changing the user's current project." json:"link,omitempty"`
	WorkspaceFlag
}

func (c *ProjectUseCmd) Run(env *Env) (*ProjectResult, error) {
	if err := vault.CheckSpaceName("project", c.Name); err != nil {
		return nil, err
	}
	st, ix, wsName, w, err := c.WorkspaceFlag.open(env)
	if err != nil {
		return nil, err
	}
	fetched := false
	if _, ok := w.Projects[c.Name]; !ok && w.Remote != nil {
		// A project of a remote workspace is fetched on first use.
		conn, err := env.syncConn()
		if err != nil {
			return nil, err
		}
		if err := conn.AdoptProject(env.ctx(), vault.Selection{Workspace: wsName, Project: c.Name}); err != nil {
			return nil, err
		}
		if ix, err = st.Index(); err != nil {
			return nil, err
		}
		w = ix.Workspaces[wsName]
		fetched = true
	}
	if _, ok := w.Projects[c.Name]; !ok {
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "no project %q in workspace %s", c.Name, wsName),
			"run `agentsecrets project create "+c.Name+" --workspace "+wsName+"`")
	}
	sel := vault.Selection{Workspace: wsName, Project: c.Name}
	res := &ProjectResult{Fetched: fetched}
	if c.Link {
		path, err := env.user().writeLink(env.Cwd, sel)
		if err != nil {
			return nil, err
		}
		res.LinkFile = path
	} else {
		err = st.Update(env.ctx(), func(ix *vault.Index) error {
			if _, err := ix.Project(sel); err != nil {
				return err
			}
			ix.Current = sel
			return nil
		})
		if err != nil {
			return nil, err
		}
		if ix, err = st.Index(); err != nil {
			return nil, err
		}
		if link, path, _ := env.user().findLink(env.Cwd); link != nil && *link != sel {
			res.warn("%s links this directory to %s/%s, which still wins here", path, link.Workspace, link.Project)
		}
	}
	res.Project = projectInfo(ix, wsName, c.Name)
	return res, nil
}

// writeLink writes the directory's project link atomically.
func writeLink(dir string, sel vault.Selection) (string, error) {
	if dir == "" {
		return "", errcode.New(errcode.Usage, "unknown working directory")
	}
	linkDir := filepath.Join(dir, LinkDir)
	if err := os.MkdirAll(linkDir, 0o755); err != nil {
		return "", errcode.Errorf(errcode.Unavailable, "create %s: %w", linkDir, err)
	}
	b, _ := json.MarshalIndent(sel, "", "  ")
	path := filepath.Join(linkDir, LinkFile)
	// The link names a project, not a secret; it is meant to be committed,
	// hence 0644. atomicfile fsyncs it, so a crash leaves the old link or
	// the new one, never an empty file.
	if err := atomicfile.Write(path, append(b, '\n'), 0o644, ".project-", nil); err != nil {
		return "", errcode.Errorf(errcode.Unavailable, "write %s: %w", path, err)
	}
	return path, nil
}

type ProjectDeleteCmd struct {
	Name  string `arg:"" predictor:"project" help:"Project to delete." json:"name"`
	Force bool   `help:"Delete even if the project still holds secrets." json:"force,omitempty"`
	WorkspaceFlag
}

// ProjectDeleteResult reports a deleted project.
type ProjectDeleteResult struct {
	Workspace      string `json:"workspace"`
	Project        string `json:"project"`
	DeletedSecrets int    `json:"deleted_secrets"`
}

func (c *ProjectDeleteCmd) Run(env *Env) (*ProjectDeleteResult, error) {
	if err := vault.CheckSpaceName("project", c.Name); err != nil {
		return nil, err
	}
	st, ix, wsName, _, err := c.WorkspaceFlag.open(env)
	if err != nil {
		return nil, err
	}
	sel := vault.Selection{Workspace: wsName, Project: c.Name}
	p, err := ix.Project(sel)
	if err != nil {
		return nil, err
	}
	if n := len(p.Secrets); n > 0 && !c.Force {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "project %s/%s holds %s", wsName, c.Name, plural(n, "secret")),
			"run `agentsecrets project delete "+c.Name+" --workspace "+wsName+" --force` to delete the project and its secret values")
	}
	n, err := st.DeleteProject(env.ctx(), sel)
	if err != nil {
		return nil, err
	}
	return &ProjectDeleteResult{Workspace: wsName, Project: c.Name, DeletedSecrets: n}, nil
}
