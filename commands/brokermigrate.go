package commands

// `broker migrate` (issue 12): the user's local vault moves into the
// broker daemon. The client opens the local vault (as a command would
// with AGENTSECRETS_BROKER=none), sends everything in one bundle on the
// stdin of the hidden daemon command `broker receive` (values travel only
// over the socket, never to output or disk), and deletes the local vault
// only after the daemon has stored and verified every name. Policy the
// bundle carries (allowlist entries, bindings, value releases) widens the
// daemon's policy, so the daemon's own admin approval is asked for.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/agentsecrets/agentsecrets/internal/brokerd"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// maxMigrateBundle bounds the bundle the daemon reads: far above any
// real vault, far below what would hurt the daemon.
const maxMigrateBundle = 64 << 20

// migrateBundle is what moves: names, policy and values. Values are
// []byte (base64 in JSON) and exist only in the two processes' memory and
// on the socket between them.
type migrateBundle struct {
	Workspaces []migrateWorkspace `json:"workspaces"`
}

type migrateWorkspace struct {
	Name      string              `json:"name"`
	Allowlist []policy.AllowEntry `json:"allowlist"`
	Projects  []migrateProject    `json:"projects"`
}

type migrateProject struct {
	Name    string          `json:"name"`
	Secrets []migrateSecret `json:"secrets"`
}

type migrateSecret struct {
	Name     string           `json:"name"`
	Value    []byte           `json:"value"`
	Source   string           `json:"source"`
	Bindings []policy.Binding `json:"bindings"`
	Releases []string         `json:"releases,omitempty"`
	// Gone: the local value is no longer there, because an earlier
	// migration was interrupted while it deleted the local vault. The
	// daemon must already hold the name; nothing is copied.
	Gone bool `json:"gone,omitempty"`
}

func (b *migrateBundle) wipe() {
	for _, w := range b.Workspaces {
		for _, p := range w.Projects {
			for _, s := range p.Secrets {
				clear(s.Value)
			}
		}
	}
}

// MigratedSecret is one secret the daemon now holds: names only.
type MigratedSecret struct {
	Workspace string `json:"workspace"`
	Project   string `json:"project"`
	Name      string `json:"name"`
	Version   int    `json:"version"`
	// Action is created, unchanged (a re-run: the daemon already held
	// this value) or finished (an interrupted migration had copied it, and
	// this run deleted what was left of it locally).
	Action string `json:"action"`
}

// BrokerReceiveResult is the daemon's account of a bundle: every secret,
// and the policy entries it added.
type BrokerReceiveResult struct {
	Secrets        []MigratedSecret `json:"secrets"`
	AllowlistAdded int              `json:"allowlist_added"`
	BindingsAdded  int              `json:"bindings_added"`
	ReleasesAdded  int              `json:"releases_added"`
	Approved       bool             `json:"approved"`
}

type BrokerReceiveCmd struct {
	Approval
}

