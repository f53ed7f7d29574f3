package commands

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
	"github.com/posener/complete"
	"github.com/willabides/kongplete"
)

// Shell completion runs the way kongplete (on posener/complete) works: the
// shell calls this binary with COMP_LINE (and COMP_POINT) set, and it prints
// one candidate per line. The candidates are the grammar's commands and
// flags plus the names of secrets, projects and workspaces from index.json,
// which holds no value and is read without the vault passphrase: a
// completion has no terminal to ask on, and must never unlock anything.

// Names of the predictors that `predictor:` tags on commands' fields use.
const (
	predictSecret    = "secret"
	predictProject   = "project"
	predictWorkspace = "workspace"
)

// completionShells are the shells `completion` writes a script for. Each
// script makes the shell call the binary with COMP_LINE set (complete -C),
// which is posener/complete's protocol; %[1]s is the binary's path, quoted
// for the shell.
var completionShells = map[string]string{
	"bash": "complete -C %[1]s agentsecrets\n",
	// zsh runs bash's complete -C through bashcompinit, which needs
	// compinit's compdef (loaded here when .zshrc has not).
	"zsh": "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -i; }\n" +
		"autoload -U +X bashcompinit && bashcompinit\ncomplete -C %[1]s agentsecrets\n",
	// fish drops a trailing space from the command line, which is how
	// posener/complete tells "complete a new word" from "finish this one".
	"fish": `function __complete_agentsecrets
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %[1]s
end
complete -f -c agentsecrets -a "(__complete_agentsecrets)"
`,
}

// CompleteCmd prints a shell's completion script.
type CompleteCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"Shell to write the script for: bash, zsh or fish." json:"shell"`
}

// CompletionResult is the script, written to stdout as it is (never as
// JSON), so that `source <(agentsecrets completion bash)` works.
type CompletionResult struct {
	Shell  string `json:"shell"`
	Script string `json:"script"`
}

// ExitStatus makes the script the whole of the output.
func (r *CompletionResult) ExitStatus() int { return 0 }

func (c *CompleteCmd) Run(env *Env) (*CompletionResult, error) {
	tmpl, ok := completionShells[c.Shell]
	if !ok {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "no completion for shell %q", c.Shell), "run `agentsecrets completion bash`, `zsh` or `fish`")
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "find this binary's path: %w", err)
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	res := &CompletionResult{Shell: c.Shell, Script: fmt.Sprintf(tmpl, shellQuote(bin))}
	if _, err := fmt.Fprint(env.IO.Out, res.Script); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "write completion script: %w", err)
	}
	return res, nil
}

// shellQuote quotes s as one word for bash, zsh and fish alike.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@", r))
	}) < 0 {
		return s
	}
	// fish also treats a backslash inside single quotes as an escape.
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// completing reports whether the shell started this process to complete a
// command line.
func completing(env *Env) bool { return env.Getenv("COMP_LINE") != "" }

// runCompletion prints the candidates for the command line in COMP_LINE
// and returns the exit status. Errors print nothing: a shell shows a
// completer's output as candidates.
func runCompletion(env *Env) int {
	cli := &CLI{}
	exited := -1
	parser, err := newParser(cli, env, &exited)
	if err != nil {
		return errcode.Lookup(errcode.Internal).Exit
	}
	status := 0
	kongplete.Complete(parser,
		kongplete.WithPredictor(predictSecret, namePredictor(env, secretNames)),
		kongplete.WithPredictor(predictProject, namePredictor(env, projectNames)),
		kongplete.WithPredictor(predictWorkspace, namePredictor(env, workspaceNames)),
		kongplete.WithExitFunc(func(code int) { status = code }),
		kongplete.WithErrorHandler(func(error) {}),
	)
	return status
}

// namePredictor completes names that list reads from the index; the words
// typed so far give --workspace and --project.
func namePredictor(env *Env, list func(ix *vault.Index, sel vault.Selection) []string) complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		st, err := env.Store()
		if err != nil {
			return nil
		}
		ix, err := st.Index()
		if err != nil {
			return nil
		}
		sel, err := typedScope(a.Completed).resolve(env, ix.Current)
		if err != nil {
			return nil
		}
		return list(ix, sel.Selection)
	})
}

// typedScope is the --workspace and --project given in words.
func typedScope(words []string) Scope {
	var s Scope
	for i, w := range words {
		for flag, dst := range map[string]*string{"--workspace": &s.Workspace, "--project": &s.Project} {
			switch {
			case w == flag && i+1 < len(words):
				*dst = words[i+1]
			case strings.HasPrefix(w, flag+"="):
				*dst = strings.TrimPrefix(w, flag+"=")
			}
		}
	}
	return s
}

func secretNames(ix *vault.Index, sel vault.Selection) []string {
	p, err := ix.Project(sel)
	if err != nil {
		return nil
	}
	return sortedKeys(p.Secrets)
}

func projectNames(ix *vault.Index, sel vault.Selection) []string {
	ws, err := ix.Workspace(sel.Workspace)
	if err != nil {
		return nil
	}
	return sortedKeys(ws.Projects)
}

func workspaceNames(ix *vault.Index, _ vault.Selection) []string {
	return sortedKeys(ix.Workspaces)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
