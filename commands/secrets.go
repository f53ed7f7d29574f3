package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/crypto"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	agsync "github.com/agentsecrets/agentsecrets/internal/sync"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// SecretsCmd groups secret commands. There is deliberately no get, reveal
// or export: no command prints a value.
type SecretsCmd struct {
	Set      SecretsSetCmd      `cmd:"" help:"Store values: NAME (asked on the terminal), --from-stdin, --from-file, or NAME=VALUE."`
	Generate SecretsGenerateCmd `cmd:"" help:"Store a random value that nobody sees."`
	List     SecretsListCmd     `cmd:"" help:"List secret names and metadata (never values)."`
	Delete   SecretsDeleteCmd   `cmd:"" help:"Delete secrets and their values."`
	Import   SecretsImportCmd   `cmd:"" help:"Import a .env file (values go to the vault, names to the index)."`
	Bind     SecretsBindCmd     `cmd:"" help:"Let a secret be injected into requests to a host (needs the admin passphrase)."`
	Unbind   SecretsUnbindCmd   `cmd:"" help:"Remove a secret's bindings (no approval needed)."`
	Diff     SecretsDiffCmd     `cmd:"" help:"Compare the project with its sync server, per name (versions and keyed fingerprints, never values)."`
	Pull     SecretsPullCmd     `cmd:"" help:"Bring the server's newer versions into the local vault (verified; values never printed)."`
	Push     SecretsPushCmd     `cmd:"" help:"Store local changes on the sync server in one transaction."`
	History  SecretsHistoryCmd  `cmd:"" help:"List a secret's versions on the server (version, author, time)."`
}

// SecretsWriteResult reports per-name outcomes of a write.
type SecretsWriteResult struct {
	Workspace string            `json:"workspace"`
	Project   string            `json:"project"`
	Secrets   []vault.PutResult `json:"secrets"`
	// Push is the push `secrets set` made by itself, in a project linked
	// with --auto-push; PushError why that push failed (the values are
	// stored locally either way).
	Push      *agsync.PushResult `json:"push,omitempty"`
	PushError *errcode.Report    `json:"push_error,omitempty"`
	Notes
}

func (r *SecretsWriteResult) WriteText(w io.Writer) error {
	for _, s := range r.Secrets {
		fmt.Fprintf(w, "%-9s %s (version %d) in %s/%s\n", s.Action, s.Name, s.Version, r.Workspace, r.Project)
	}
	if r.Push != nil {
		fmt.Fprintf(w, "auto-push: Synced %d secrets\n", r.Push.Synced)
	}
	return nil
}

type SecretsSetCmd struct {
	Names     []string `arg:"" name:"names" help:"NAME, or NAME=VALUE (argv is visible to other processes and shell history; prefer the prompt, --from-stdin or --from-file)." json:"names"`
	FromStdin bool     `xor:"source" help:"Read the value of the single NAME from stdin (one trailing newline is dropped)." json:"from_stdin,omitempty"`
	FromFile  string   `xor:"source" placeholder:"PATH" help:"Read the value of the single NAME from a file (one trailing newline is dropped)." json:"from_file,omitempty"`
	Scope
}

func (c *SecretsSetCmd) Run(env *Env) (*SecretsWriteResult, error) {
	res := &SecretsWriteResult{}
	var puts []vault.Put
	var prompts []string
	for _, arg := range c.Names {
		name, value, hasValue := strings.Cut(arg, "=")
		if err := vault.CheckSecretName(name); err != nil {
			return nil, err
		}
		if hasValue {
			if c.FromStdin || c.FromFile != "" {
				return nil, errcode.New(errcode.Usage, "give NAME alone with --from-stdin or --from-file")
			}
			puts = append(puts, vault.Put{Name: name, Value: secret.New([]byte(value)), Source: "set"})
			continue
		}
		prompts = append(prompts, name)
	}
	if len(puts) > 0 {
		res.warn("a value given as NAME=VALUE is visible to other processes and kept in shell history; prefer `agentsecrets secrets set NAME` (prompt), --from-stdin or --from-file")
	}
	if (c.FromStdin || c.FromFile != "") && (len(prompts) != 1 || len(c.Names) != 1) {
		return nil, errcode.New(errcode.Usage, "--from-stdin and --from-file take exactly one NAME")
	}
	if len(prompts) > 0 && !c.FromStdin && c.FromFile == "" {
		if err := unlockBeforePrompt(env, c.Scope); err != nil {
			return nil, err
		}
	}
	for _, name := range prompts {
		v, err := c.readValue(env, name)
		if err != nil {
			return nil, err
		}
		puts = append(puts, vault.Put{Name: name, Value: v, Source: "set"})
	}
	if _, err := writeSecrets(env, c.Scope, puts, vault.Upsert, res); err != nil {
		return nil, err
	}
	autoPush(env, res)
	return res, nil
}

