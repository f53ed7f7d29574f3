// Package agentfiles writes the instruction files coding agents read in a
// project (AGENTS.md, CLAUDE.md, Cursor rules, .agent workflows) so they
// learn the agentsecrets workflow. Our text lives between marker comments;
// re-running replaces that block and leaves the rest of each file alone.
package agentfiles

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/atomicfile"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Markers around our block.
const (
	Begin = "<!-- agentsecrets:begin -->"
	End   = "<!-- agentsecrets:end -->"
)

// Actions a Result reports.
const (
	Created   = "created"   // the file did not exist
	Added     = "added"     // our block was appended to an existing file
	Updated   = "updated"   // our block was replaced
	Unchanged = "unchanged" // the file already says what we would write
)

// Result is what happened to one file.
type Result struct {
	Path   string `json:"path"`
	Action string `json:"action" jsonschema:"enum=created,enum=added,enum=updated,enum=unchanged"`
}

// file is one instruction file: where it lives, the block we own in it and
// what a new file starts with (a tool's front matter).
type file struct {
	rel    string
	header string
	block  string
	// skipIf: an existing file that already satisfies us without a block
	// (CLAUDE.md that imports AGENTS.md itself).
	skipIf func(existing []byte) bool
}

// Instructions is the section every agent reads, in AGENTS.md.
const Instructions = `## Credentials: agentsecrets

This project's API credentials live in agentsecrets, never in files, the
environment or the chat. You use them by *name*; you never see a value.

1. ` + "`agentsecrets status --select '{initialised,workspace,project,secrets,sync}'`" + ` — is there a vault, which project is current, and (synced projects) the drift last found.
2. ` + "`agentsecrets secrets diff`" + ` — compare a synced project with its server: ` + "`remote_newer`/`remote_only`" + ` mean pull, ` + "`local_newer`/`local_only`" + ` mean push, ` + "`conflict`" + ` means ask the human. A local-only project answers ` + "`usage`" + `: skip steps 2 and 3.
3. ` + "`agentsecrets secrets pull`" + ` — bring newer versions into the local vault (verified; no value is shown). ` + "`agentsecrets secrets push`" + ` stores local changes; never ` + "`--force`" + `.
4. ` + "`agentsecrets secrets list --select 'secrets.#.name'`" + ` — the names you can use.
5. ` + "`agentsecrets call --url URL --bearer NAME --select body.FIELD`" + ` — send the request; also ` + "`--basic`, `--header H=NAME`, `--query p=NAME`, `--body-field path=NAME`, `--form-field f=NAME`" + `. The response is redacted.
6. ` + "`agentsecrets proxy logs --last 5`" + ` — what was sent where (names and decisions, never values).

Output is JSON; errors are ` + "`{\"error\":{\"code\",\"message\",\"hint\"}}`" + ` and the hint is the next command to run.
` + "`denied` or `approval_required`" + ` means a human must approve: ask them to run the hinted
` + "`agentsecrets workspace allowlist add HOST` or `agentsecrets secrets bind NAME HOST`" + `. Ask a human to
store a missing value with ` + "`agentsecrets secrets set NAME`" + `, and to sign in (` + "`agentsecrets login`" + `) when a
sync command answers ` + "`unauthorized`" + `. Never ask for, print, or write a value, a password
or the admin passphrase.
`

func files() []file {
	return []file{
		{rel: "AGENTS.md", block: Instructions},
		{rel: "CLAUDE.md", block: "@AGENTS.md\n", skipIf: importsAgents},
		{rel: filepath.Join(".cursor", "rules", "agentsecrets.mdc"),
			header: "---\ndescription: Use agentsecrets to call APIs with stored credentials without seeing them\nglobs:\nalwaysApply: true\n---\n\n",
			block:  Instructions},
		{rel: filepath.Join(".agent", "workflows", "agentsecrets.md"),
			header: "---\ndescription: Call an API with a stored credential through agentsecrets\n---\n\n",
			block:  Instructions},
	}
}

// importsAgents reports whether CLAUDE.md already imports AGENTS.md outside
// a block of ours.
func importsAgents(b []byte) bool {
	if bytes.Contains(b, []byte(Begin)) {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "@AGENTS.md" {
			return true
		}
	}
	return false
}