func (c *BrokerReceiveCmd) Run(env *Env) (*BrokerReceiveResult, error) {
	client, err := brokerClient(env, "broker receive")
	if err != nil {
		return nil, err
	}
	if client.Token != "" {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Denied, "a client using broker token %s cannot migrate a vault", client.Token),
			"the user runs `agentsecrets broker migrate` without "+brokerd.EnvTokenFile)
	}
	raw, err := io.ReadAll(io.LimitReader(env.IO.In, maxMigrateBundle+1))
	if err != nil {
		return nil, errcode.Errorf(errcode.Unavailable, "read the migration bundle: %v", err)
	}
	defer clear(raw)
	if len(raw) > maxMigrateBundle {
		return nil, errcode.New(errcode.TooLarge, "the migration bundle is larger than 64 MiB")
	}
	var b migrateBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, errcode.New(errcode.Usage, "the migration bundle is malformed")
	}
	defer b.wipe()
	for _, w := range b.Workspaces {
		if err := vault.CheckSpaceName("workspace", w.Name); err != nil {
			return nil, err
		}
		if len(w.Allowlist) > 0 {
			if err := env.limits.allow(vault.Selection{Workspace: w.Name}); err != nil {
				return nil, err
			}
		}
		for _, p := range w.Projects {
			if err := vault.CheckSpaceName("project", p.Name); err != nil {
				return nil, err
			}
			if err := env.limits.allow(vault.Selection{Workspace: w.Name, Project: p.Name}); err != nil {
				return nil, err
			}
		}
	}
	st, err := env.Store()
	if errors.Is(err, vault.ErrNotInitialised) {
		return nil, errcode.WithHint(errcode.New(errcode.NotFound, "the broker's vault is not initialised"),
			"run `agentsecrets init --admin-passphrase-file FILE` (it runs in the broker), then migrate again")
	}
	if err != nil {
		return nil, err
	}
	if err := st.Update(env.ctx(), func(ix *vault.Index) error {
		changed := false
		for _, w := range b.Workspaces {
			ws := ix.Workspaces[w.Name]
			if ws == nil {
				ws = vault.NewWorkspace(env.Now())
				ix.Workspaces[w.Name] = ws
				changed = true
			}
			for _, p := range w.Projects {
				if ws.Projects[p.Name] == nil {
					ws.Projects[p.Name] = vault.NewProject(env.Now())
					changed = true
				}
			}
		}
		if !changed {
			return vault.ErrUnchanged
		}
		return nil
	}); err != nil {
		return nil, err
	}
	res := &BrokerReceiveResult{Secrets: []MigratedSecret{}}
	for _, w := range b.Workspaces {
		for _, p := range w.Projects {
			sel := vault.Selection{Workspace: w.Name, Project: p.Name}
			got, err := receiveValues(env, st, sel, p.Secrets)
			if err != nil {
				return nil, err
			}
			res.Secrets = append(res.Secrets, got...)
		}
		approved, err := receivePolicy(env, st, c.Approval, w, res)
		if err != nil {
			return nil, err
		}
		res.Approved = res.Approved || approved
	}
	if err := verifyReceived(env, st, &b); err != nil {
		return nil, err
	}
	return res, nil
}

// receiveValues stores one project's values. A name the daemon already
// holds with the same value is left alone (a re-run); with another value
// it is a conflict, and nothing of the project is written.
func receiveValues(env *Env, st *vault.Store, sel vault.Selection, secrets []migrateSecret) ([]MigratedSecret, error) {
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	var puts []vault.Put
	var out []MigratedSecret
	for _, s := range secrets {
		if s.Gone {
			cur, err := ix.Secret(sel, s.Name)
			if err != nil {
				return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "the local value of %s/%s/%s is gone and the broker does not hold it", sel.Workspace, sel.Project, s.Name),
					"store it again through the broker (`agentsecrets secrets set "+s.Name+" --workspace "+sel.Workspace+" --project "+sel.Project+"`), delete it locally, then migrate again")
			}
			out = append(out, MigratedSecret{Workspace: sel.Workspace, Project: sel.Project, Name: s.Name, Version: cur.Version, Action: "finished"})
			continue
		}
		v := secret.New(s.Value)
		if _, err := ix.Secret(sel, s.Name); err == nil {
			cur, err := st.Value(env.ctx(), sel, s.Name)
			if err != nil {
				return nil, err
			}
			same := cur.Equal(v)
			cur.Wipe()
			if !same {
				return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "the broker already holds %s in %s/%s with another value", s.Name, sel.Workspace, sel.Project),
					"decide which value is current: delete one (`agentsecrets secrets delete "+s.Name+" --workspace "+sel.Workspace+" --project "+sel.Project+"` through the broker, or with AGENTSECRETS_BROKER=none locally), then migrate again")
			}
		}
		source := s.Source
		if source == "" {
			source = "import"
		}
		puts = append(puts, vault.Put{Name: s.Name, Value: v, Source: source})
	}
	if len(puts) == 0 {
		return out, nil
	}
	results, err := st.PutSecrets(env.ctx(), sel, puts, vault.Upsert)
	if err != nil {
		return nil, err
	}
	for _, r := range results {
		out = append(out, MigratedSecret{Workspace: sel.Workspace, Project: sel.Project, Name: r.Name, Version: r.Version, Action: r.Action})
	}
	return out, nil
}