// unlockBeforePrompt checks the scope and opens the file backend (asking
// for its passphrase) before any value is typed: a wrong passphrase or
// project then costs nothing typed.
func unlockBeforePrompt(env *Env, scope Scope) error {
	st, _, _, err := env.openProject(scope)
	if err != nil {
		return err
	}
	if st.Config.Backend != vault.KindFile {
		return nil
	}
	return st.Probe(env.ctx())
}

// readValue reads one value from where --from-stdin, --from-file or the
// prompt say; it is typed from here on.
func (c *SecretsSetCmd) readValue(env *Env, name string) (secret.Value, error) {
	switch {
	case c.FromStdin:
		b, err := io.ReadAll(io.LimitReader(env.IO.In, vault.MaxValueSize+3))
		if err != nil {
			return secret.Value{}, fmt.Errorf("read stdin: %w", err)
		}
		return secret.New(trimNewline(b)), nil
	case c.FromFile != "":
		b, err := env.user().readFile(c.FromFile, vault.MaxValueSize+2)
		if err != nil {
			return secret.Value{}, errcode.WithHint(userFileError("--from-file", c.FromFile, err), "pass the path of a readable file")
		}
		return secret.New(trimNewline(b)), nil
	default:
		v, err := env.IO.Prompt("Value for " + name + " (hidden): ")
		if err != nil {
			return secret.Value{}, errcode.WithHint(fmt.Errorf("cannot ask for the value of %s: %w", name, err),
				"pipe it with `--from-stdin`, or use `--from-file PATH`")
		}
		return secret.New(v), nil
	}
}

// writeSecrets stores puts and wipes their values, stored or not: the vault
// has them now, and the output guard keeps its own copies.
func writeSecrets(env *Env, scope Scope, puts []vault.Put, mode vault.PutMode, res *SecretsWriteResult) (*SecretsWriteResult, error) {
	defer func() {
		for _, p := range puts {
			p.Value.Wipe()
		}
	}()
	st, _, sel, err := env.openProject(scope)
	if err != nil {
		return nil, err
	}
	res.Workspace, res.Project = sel.Workspace, sel.Project
	results, err := st.PutSecrets(env.ctx(), sel.Selection, puts, mode)
	if err != nil {
		return nil, err
	}
	res.Secrets = results
	return res, nil
}

// Charsets for generated values.
var charsets = map[string]string{
	"alnum":     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"alpha":     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
	"numeric":   "0123456789",
	"hex":       "0123456789abcdef",
	"base64url": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	"ascii":     "!#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~",
}

type SecretsGenerateCmd struct {
	Name      string `arg:"" help:"Secret name." json:"name"`
	Length    int    `default:"32" help:"Number of characters (8-4096)." json:"length,omitempty"`
	Charset   string `enum:"alnum,alpha,numeric,hex,base64url,ascii" default:"alnum" help:"Characters to draw from: alnum, alpha, numeric, hex, base64url, ascii (printable symbols too, no quotes or backslash)." json:"charset,omitempty" jsonschema:"enum=alnum,enum=alpha,enum=numeric,enum=hex,enum=base64url,enum=ascii"`
	Overwrite bool   `help:"Replace an existing value (rotation)." json:"overwrite,omitempty"`
	Scope
}

func (c *SecretsGenerateCmd) Run(env *Env) (*SecretsWriteResult, error) {
	if err := vault.CheckSecretName(c.Name); err != nil {
		return nil, err
	}
	if c.Length < 8 || c.Length > 4096 {
		return nil, errcode.Errorf(errcode.Usage, "--length must be between 8 and 4096, got %d", c.Length)
	}
	alphabet, ok := charsets[c.Charset]
	if !ok {
		return nil, errcode.Errorf(errcode.Usage, "unknown --charset %q", c.Charset)
	}
	v, err := crypto.RandomString(alphabet, c.Length)
	if err != nil {
		return nil, err
	}
	mode := vault.CreateOnly
	if c.Overwrite {
		mode = vault.Upsert
	}
	return writeSecrets(env, c.Scope, []vault.Put{{Name: c.Name, Value: secret.New(v), Source: "generate"}}, mode, &SecretsWriteResult{})
}