func wrap(block string) string { return Begin + "\n" + block + End + "\n" }

// render returns the new content of a file given its current content.
func render(f file, cur []byte, exists bool) ([]byte, string, error) {
	if !exists {
		return []byte(f.header + wrap(f.block)), Created, nil
	}
	if f.skipIf != nil && f.skipIf(cur) {
		return cur, Unchanged, nil
	}
	s := string(cur)
	b, e := strings.Index(s, Begin), strings.Index(s, End)
	switch {
	case b < 0 && e < 0:
		sep := ""
		if s != "" && !strings.HasSuffix(s, "\n") {
			sep = "\n"
		}
		if strings.TrimSpace(s) != "" {
			sep += "\n"
		}
		return []byte(s + sep + wrap(f.block)), Added, nil
	case b < 0 || e < b || strings.Count(s, Begin) != 1 || strings.Count(s, End) != 1:
		return nil, "", fmt.Errorf("its %s/%s markers are unpaired or repeated", Begin, End)
	}
	tail := s[e+len(End):]
	tail = strings.TrimPrefix(tail, "\r")
	tail = strings.TrimPrefix(tail, "\n")
	out := s[:b] + wrap(f.block) + tail
	if out == s {
		return cur, Unchanged, nil
	}
	return []byte(out), Updated, nil
}

type planned struct {
	path   string
	out    []byte
	cur    []byte
	mode   os.FileMode
	exists bool
	action string
}

// Write writes every file under root. It plans all of them first, so a
// file it refuses (broken markers) leaves every file untouched.
func Write(root string) ([]Result, error) {
	var plan []planned
	for _, f := range files() {
		path := filepath.Join(root, f.rel)
		if err := insideRoot(root, path); err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "refusing to write %s: %v", path, err),
				"replace "+f.rel+" with a regular file (or a symlink to one inside the repository), then rerun `agentsecrets init --agent-files`")
		}
		real, cur, mode, exists, err := atomicfile.Read(path)
		if err != nil {
			return nil, errcode.Errorf(errcode.Unavailable, "read %s: %w", path, err)
		}
		out, action, err := render(f, cur, exists)
		if err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "%s: %v", path, err),
				"remove the agentsecrets markers from "+f.rel+" (or the whole block), then rerun `agentsecrets init --agent-files`")
		}
		if !exists {
			mode = 0o644
		}
		plan = append(plan, planned{path: real, out: out, cur: cur, mode: mode, exists: exists, action: action})
	}
	res := make([]Result, 0, len(plan))
	for i, p := range plan {
		if p.action != Unchanged {
			if err := atomicfile.Replace(p.path, p.out, p.mode, p.cur, p.exists); err != nil {
				return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "write %s: %w", p.path, err), "rerun `agentsecrets init --agent-files`")
			}
		}
		res = append(res, Result{Path: filepath.Join(root, files()[i].rel), Action: p.action})
	}
	return res, nil
}

// insideRoot checks that writing path cannot leave root. A cloned
// repository is someone else's content: an AGENTS.md (or .cursor
// directory) that is a symlink to ~/.bashrc would otherwise make an append
// land in a shell startup file. Symlinks that stay inside the repository
// are allowed, because `CLAUDE.md -> AGENTS.md` is a common convention; the
// target must then be a regular file (a FIFO would block the read). For a
// file that does not exist yet, its nearest existing ancestor must resolve
// inside root. The repository is not expected to change under a running
// init, so checking before the write is enough.
func insideRoot(root, path string) error {
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	probe := path
	for {
		if _, err := os.Lstat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return errors.New("no existing ancestor")
		}
		probe = parent
	}
	real, err := filepath.EvalSymlinks(probe)
	if err != nil {
		return fmt.Errorf("it is a dangling or looping symlink: %w", err)
	}
	rel, err := filepath.Rel(realRoot, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return errors.New("it resolves outside the repository")
	}
	if probe == path {
		st, err := os.Stat(real)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return errors.New("it is not a regular file")
		}
	}
	return nil
}