// policyChange is what a bundle's workspace adds to the daemon's policy:
// each addition a line of the approval prompt.
type policyChange struct {
	allow    []policy.AllowEntry
	bindings map[vault.Selection]map[string][]policy.Binding
	releases map[vault.Selection]map[string][]string
	lines    []string
	widens   bool
}

// decidePolicy compares one workspace of the bundle with the daemon's
// index. A binding or allowlist entry the daemon holds unchanged is left
// alone; a different one of the same target is replaced.
func decidePolicy(ix *vault.Index, w migrateWorkspace) policyChange {
	ch := policyChange{bindings: map[vault.Selection]map[string][]policy.Binding{}, releases: map[vault.Selection]map[string][]string{}}
	ws := ix.Workspaces[w.Name]
	for _, e := range w.Allowlist {
		i := slices.IndexFunc(ws.Allowlist, func(o policy.AllowEntry) bool { return o.Host == e.Host && o.Port == e.Port })
		if i >= 0 && ws.Allowlist[i].AllowHTTP == e.AllowHTTP && ws.Allowlist[i].AllowPrivate == e.AllowPrivate {
			continue
		}
		ch.allow = append(ch.allow, e)
		ch.widens = ch.widens || i < 0 || e.AllowHTTP && !ws.Allowlist[i].AllowHTTP || e.AllowPrivate && !ws.Allowlist[i].AllowPrivate
		ch.lines = append(ch.lines, fmt.Sprintf("allowlist: %s (http %s, private addresses %s)", e.Host, yesNo(e.AllowHTTP), yesNo(e.AllowPrivate)))
	}
	for _, p := range w.Projects {
		sel := vault.Selection{Workspace: w.Name, Project: p.Name}
		for _, s := range p.Secrets {
			cur, _ := ix.Secret(sel, s.Name)
			var have []policy.Binding
			var released []string
			if cur != nil {
				have, released = cur.Bindings, cur.Releases
			}
			for _, b := range s.Bindings {
				i := slices.IndexFunc(have, func(o policy.Binding) bool { return o.Target() == b.Target() })
				var old *policy.Binding
				if i >= 0 {
					old = &have[i]
				}
				if old != nil && (b.SameGrant(*old) || b.Suspended()) {
					continue
				}
				if ch.bindings[sel] == nil {
					ch.bindings[sel] = map[string][]policy.Binding{}
				}
				ch.bindings[sel][s.Name] = append(ch.bindings[sel][s.Name], b)
				ch.widens = ch.widens || !b.Suspended() && b.Widens(old)
				ch.lines = append(ch.lines, "bind: "+sel.Project+"/"+s.Name+" -> "+b.Describe())
			}
			for _, r := range s.Releases {
				if slices.Contains(released, r) {
					continue
				}
				if ch.releases[sel] == nil {
					ch.releases[sel] = map[string][]string{}
				}
				ch.releases[sel][s.Name] = append(ch.releases[sel][s.Name], r)
				ch.widens = true
				ch.lines = append(ch.lines, "release: "+sel.Project+"/"+s.Name+" as a value to "+r)
			}
		}
	}
	return ch
}

