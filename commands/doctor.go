package commands

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// DoctorCmd checks the installation and says how to fix each problem.
type DoctorCmd struct {
	Repair bool `help:"Repair what the consistency check finds: adopt a stored value the index does not describe (an interrupted write) as a new version, and delete values no name refers to (an interrupted delete)." json:"repair,omitempty"`
}

// Check is one diagnosis.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	// Fix is the command to run when OK is false.
	Fix string `json:"fix,omitempty"`
}

// DoctorResult lists every check; Healthy is true when all passed.
type DoctorResult struct {
	Healthy bool    `json:"healthy"`
	Checks  []Check `json:"checks"`
}

func (c *DoctorCmd) Run(env *Env) (*DoctorResult, error) {
	dirs, err := env.Dirs()
	if err != nil {
		return nil, err
	}
	res := &DoctorResult{Checks: []Check{}}
	add := func(ch Check) { res.Checks = append(res.Checks, ch) }

	st, err := env.Store()
	if err != nil {
		fix := "agentsecrets init"
		if !errors.Is(err, vault.ErrNotInitialised) {
			fix = "move " + dirs.ConfigFile() + " aside and run `agentsecrets init`"
		}
		add(Check{Name: "config", Detail: errcode.Classify(err).Message, Fix: fix})
		return res, nil
	}
	add(Check{Name: "config", OK: true, Detail: fmt.Sprintf("vault %s, backend %s", st.Config.VaultID, st.Config.Backend)})

	for _, ch := range permissionChecks(dirs.All()) {
		add(ch)
	}

	ix, err := st.Index()
	if err != nil {
		add(Check{Name: "index", Detail: errcode.Classify(err).Message,
			Fix: "restore " + dirs.IndexFile() + " from a backup; the values are still in the " + st.Config.Backend + " backend"})
	} else {
		n := 0
		for _, w := range ix.Workspaces {
			for _, p := range w.Projects {
				n += len(p.Secrets)
			}
		}
		add(Check{Name: "index", OK: true, Detail: fmt.Sprintf("revision %d, %d workspaces, %d secrets", ix.Revision, len(ix.Workspaces), n)})
	}
	if temps := vault.StaleTemps(dirs.Data); len(temps) > 0 {
		// Leftovers of an interrupted write; the index itself is intact.
		add(Check{Name: "temp_files", OK: true, Detail: fmt.Sprintf("%d leftover temp file(s) from an interrupted write; the next write removes them", len(temps))})
	}

	add(auditCheck(env, st))
	bc := backendCheck(env, st)
	add(bc)
	if bc.OK && (st.Config.Backend != vault.KindFile || env.hasVaultPassphraseFile()) {
		for _, ch := range c.consistencyChecks(env, st) {
			add(ch)
		}
	}
	return finish(res), nil
}

// auditCheck: the audit log takes records (requests fail without it) and
// its chain holds; the head is shown so it can be compared with one noted
// elsewhere.
func auditCheck(env *Env, st *vault.Store) Check {
	ch := Check{Name: "audit"}
	log := audit.Open(st.Dirs.State, audit.Options{})
	if err := log.Ready(env.ctx()); err != nil {
		ch.Detail = errcode.Classify(err).Message
		ch.Fix = "make " + filepath.Join(st.Dirs.State, "audit.log") + " (and audit.lock) regular files you own, not symlinks or directories, and stop any process holding the lock"
		return ch
	}
	v, err := log.Verify()
	if err != nil {
		ch.Detail = errcode.Classify(err).Message
		ch.Fix = "agentsecrets audit verify"
		return ch
	}
	if !v.OK {
		ch.Detail = fmt.Sprintf("writable, but the chain breaks after %d records (%s)", v.Records, v.Problem.Kind)
		ch.Fix = "agentsecrets audit verify"
		return ch
	}
	ch.OK = true
	ch.Detail = fmt.Sprintf("writable; %d records, chain intact, head %s", v.Records, shortHash(v.Head))
	return ch
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	if h == "" {
		return "(empty)"
	}
	return h
}