type SecretsListCmd struct {
	Scope
}

// SecretInfo is one secret's metadata. It has no field that can hold a value.
type SecretInfo struct {
	Name      string    `json:"name"`
	Version   int       `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// No fingerprint: an agent could store guesses under its own names
	// and compare. The index keeps them (salted per secret) for doctor.
	Source   string           `json:"source"`
	Bindings []policy.Binding `json:"bindings"`
	// Releases are the ways a human approved handing the value itself to
	// another process: env, openclaw. Usually empty.
	Releases []string `json:"releases"`
	// RotateUpstream: a member removed from the workspace could read the
	// value; replace it at its provider, then `secrets set` the new one.
	RotateUpstream bool `json:"rotate_upstream,omitempty"`
}

// SecretsListResult lists a project's secrets by name.
type SecretsListResult struct {
	Workspace string       `json:"workspace"`
	Project   string       `json:"project"`
	Secrets   []SecretInfo `json:"secrets"`
}

func (c *SecretsListCmd) Run(env *Env) (*SecretsListResult, error) {
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	// Only the index, and only the selected project of it: listing never
	// opens the backend, so it works with a locked keychain and costs
	// little more than starting the process.
	view, err := st.View()
	if err != nil {
		return nil, err
	}
	sel, err := c.Scope.resolve(env, view.Current())
	if err != nil {
		return nil, err
	}
	if err := needProject(sel); err != nil {
		return nil, err
	}
	secrets, err := view.Project(sel.Selection)
	if err != nil {
		return nil, err
	}
	res := &SecretsListResult{Workspace: sel.Workspace, Project: sel.Project, Secrets: make([]SecretInfo, 0, len(secrets))}
	for _, s := range secrets {
		res.Secrets = append(res.Secrets, SecretInfo{Name: s.Name, Version: s.Version, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt,
			Source: s.Source, Bindings: s.Bindings, Releases: releasesOf(s.Secret), RotateUpstream: s.RotateUpstream})
	}
	return res, nil
}

// AppendJSON encodes the result exactly as encoding/json would, without
// reflection: listing 1,000 secrets must cost little more than process start.
func (r *SecretsListResult) AppendJSON(b []byte) []byte {
	b = append(b, `{"workspace":`...)
	b = appendJSONString(b, r.Workspace)
	b = append(b, `,"project":`...)
	b = appendJSONString(b, r.Project)
	b = append(b, `,"secrets":[`...)
	b = slices.Grow(b, len(r.Secrets)*192)
	// A secret never updated has updated_at == created_at, and an import
	// gives every secret the same time: format each distinct time once.
	var last time.Time
	lastAt, lastEnd := 0, 0
	appendTime := func(t time.Time) {
		if lastEnd > 0 && t == last {
			b = append(b, b[lastAt:lastEnd]...)
			return
		}
		lastAt = len(b)
		b = t.AppendFormat(b, time.RFC3339Nano)
		last, lastEnd = t, len(b)
	}
	for i, s := range r.Secrets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendJSONString(b, s.Name)
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, int64(s.Version), 10)
		b = append(b, `,"created_at":"`...)
		appendTime(s.CreatedAt)
		b = append(b, `","updated_at":"`...)
		appendTime(s.UpdatedAt)
		b = append(b, `","source":`...)
		b = appendJSONString(b, s.Source)
		b = append(b, `,"bindings":`...)
		if len(s.Bindings) == 0 {
			b = append(b, `[]`...)
		} else {
			b = appendMarshal(b, s.Bindings)
		}
		b = append(b, `,"releases":`...)
		if s.Releases == nil {
			b = append(b, `null`...)
		} else {
			b = append(b, '[')
			for i, r := range s.Releases {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, r)
			}
			b = append(b, ']')
		}
		if s.RotateUpstream {
			b = append(b, `,"rotate_upstream":true`...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendJSONString quotes s as encoding/json does with HTML escaping off,
// falling back to it for anything but plain printable ASCII.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return appendMarshal(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendMarshal(b []byte, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

func (r *SecretsListResult) WriteText(w io.Writer) error {
	if len(r.Secrets) == 0 {
		fmt.Fprintf(w, "No secrets in %s/%s. Add one: agentsecrets secrets set NAME\n", r.Workspace, r.Project)
		return nil
	}
	fmt.Fprintf(w, "%s/%s: %s\n", r.Workspace, r.Project, plural(len(r.Secrets), "secret"))
	// The table holds one target per row; what does not fit a column (a
	// re-approval command, release and rotation notices) follows it.
	t := newTable(w)
	fmt.Fprintln(t, "NAME\tVERSION\tUPDATED\tBOUND TO")
	var notes []string
	for _, s := range r.Secrets {
		first := s.Name + "\tv" + strconv.Itoa(s.Version) + "\t" + s.UpdatedAt.Format(time.DateOnly) + "\t"
		if len(s.Bindings) == 0 {
			fmt.Fprintln(t, first+"unbound")
		}
		for i, b := range s.Bindings {
			cells := "\t\t\t"
			if i == 0 {
				cells = first
			}
			target := b.Target().String()
			if b.Suspended() {
				target += " (SUSPENDED)"
				notes = append(notes, s.Name+": the binding to "+b.Target().String()+" was SUSPENDED by the echo tripwire; re-approve:\n    "+
					policy.BindCommand(s.Name, unsuspended(b), r.Workspace, r.Project))
			}
			fmt.Fprintln(t, cells+target)
		}
		if len(s.Releases) > 0 {
			notes = append(notes, s.Name+": VALUE RELEASED to "+strings.Join(s.Releases, ", "))
		}
		if s.RotateUpstream {
			notes = append(notes, s.Name+": ROTATE UPSTREAM (a removed member held it; set a new value)")
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

type SecretsDeleteCmd struct {
	Names []string `arg:"" name:"names" predictor:"secret" help:"Secrets to delete." json:"names"`
	Yes   bool     `help:"Delete without asking. A deleted value cannot be recovered, so without --yes a person confirms on the terminal, and other callers must pass it." json:"yes,omitempty"`
	Scope
}

// SecretsDeleteResult names what was deleted.
type SecretsDeleteResult struct {
	Workspace string   `json:"workspace"`
	Project   string   `json:"project"`
	Deleted   []string `json:"deleted"`
}

func (c *SecretsDeleteCmd) Run(env *Env) (*SecretsDeleteResult, error) {
	for _, n := range c.Names {
		if err := vault.CheckSecretName(n); err != nil {
			return nil, err
		}
	}
	st, ix, sel, err := env.openProject(c.Scope)
	if err != nil {
		return nil, err
	}
	// Unknown names fail before the question: nobody confirms a delete
	// that cannot happen. DeleteSecrets checks again under the lock.
	for _, n := range c.Names {
		if _, err := ix.Secret(sel.Selection, n); err != nil {
			return nil, err
		}
	}
	if !c.Yes {
		if err := confirmDelete(env, sel, c.Names); err != nil {
			return nil, err
		}
	}
	if err := st.DeleteSecrets(env.ctx(), sel.Selection, c.Names); err != nil {
		return nil, err
	}
	return &SecretsDeleteResult{Workspace: sel.Workspace, Project: sel.Project, Deleted: c.Names}, nil
}

// confirmDelete asks the person at the terminal, naming what goes. Without
// a terminal the caller is a script or an agent: it must say --yes.
func confirmDelete(env *Env, sel Selected, names []string) error {
	// The hint names the workspace and project it resolved, so that
	// running it deletes exactly what was asked about.
	again := "agentsecrets secrets delete " + strings.Join(names, " ") + " --workspace " + sel.Workspace + " --project " + sel.Project + " --yes"
	needYes := errcode.WithHint(errcode.New(errcode.Usage, "secrets delete asks for confirmation on a terminal; without one it needs --yes (a deleted value cannot be recovered)"),
		"run `"+again+"`")
	if !env.IO.StdinTTY {
		return needYes
	}
	what := "secret " + names[0]
	if len(names) > 1 {
		what = fmt.Sprintf("%d secrets: %s", len(names), strings.Join(names, ", "))
	}
	prompt := "agentsecrets: delete " + what + "\n  workspace:  " + sel.Workspace + "\n  project:    " + sel.Project +
		"\nA deleted value cannot be recovered. Delete? [y/N] "
	answer, err := env.IO.Prompt(prompt)
	if err != nil {
		return needYes
	}
	switch strings.ToLower(strings.TrimSpace(string(answer))) {
	case "y", "yes":
		return nil
	}
	return errcode.WithHint(errcode.New(errcode.Denied, "secrets delete was not confirmed; nothing was deleted"), "run `"+again+"` to delete without asking")
}

type SecretsBindCmd struct {
	Name    string   `arg:"" predictor:"secret" help:"Secret name." json:"name"`
	Target  string   `arg:"" optional:"" help:"HOST[:PORT][/PATH-PREFIX] the secret may be sent to (or give --release instead)." json:"target,omitempty"`
	Method  []string `help:"Allowed HTTP method (repeatable; default any)." placeholder:"M" sep:"none" json:"method,omitempty"`
	Surface []string `help:"Where the value may be injected: header (default), query, body, form (repeatable)." placeholder:"S" sep:"none" json:"surface,omitempty"`
	// HeaderName pins header names: an agent-chosen one (X-Note) could be
	// stored by the upstream and echoed to a later request.
	HeaderName []string `name:"header-name" placeholder:"H" sep:"none" help:"Header name the value may be sent under besides Authorization, e.g. X-Api-Key (repeatable, any case)." json:"header_name,omitempty"`
	AllowRange bool     `help:"Forward Range/If-Range on requests carrying the value (off: pieces of an echo could reassemble it)." json:"allow_range,omitempty"`
	AllowEcho  bool     `help:"The upstream echoes the value by design (an echo or debug service): keep redacting, but never let the echo tripwire suspend this binding." json:"allow_echo,omitempty"`
	Release    string   `placeholder:"MODE" help:"Instead of a target: let the value itself be released to another process, by 'env' (agentsecrets env -- CMD) or 'openclaw' (agentsecrets openclaw resolve)." json:"release,omitempty" jsonschema:"enum=env,enum=openclaw"`
	Scope
	Approval
}

// SecretsBindResult reports a binding or release change.
type SecretsBindResult struct {
	Workspace string          `json:"workspace"`
	Project   string          `json:"project"`
	Name      string          `json:"name"`
	Binding   *policy.Binding `json:"binding,omitempty"`
	// Release is the mode bound with --release; Releases every mode the
	// secret now has.
	Release  string   `json:"release,omitempty"`
	Releases []string `json:"releases"`
	// Action is added, updated or unchanged.
	Action   string `json:"action"`
	Approved bool   `json:"approved"`
	Notes
}

func (c *SecretsBindCmd) Run(env *Env) (*SecretsBindResult, error) {
	if err := vault.CheckSecretName(c.Name); err != nil {
		return nil, err
	}
	if c.Release != "" {
		if c.Target != "" || len(c.Method) > 0 || len(c.Surface) > 0 || len(c.HeaderName) > 0 || c.AllowRange || c.AllowEcho {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "--release takes no target, --method, --surface, --header-name, --allow-range or --allow-echo"),
				"bind the release and the target in two commands")
		}
		return c.bindRelease(env)
	}
	if c.Target == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "give a target HOST[:PORT][/PATH-PREFIX] or --release env|openclaw"),
			"run `agentsecrets secrets bind --help`")
	}
	t, err := policy.ParseTarget(c.Target)
	if err != nil {
		return nil, err
	}
	b, err := policy.NewBinding(t, c.Method, c.Surface, env.Now())
	if err != nil {
		return nil, err
	}
	if err := b.SetHeaderNames(c.HeaderName); err != nil {
		return nil, err
	}
	b.AllowRange, b.AllowEcho = c.AllowRange, c.AllowEcho
	st, ix, sel, err := env.openProject(c.Scope)
	if err != nil {
		return nil, err
	}
	// Bindings travel to every member of a team workspace: a non-admin's
	// change is refused here, before the passphrase is asked for.
	if err := agsync.CheckBindAllowed(ix, sel.Selection, c.Name, b); err != nil {
		return nil, err
	}
	res := &SecretsBindResult{Workspace: sel.Workspace, Project: sel.Project, Name: c.Name}
	decide := func(ix *vault.Index) (vault.Change, error) {
		s, err := ix.Secret(sel.Selection, c.Name)
		if err != nil {
			return vault.Change{}, err
		}
		old := findBinding(s, t)
		ch := vault.Change{Widens: b.Widens(old), Lines: []string{"binding:    " + b.Describe()}}
		if old != nil {
			ch.Lines = append(ch.Lines, "replacing:  "+old.Describe())
			if old.Suspended() {
				ch.Lines = append(ch.Lines, "lifting:    the echo-tripwire suspension ("+old.SuspendReason+")")
			}
		}
		return ch, nil
	}
	approve := func(ix *vault.Index, ch vault.Change) error {
		return c.Approval.approve(env, ix, sel, "binding "+c.Name+" to "+t.String(), ch.Lines, policy.BindCommand(c.Name, b, sel.Workspace, sel.Project))
	}
	res.Approved, err = st.Widen(env.ctx(), decide, approve, func(ix *vault.Index, approved bool) error {
		s, err := ix.Secret(sel.Selection, c.Name)
		if err != nil {
			return err
		}
		old := findBinding(s, t)
		res.Releases = releasesOf(s)
		switch {
		case old == nil:
			s.Bindings = append(s.Bindings, b)
			res.Action, res.Binding = "added", &b
		case old.SameGrant(b) && !old.Suspended():
			kept := *old
			res.Action, res.Binding = "unchanged", &kept
			return vault.ErrUnchanged
		default:
			if old.Suspended() {
				// The human re-approved: the tripwire's count restarts.
				log, err := broker.ReadEchoLog(st.Dirs)
				if err != nil {
					return err
				}
				log.Forget(sel.Workspace, sel.Project, c.Name, b)
				if err := broker.WriteEchoLog(st.Dirs, log); err != nil {
					return err
				}
			}
			b.CreatedAt = old.CreatedAt
			*old = b
			res.Action, res.Binding = "updated", &b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if w := ix.Workspaces[sel.Workspace]; w != nil && findAllow(w, t.HostPort()) == nil {
		res.warn("%s is not on the allowlist of workspace %s yet; requests stay blocked until a human runs `agentsecrets workspace allowlist add %s`",
			t.HostPort(), sel.Workspace, t.HostPort())
	}
	return res, nil
}

// bindRelease lets a secret's value leave the broker in one mode: the
// widest change there is, so it always needs approval unless already set.
func (c *SecretsBindCmd) bindRelease(env *Env) (*SecretsBindResult, error) {
	mode, err := policy.ParseRelease(c.Release)
	if err != nil {
		return nil, err
	}
	st, _, sel, err := env.openProject(c.Scope)
	if err != nil {
		return nil, err
	}
	res := &SecretsBindResult{Workspace: sel.Workspace, Project: sel.Project, Name: c.Name, Release: mode}
	decide := func(ix *vault.Index) (vault.Change, error) {
		s, err := ix.Secret(sel.Selection, c.Name)
		if err != nil {
			return vault.Change{}, err
		}
		_, widens := policy.AddRelease(s.Releases, mode)
		return vault.Change{Widens: widens, Lines: []string{"release:    " + mode + " (the value itself leaves the broker)"}}, nil
	}
	approve := func(ix *vault.Index, ch vault.Change) error {
		what := fmt.Sprintf("releasing the VALUE of %s/%s/%s to %s", sel.Workspace, sel.Project, c.Name, releaseWhat(mode))
		return c.Approval.approve(env, ix, sel, what, ch.Lines, policy.ReleaseBindCommand(mode, sel.Workspace, sel.Project, c.Name))
	}
	res.Approved, err = st.Widen(env.ctx(), decide, approve, func(ix *vault.Index, approved bool) error {
		s, err := ix.Secret(sel.Selection, c.Name)
		if err != nil {
			return err
		}
		out, added := policy.AddRelease(s.Releases, mode)
		res.Releases = out
		if !added {
			res.Action = "unchanged"
			return vault.ErrUnchanged
		}
		s.Releases = out
		res.Action = "added"
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// releaseWhat says, in the approval prompt, who receives a released value.
func releaseWhat(mode string) string {
	if mode == policy.ReleaseOpenClaw {
		return "OpenClaw (`agentsecrets openclaw resolve` answers with it)"
	}
	return "the environment of programs that `agentsecrets env` starts"
}

// releasesOf is a secret's release modes, never nil.
func releasesOf(s *vault.Secret) []string {
	if s.Releases == nil {
		return []string{}
	}
	return s.Releases
}

// unsuspended is b as a re-approval would store it.
func unsuspended(b policy.Binding) policy.Binding {
	b.SuspendedAt, b.SuspendReason = nil, ""
	return b
}

func findBinding(s *vault.Secret, t policy.Target) *policy.Binding {
	for i := range s.Bindings {
		if s.Bindings[i].Target() == t {
			return &s.Bindings[i]
		}
	}
	return nil
}

type SecretsUnbindCmd struct {
	Name    string `arg:"" predictor:"secret" help:"Secret name." json:"name"`
	Target  string `arg:"" optional:"" help:"HOST[:PORT][/PATH-PREFIX] to unbind (default: every binding; release flags stay)." json:"target,omitempty"`
	Release string `placeholder:"MODE" help:"Instead of bindings: withdraw value release by 'env' or 'openclaw' (no approval needed)." json:"release,omitempty" jsonschema:"enum=env,enum=openclaw"`
	Scope
}

// SecretsUnbindResult lists the removed bindings or release modes.
type SecretsUnbindResult struct {
	Workspace       string           `json:"workspace"`
	Project         string           `json:"project"`
	Name            string           `json:"name"`
	Removed         []policy.Binding `json:"removed"`
	RemovedReleases []string         `json:"removed_releases"`
	// Releases are the modes the secret still has.
	Releases []string `json:"releases"`
}

func (c *SecretsUnbindCmd) Run(env *Env) (*SecretsUnbindResult, error) {
	if err := vault.CheckSecretName(c.Name); err != nil {
		return nil, err
	}
	if c.Release != "" {
		if c.Target != "" {
			return nil, errcode.WithHint(errcode.New(errcode.Usage, "--release takes no target"), "unbind the release and the target in two commands")
		}
		return c.unbindRelease(env)
	}
	var target *policy.Target
	if c.Target != "" {
		t, err := policy.ParseTarget(c.Target)
		if err != nil {
			return nil, err
		}
		target = &t
	}
	return c.update(env, func(s *vault.Secret, res *SecretsUnbindResult) error {
		res.Releases = releasesOf(s)
		kept := []policy.Binding{}
		for _, b := range s.Bindings {
			if target == nil || b.Target() == *target {
				res.Removed = append(res.Removed, b)
			} else {
				kept = append(kept, b)
			}
		}
		if len(res.Removed) == 0 {
			if target == nil {
				return vault.ErrUnchanged
			}
			return errcode.WithHint(errcode.Errorf(errcode.NotFound, "%s is not bound to %s", c.Name, target),
				"run `agentsecrets secrets list` to see bindings")
		}
		s.Bindings = kept
		return nil
	})
}

// update changes the named secret in one index update; change may return
// vault.ErrUnchanged to write nothing.
func (c *SecretsUnbindCmd) update(env *Env, change func(*vault.Secret, *SecretsUnbindResult) error) (*SecretsUnbindResult, error) {
	st, err := env.Store()
	if err != nil {
		return nil, err
	}
	res := &SecretsUnbindResult{Name: c.Name, Removed: []policy.Binding{}, RemovedReleases: []string{}}
	err = st.Update(env.ctx(), func(ix *vault.Index) error {
		sel, _, err := c.Scope.project(env, ix)
		if err != nil {
			return err
		}
		res.Workspace, res.Project = sel.Workspace, sel.Project
		s, err := ix.Secret(sel.Selection, c.Name)
		if err != nil {
			return err
		}
		return change(s, res)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// unbindRelease withdraws one release mode. Narrowing: no approval, and
// withdrawing a mode the secret does not have is a successful no-op.
func (c *SecretsUnbindCmd) unbindRelease(env *Env) (*SecretsUnbindResult, error) {
	mode, err := policy.ParseRelease(c.Release)
	if err != nil {
		return nil, err
	}
	return c.update(env, func(s *vault.Secret, res *SecretsUnbindResult) error {
		out, removed := policy.RemoveRelease(s.Releases, mode)
		res.Releases = out
		if !removed {
			return vault.ErrUnchanged
		}
		res.RemovedReleases = []string{mode}
		if len(out) == 0 {
			out = nil // omitted from the index, as for a secret never released
		}
		s.Releases = out
		return nil
	})
}