// receivePolicy adds one workspace's policy, approved by the daemon's
// admin passphrase when it widens anything (the vault.Widen protocol).
func receivePolicy(env *Env, st *vault.Store, a Approval, w migrateWorkspace, res *BrokerReceiveResult) (bool, error) {
	decide := func(ix *vault.Index) (vault.Change, error) {
		ch := decidePolicy(ix, w)
		return vault.Change{Widens: ch.widens, Lines: ch.lines}, nil
	}
	approve := func(ix *vault.Index, ch vault.Change) error {
		sel := Selected{Selection: vault.Selection{Workspace: w.Name}, Source: sourceFlag}
		return a.approve(env, ix, sel, "migrating this policy into the broker", ch.Lines, "agentsecrets broker migrate")
	}
	return st.Widen(env.ctx(), decide, approve, func(ix *vault.Index, approved bool) error {
		ch := decidePolicy(ix, w)
		if len(ch.lines) == 0 {
			return vault.ErrUnchanged
		}
		ws := ix.Workspaces[w.Name]
		for _, e := range ch.allow {
			e.AddedAt = env.Now().UTC()
			action := "added"
			if i := slices.IndexFunc(ws.Allowlist, func(o policy.AllowEntry) bool { return o.Host == e.Host && o.Port == e.Port }); i >= 0 {
				ws.Allowlist[i], action = e, "updated"
			} else {
				ws.Allowlist = append(ws.Allowlist, e)
			}
			ws.AllowlistLog = append(ws.AllowlistLog, e.Change(action, approved, env.Now()))
			res.AllowlistAdded++
		}
		for sel, byName := range ch.bindings {
			for name, bs := range byName {
				s, err := ix.Secret(sel, name)
				if err != nil {
					return err
				}
				for _, b := range bs {
					s.Bindings = slices.DeleteFunc(s.Bindings, func(o policy.Binding) bool { return o.Target() == b.Target() })
					s.Bindings = append(s.Bindings, b)
					res.BindingsAdded++
				}
			}
		}
		for sel, byName := range ch.releases {
			for name, rs := range byName {
				s, err := ix.Secret(sel, name)
				if err != nil {
					return err
				}
				s.Releases = append(s.Releases, rs...)
				slices.Sort(s.Releases)
				res.ReleasesAdded += len(rs)
			}
		}
		return nil
	})
}

// verifyReceived reads back what the bundle holds: every value equal,
// and no policy of the bundle missing.
func verifyReceived(env *Env, st *vault.Store, b *migrateBundle) error {
	ix, err := st.Index()
	if err != nil {
		return err
	}
	for _, w := range b.Workspaces {
		if ch := decidePolicy(ix, w); len(ch.lines) > 0 {
			return errcode.Errorf(errcode.Conflict, "workspace %s: the broker's policy changed during the migration (%s)", w.Name, ch.lines[0])
		}
		for _, p := range w.Projects {
			sel := vault.Selection{Workspace: w.Name, Project: p.Name}
			for _, s := range p.Secrets {
				if s.Gone {
					continue // receiveValues found the name
				}
				cur, err := st.Value(env.ctx(), sel, s.Name)
				if err != nil {
					return err
				}
				same := cur.Equal(secret.New(s.Value))
				cur.Wipe()
				if !same {
					return errcode.Errorf(errcode.Conflict, "%s/%s/%s: the broker's value changed during the migration", w.Name, p.Name, s.Name)
				}
			}
		}
	}
	return nil
}

type BrokerMigrateCmd struct {
	Approval
}

// BrokerMigrateResult says what moved (names only) and whether the local
// vault is gone.
type BrokerMigrateResult struct {
	Socket string `json:"socket"`
	BrokerReceiveResult
	// SourceDeleted: the local vault was deleted (values from its backend,
	// then its files). False with no secrets: there was no local vault.
	SourceDeleted bool `json:"source_deleted"`
}