// consistencyChecks compare the index with the stored values, and with
// --repair fix what they can (see vault.Store.Repair). Values an
// interrupted write left under journalled keys are reported apart and do
// not make the vault unhealthy: like leftover temp files, the next write
// removes them.
func (c *DoctorCmd) consistencyChecks(env *Env, st *vault.Store) []Check {
	ch := Check{Name: "consistency"}
	describe := func(ps []vault.Problem) string {
		parts := make([]string, 0, len(ps))
		for _, p := range ps {
			parts = append(parts, p.Kind+" "+p.Key)
		}
		return strings.Join(parts, ", ")
	}
	if c.Repair {
		fixed, left, err := st.Repair(env.ctx())
		if err != nil {
			rep := errcode.Classify(err)
			ch.Detail, ch.Fix = rep.Message, rep.Hint
			return []Check{ch}
		}
		if len(left) > 0 {
			ch.Detail = "cannot repair: " + describe(left)
			ch.Fix = "store each missing value again with `agentsecrets secrets set NAME`"
			return []Check{ch}
		}
		ch.OK = true
		ch.Detail = "index and values agree"
		if len(fixed) > 0 {
			ch.Detail += "; repaired " + describe(fixed) + " (a mismatched value was adopted as a new version: set it again if it is not the one you meant; orphaned and leftover values were deleted)"
		}
		return []Check{ch}
	}
	all, err := st.Consistency(env.ctx())
	if err != nil {
		rep := errcode.Classify(err)
		ch.Detail, ch.Fix = rep.Message, rep.Hint
		return []Check{ch}
	}
	var problems, leftovers []vault.Problem
	for _, p := range all {
		if p.Kind == vault.ProblemLeftover {
			leftovers = append(leftovers, p)
		} else {
			problems = append(problems, p)
		}
	}
	var out []Check
	if len(problems) > 0 {
		ch.Detail = describe(problems)
		ch.Fix = "agentsecrets doctor --repair"
		out = append(out, ch)
	} else {
		ch.OK = true
		ch.Detail = "every secret's stored value matches its fingerprint; no orphaned values"
		out = append(out, ch)
	}
	if len(leftovers) > 0 {
		out = append(out, Check{Name: "leftover_values", OK: true,
			Detail: describe(leftovers) + ": left by an interrupted write or delete; the next `secrets set` or `secrets delete` removes them, `agentsecrets doctor --repair` now"})
	}
	return out
}

// Failure ends doctor with check_failed when a check failed, after the
// whole result (every check and its fix) is printed.
func (r *DoctorResult) Failure() errcode.Code {
	if r.Healthy {
		return ""
	}
	return errcode.CheckFailed
}

func finish(res *DoctorResult) *DoctorResult {
	res.Healthy = true
	for _, ch := range res.Checks {
		if !ch.OK {
			res.Healthy = false
		}
	}
	return res
}

func backendCheck(env *Env, st *vault.Store) Check {
	ch := Check{Name: "backend"}
	if st.Config.Backend == vault.KindFile && !env.hasVaultPassphraseFile() {
		// Opening the file vault needs the passphrase; doctor never prompts.
		if _, err := os.Stat(st.Dirs.VaultFile()); err != nil {
			ch.Detail = "vault.enc is missing"
			ch.Fix = "restore " + st.Dirs.VaultFile() + " from a backup"
			return ch
		}
		ch.OK = true
		ch.Detail = "vault.enc present; set AGENTSECRETS_VAULT_PASSPHRASE_FILE to let doctor open it"
		return ch
	}
	if err := st.Probe(env.ctx()); err != nil {
		rep := errcode.Classify(err)
		ch.Detail, ch.Fix = rep.Message, rep.Hint
		return ch
	}
	ch.OK = true
	ch.Detail = st.Config.Backend + " backend answers and holds the vault's fingerprint key"
	return ch
}

// permissionChecks verifies directories are 0700 and files 0600 (Unix only:
// Windows protects the profile directory with ACLs instead).
func permissionChecks(dirs []string) []Check {
	if runtime.GOOS == "windows" {
		return nil
	}
	var bad []string
	var fixes []string
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			bad = append(bad, d+" missing")
			continue
		}
		if fi.Mode().Perm() != 0o700 {
			bad = append(bad, fmt.Sprintf("%s is %o", d, fi.Mode().Perm()))
			fixes = append(fixes, "chmod 700 "+d)
		}
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			p := filepath.Join(d, e.Name())
			if info, err := e.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
				bad = append(bad, fmt.Sprintf("%s is %o", p, info.Mode().Perm()))
				fixes = append(fixes, "chmod 600 "+p)
			}
		}
	}
	if len(bad) > 0 {
		return []Check{{Name: "permissions", Detail: fmt.Sprint(bad), Fix: strings.Join(fixes, " && ")}}
	}
	return []Check{{Name: "permissions", OK: true, Detail: "directories 0700, files 0600"}}
}

func (r *DoctorResult) WriteText(w io.Writer) error {
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "%s %-12s %s\n", mark, c.Name, c.Detail)
		if !c.OK && c.Fix != "" {
			fmt.Fprintf(w, "     fix: %s\n", c.Fix)
		}
	}
	if r.Healthy {
		fmt.Fprintln(w, "healthy")
	} else {
		fmt.Fprintln(w, "problems found")
	}
	return nil
}
