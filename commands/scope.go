package commands

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// Scope selects the workspace and project a command works on. Explicit
// flags win; otherwise the nearest .agentsecrets/project.json above the
// working directory; otherwise the user's current selection. So a command
// works from any directory.
type Scope struct {
	Workspace string `placeholder:"NAME" predictor:"workspace" help:"Workspace (default: project link or current selection)." json:"workspace,omitempty"`
	Project   string `placeholder:"NAME" predictor:"project" help:"Project (default: project link or current selection)." json:"project,omitempty"`
}

// Where a selection came from.
const (
	sourceFlag    = "flag"
	sourceLink    = "link"
	sourceCurrent = "current"
)

// LinkDir and LinkFile name the per-directory project link.
const (
	LinkDir  = ".agentsecrets"
	LinkFile = "project.json"
)

// Selected is a resolved scope.
type Selected struct {
	vault.Selection
	Source   string
	LinkPath string
}

// findLink walks from dir to the root looking for a project link.
func findLink(dir string) (*vault.Selection, string, error) {
	if dir == "" {
		return nil, "", nil
	}
	for {
		p := filepath.Join(dir, LinkDir, LinkFile)
		b, err := os.ReadFile(p)
		if err == nil {
			var sel vault.Selection
			if err := json.Unmarshal(b, &sel); err != nil || vault.CheckSpaceName("workspace", sel.Workspace) != nil || vault.CheckSpaceName("project", sel.Project) != nil {
				return nil, p, errcode.WithHint(errcode.Errorf(errcode.Usage, "project link %s is malformed", p),
					"fix it or rerun `agentsecrets project use NAME --link` in that directory")
			}
			return &sel, p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, p, fmt.Errorf("read project link: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, "", nil
		}
		dir = parent
	}
}

// resolve picks the selection, given the user's current one.
func (s Scope) resolve(env *Env, current vault.Selection) (Selected, error) {
	link, linkPath, err := env.user().findLink(env.Cwd)
	if err != nil {
		return Selected{}, err
	}
	return s.resolveFrom(current, link, linkPath, env.limits)
}

// resolveFrom picks the selection from the flags, the project link found
// at linkPath (nil: none) and the current selection, and checks it against
// lim. The broker daemon calls it with a link its client found.
func (s Scope) resolveFrom(current vault.Selection, link *vault.Selection, linkPath string, lim *limits) (Selected, error) {
	if s.Workspace != "" {
		if err := vault.CheckSpaceName("workspace", s.Workspace); err != nil {
			return Selected{}, err
		}
	}
	if s.Project != "" {
		if err := vault.CheckSpaceName("project", s.Project); err != nil {
			return Selected{}, err
		}
	}
	base := Selected{Selection: current, Source: sourceCurrent}
	if link != nil {
		base = Selected{Selection: *link, Source: sourceLink, LinkPath: linkPath}
	}
	out := base
	switch {
	case s.Workspace != "" && s.Project != "":
		out = Selected{Selection: vault.Selection{Workspace: s.Workspace, Project: s.Project}, Source: sourceFlag}
	case s.Workspace != "":
		proj := vault.DefaultName
		if base.Workspace == s.Workspace && base.Project != "" {
			proj = base.Project
		}
		out = Selected{Selection: vault.Selection{Workspace: s.Workspace, Project: proj}, Source: sourceFlag}
	case s.Project != "":
		out = Selected{Selection: vault.Selection{Workspace: base.Workspace, Project: s.Project}, Source: sourceFlag}
	}
	if out.Workspace == "" {
		return out, errcode.WithHint(errcode.New(errcode.NotFound, "no workspace selected"), "run `agentsecrets workspace switch NAME` or pass --workspace")
	}
	if err := lim.allow(out.Selection); err != nil {
		return out, err
	}
	return out, nil
}

// project resolves the scope and checks the project exists.
func (s Scope) project(env *Env, ix *vault.Index) (Selected, *vault.Project, error) {
	sel, err := s.resolve(env, ix.Current)
	if err != nil {
		return sel, nil, err
	}
	if err := needProject(sel); err != nil {
		return sel, nil, err
	}
	p, err := ix.Project(sel.Selection)
	return sel, p, err
}

func needProject(sel Selected) error {
	if sel.Project == "" {
		return errcode.WithHint(errcode.New(errcode.NotFound, "no project selected"), "run `agentsecrets project use NAME` or pass --project")
	}
	return nil
}

// Approval is embedded by commands that widen policy.
type Approval struct {
	PassphraseFile string `placeholder:"PATH" help:"File holding the admin passphrase (for scripted approvals); otherwise it is asked on the terminal." json:"passphrase_file,omitempty"`
}

// Describe says where the selection came from, for approval prompts: a
// project link an agent planted must not steer a human's approval unseen.
func (s Selected) Describe() string {
	switch s.Source {
	case sourceFlag:
		return "the --workspace/--project flags"
	case sourceLink:
		return "the project link " + s.LinkPath + " (a file in this directory tree: check that you wrote it)"
	default:
		return "the current selection (agentsecrets project use / workspace switch)"
	}
}

// approvalPrompt is the text a human reads before typing the admin
// passphrase: what is approved, where (workspace, and project unless the
// change is workspace-wide), why there, and the full change.
func approvalPrompt(sel Selected, what string, change []string) string {
	var b strings.Builder
	b.WriteString("agentsecrets: approve " + what + "\n")
	b.WriteString("  workspace:  " + sel.Workspace + "\n")
	if sel.Project != "" {
		b.WriteString("  project:    " + sel.Project + "\n")
	}
	b.WriteString("  chosen by:  " + sel.Describe() + "\n")
	for _, c := range change {
		b.WriteString("  " + c + "\n")
	}
	b.WriteString("Admin passphrase: ")
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// approve obtains the admin passphrase from the named file or the
// controlling terminal (never argv, stdin or the environment) and checks it.
// The prompt names sel and its source and lists change line by line; rerun
// is the command a human would type to approve.
func (a Approval) approve(env *Env, ix *vault.Index, sel Selected, what string, change []string, rerun string) error {
	var pass []byte
	var err error
	if a.PassphraseFile != "" {
		pass, err = env.user().passphraseFile(a.PassphraseFile, "--passphrase-file")
		if err != nil {
			return err
		}
	} else {
		pass, err = env.IO.Prompt(approvalPrompt(sel, what, change))
		if err != nil {
			return errcode.WithHint(fmt.Errorf("%w (%s)", policy.ErrApprovalRequired, what),
				"a human runs on a terminal: "+rerun+" (or adds --passphrase-file PATH)")
		}
	}
	if err := ix.Approval.Verify(pass); err != nil {
		return errcode.WithHint(err, "retry with the admin passphrase set at `agentsecrets init`")
	}
	return nil
}

// openIndex opens the vault and reads its index.
func (e *Env) openIndex() (*vault.Store, *vault.Index, error) {
	st, err := e.Store()
	if err != nil {
		return nil, nil, err
	}
	ix, err := st.Index()
	return st, ix, err
}

// storeToRead opens the vault for a command that reads values: the
// keychain connects (vault.Store.Warm) while the command reads the index
// and checks policy.
func (e *Env) storeToRead() (*vault.Store, error) {
	st, err := e.Store()
	if err != nil {
		return nil, err
	}
	st.Warm(e.ctx())
	return st, nil
}

// openProjectToRead is openProject for a command that reads values. The
// index is the Store's shared view (vault.Store.SharedIndex), which the
// broker's steps read again without decoding it again: the caller must not
// modify it.
func (e *Env) openProjectToRead(s Scope) (*vault.Store, *vault.Index, Selected, error) {
	st, err := e.storeToRead()
	if err != nil {
		return nil, nil, Selected{}, err
	}
	ix, err := st.SharedIndex()
	if err != nil {
		return nil, nil, Selected{}, err
	}
	return selectProject(e, s, st, ix)
}

// openProject opens the vault, reads the index and resolves the scope to an
// existing project: the first three steps of every project command.
func (e *Env) openProject(s Scope) (*vault.Store, *vault.Index, Selected, error) {
	st, ix, err := e.openIndex()
	if err != nil {
		return nil, nil, Selected{}, err
	}
	return selectProject(e, s, st, ix)
}

// selectProject resolves the scope against ix to an existing project.
func selectProject(e *Env, s Scope, st *vault.Store, ix *vault.Index) (*vault.Store, *vault.Index, Selected, error) {
	sel, _, err := s.project(e, ix)
	if err != nil {
		return nil, nil, Selected{}, err
	}
	return st, ix, sel, nil
}