func (c *BrokerMigrateCmd) Run(env *Env) (*BrokerMigrateResult, error) {
	path, err := brokerd.Resolve(env.Getenv)
	if err != nil {
		return nil, err
	}
	if path == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "no broker is configured to migrate into"),
			"set "+brokerd.EnvBroker+"=unix:PATH, or install one (`sudo agentsecrets broker install`); check with `agentsecrets broker status`")
	}
	res := &BrokerMigrateResult{Socket: path, BrokerReceiveResult: BrokerReceiveResult{Secrets: []MigratedSecret{}}}
	st, err := env.Store()
	if errors.Is(err, vault.ErrNotInitialised) {
		return res, nil // nothing here (any more): a re-run after success
	}
	if err != nil {
		return nil, err
	}
	ix, err := st.Index()
	if err != nil {
		return nil, err
	}
	if ix.Account.SignedIn() || len(ix.Teams) > 0 {
		return nil, errcode.WithHint(errcode.New(errcode.Conflict, "this vault is signed in to a sync account; its account and team keys do not move"),
			"sign out (`agentsecrets logout` with "+brokerd.EnvBroker+"=none), migrate, then sign the broker in (`agentsecrets login`)")
	}
	// A file vault whose vault file is gone: an earlier migration was
	// interrupted after deleting it; every value is gone (the re-run
	// finishes the deletion).
	_, verr := os.Stat(st.Dirs.VaultFile())
	fileGone := st.Config.Backend == vault.KindFile && errors.Is(verr, os.ErrNotExist)
	var b migrateBundle
	defer b.wipe()
	var names []string
	for _, wn := range vault.SortedKeys(ix.Workspaces) {
		w := ix.Workspaces[wn]
		if w.Remote != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Conflict, "workspace %s is synced with a server; its keys do not move", wn),
				"sign out first, then pull it into the broker after `agentsecrets login`")
		}
		mw := migrateWorkspace{Name: wn, Allowlist: w.Allowlist}
		for _, pn := range vault.SortedKeys(w.Projects) {
			sel := vault.Selection{Workspace: wn, Project: pn}
			mp := migrateProject{Name: pn}
			for _, sn := range vault.SortedKeys(w.Projects[pn].Secrets) {
				s := w.Projects[pn].Secrets[sn]
				ms := migrateSecret{Name: sn, Source: s.Source, Bindings: s.Bindings, Releases: s.Releases}
				if ms.Value, ms.Gone, err = localValue(env, st, sel, sn, fileGone); err != nil {
					return nil, err
				}
				mp.Secrets = append(mp.Secrets, ms)
				names = append(names, wn+"/"+pn+"/"+sn)
			}
			mw.Projects = append(mw.Projects, mp)
		}
		b.Workspaces = append(b.Workspaces, mw)
	}
	bundle, err := json.Marshal(&b)
	if err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encode the migration bundle: %v", err)
	}
	defer clear(bundle)
	args := []string{"broker", "receive"}
	if c.PassphraseFile != "" {
		args = append(args, "--passphrase-file", c.PassphraseFile)
	}
	if err := brokerJSON(env, path, bytes.NewReader(bundle), &res.BrokerReceiveResult, args...); err != nil {
		return nil, errcode.WithHint(err, errcode.Classify(err).Hint+"; the local vault is untouched")
	}
	// The daemon verified its copy; this checks that it accounted for
	// every name sent before anything here is deleted.
	var got []string
	for _, s := range res.Secrets {
		got = append(got, s.Workspace+"/"+s.Project+"/"+s.Name)
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		return nil, errcode.WithHint(errcode.New(errcode.Internal, "the broker did not confirm every secret; the local vault is untouched"),
			"run `agentsecrets broker migrate` again")
	}
	if err := st.Destroy(env.ctx()); err != nil {
		return nil, errcode.WithHint(err, "everything was copied; delete the local vault by hand (`agentsecrets doctor` with "+brokerd.EnvBroker+"=none shows what is left)")
	}
	res.SourceDeleted = true
	return res, nil
}

// localValue is a copy of one local value for the bundle, or gone: its
// vault file or keychain item was deleted by an interrupted migration.
func localValue(env *Env, st *vault.Store, sel vault.Selection, name string, fileGone bool) ([]byte, bool, error) {
	if fileGone {
		return nil, true, nil
	}
	v, err := st.Value(env.ctx(), sel, name)
	if errors.Is(err, vault.ErrValueMissing) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer v.Wipe()
	return bytes.Clone(v.Reveal()), false, nil
}

func (r *BrokerMigrateResult) WriteText(w io.Writer) error {
	if len(r.Secrets) == 0 && !r.SourceDeleted {
		_, err := fmt.Fprintf(w, "No local vault to migrate: commands use the broker at %s.\n", termEscape(r.Socket))
		return err
	}
	fmt.Fprintf(w, "Moved %d secret(s) into the broker at %s:\n", len(r.Secrets), termEscape(r.Socket))
	for _, s := range r.Secrets {
		fmt.Fprintf(w, "  %s/%s/%s (%s)\n", s.Workspace, s.Project, s.Name, s.Action)
	}
	fmt.Fprintf(w, "Policy added: %d allowlist entries, %d bindings, %d value releases.\n", r.AllowlistAdded, r.BindingsAdded, r.ReleasesAdded)
	if r.SourceDeleted {
		fmt.Fprintln(w, "The local vault was deleted.")
	}
	return nil
}
