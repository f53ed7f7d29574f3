package commands

import (
	"fmt"
	"io"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/dotenv"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

type SecretsImportCmd struct {
	Path         string `arg:"" help:".env file to import, or - for stdin." json:"path"`
	SkipExisting bool   `help:"Leave secrets that already exist untouched." json:"skip_existing,omitempty"`
	AllowPartial bool   `help:"Exit 0 even when some lines were rejected (the valid ones are imported either way)." json:"allow_partial,omitempty"`
	Scope
}

// ImportEntry is the outcome for one name in the file.
type ImportEntry struct {
	Name    string `json:"name"`
	Line    int    `json:"line"`
	Version int    `json:"version,omitempty"`
	// Action is created, updated, unchanged, skipped or rejected.
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// SecretsImportResult reports every name found in the file.
type SecretsImportResult struct {
	Workspace string        `json:"workspace"`
	Project   string        `json:"project"`
	Results   []ImportEntry `json:"results"`
	Imported  int           `json:"imported"`
	Rejected  int           `json:"rejected"`
	Notes
	// allowPartial keeps the exit status 0 with rejected lines.
	allowPartial bool
}

// Failure ends an import with rejected lines with usage (the file is the
// command's input, and part of it was invalid), after the result lists
// what was imported and what was rejected, unless --allow-partial.
func (r *SecretsImportResult) Failure() errcode.Code {
	if r.Rejected == 0 || r.allowPartial {
		return ""
	}
	return errcode.Usage
}

// maxImport bounds an imported file.
const maxImport = 4 << 20

func (c *SecretsImportCmd) Run(env *Env) (*SecretsImportResult, error) {
	var data []byte
	var err error
	if c.Path != "-" {
		if data, err = env.user().readFile(c.Path, maxImport); err != nil {
			return nil, errcode.WithHint(userFileError("import file", c.Path, err), "pass the path of a readable .env file")
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(env.IO.In, maxImport+1))
	}
	if err != nil {
		return nil, userFileError("import file", c.Path, err)
	}
	entries, err := dotenv.Parse(data)
	if err != nil {
		// ParseError carries a line and a reason, never the text.
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "%s: %v", atomicfile.ShowPath(c.Path), err), "fix the file; nothing was imported")
	}
	// Every value is wiped on return, the rejected ones included.
	defer func() {
		for _, e := range entries {
			e.Value.Wipe()
		}
	}()
	res := &SecretsImportResult{Results: []ImportEntry{}, allowPartial: c.AllowPartial}
	// Rejected lines are listed after the imported ones: they are what a
	// person reads last and fixes.
	var rejected []ImportEntry
	var puts []vault.Put
	lines := map[string]int{}
	for _, e := range entries {
		if err := vault.CheckSecretName(e.Name); err != nil {
			rejected = append(rejected, ImportEntry{Name: printableName(e.Name), Line: e.Line, Action: "rejected", Reason: "invalid name"})
			continue
		}
		if err := vault.CheckValue(e.Value); err != nil {
			rejected = append(rejected, ImportEntry{Name: e.Name, Line: e.Line, Action: "rejected", Reason: errcode.Classify(err).Message})
			continue
		}
		puts = append(puts, vault.Put{Name: e.Name, Value: e.Value, Source: "import"})
		lines[e.Name] = e.Line
	}
	if len(entries) == 0 {
		res.warn("%s has no assignments", c.Path)
	}
	mode := vault.Upsert
	if c.SkipExisting {
		mode = vault.SkipExisting
	}
	if len(puts) > 0 {
		wr, err := writeSecrets(env, c.Scope, puts, mode, &SecretsWriteResult{})
		if err != nil {
			return nil, err
		}
		res.Workspace, res.Project = wr.Workspace, wr.Project
		for _, p := range wr.Secrets {
			res.Results = append(res.Results, ImportEntry{Name: p.Name, Line: lines[p.Name], Version: p.Version, Action: p.Action})
			if p.Action == "created" || p.Action == "updated" {
				res.Imported++
			}
		}
	} else {
		_, _, sel, err := env.openProject(c.Scope)
		if err != nil {
			return nil, err
		}
		res.Workspace, res.Project = sel.Workspace, sel.Project
	}
	res.Results = append(res.Results, rejected...)
	res.Rejected = len(rejected)
	if res.Rejected > 0 {
		res.warn("%d entries were rejected; see results", res.Rejected)
	}
	return res, nil
}

// printableName shows a rejected name only if it is short and harmless.
func printableName(n string) string {
	if len(n) > 64 {
		return fmt.Sprintf("<%d-byte name>", len(n))
	}
	return n
}

func (r *SecretsImportResult) WriteText(w io.Writer) error {
	for _, e := range r.Results {
		extra := ""
		if e.Reason != "" {
			extra = " (" + e.Reason + ")"
		}
		fmt.Fprintf(w, "line %-4d %-9s %s%s\n", e.Line, e.Action, e.Name, extra)
	}
	fmt.Fprintf(w, "%d imported into %s/%s, %d rejected\n", r.Imported, r.Workspace, r.Project, r.Rejected)
	return nil
}
