package sync

import (
	"fmt"
	"slices"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// The policy rule of a remote workspace: bindings (like the allowlist)
// change only by an admin's signature. Secret envelopes are signed by
// admins and members alike, and bindings travel inside them, so without
// this rule a member could widen where a value may be sent and every
// other client would apply it. Each client checks every opened version
// (checkPolicy, on every fetch: diff, pull and push) and a member's own
// client refuses to push such a change (checkPushBindings).

// bindingsBase is what a version's bindings are compared with: the
// bindings of the version before it. known is false when they cannot be
// read (a vouched version by a former member, whose body is not opened).
// digest, when set, is the only form this device kept (vault.SecretSync
// .Bindings of a version it synced and changed locally since).
type bindingsBase struct {
	known    bool
	bindings []policy.Binding
	digest   string
}

// noBindings is the base of version 1 and of the version after a
// deletion: nothing is bound.
var noBindings = bindingsBase{known: true}

func baseOf(bs []policy.Binding) bindingsBase { return bindingsBase{known: true, bindings: bs} }

// same reports whether bs grants exactly what the base does.
func (b bindingsBase) same(bs []policy.Binding) bool {
	if b.digest != "" {
		return vault.BindingsDigest(bs) == b.digest
	}
	return SameBindings(b.bindings, bs)
}

// SameBindings reports whether a and b grant exactly the same, compared
// canonically: in target order, lists sorted, creation time and the
// local echo-tripwire suspension aside (policy.Binding.SameGrant).
func SameBindings(a, b []policy.Binding) bool {
	if len(a) != len(b) {
		return false
	}
	ca, cb := canonicalBindings(a), canonicalBindings(b)
	for i := range ca {
		if !ca[i].SameGrant(cb[i]) {
			return false
		}
	}
	return true
}

func canonicalBindings(bs []policy.Binding) []policy.Binding {
	out := vault.SyncedBindings(bs)
	for i := range out {
		out[i].Methods = sortedCopy(out[i].Methods)
		out[i].Surfaces = sortedCopy(out[i].Surfaces)
		out[i].HeaderNames = sortedCopy(out[i].HeaderNames)
	}
	slices.SortFunc(out, func(x, y policy.Binding) int { return strings.Compare(x.Target().String(), y.Target().String()) })
	return out
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// knownBase is the base of the first version after known: the bindings
// of the version this device verified last, as its index keeps them. A
// stored secret whose bindings did not change since that sync holds
// them; otherwise only their digest is left (a tombstone: none).
func knownBase(p *vault.Project, name string, known Known) bindingsBase {
	if known.Version == 0 {
		return noBindings
	}
	var synced *vault.SecretSync
	s := p.Secrets[name]
	if s != nil && s.Synced != nil {
		synced = s.Synced
	} else if t, ok := p.Sync.Tombstones[name]; ok {
		synced = &t
	}
	switch {
	case synced == nil || synced.Deleted:
		return noBindings
	case s != nil && s.Synced == synced && vault.BindingsDigest(s.Bindings) == synced.Bindings:
		return baseOf(s.Bindings)
	}
	return bindingsBase{known: true, digest: synced.Bindings}
}

// checkPolicy applies the rule to the opened versions of one secret,
// oldest first, from base (the bindings before the first). A version by
// a non-admin must carry the bindings of the version before it; a
// deletion carries none and never widens, so it passes and the version
// after it starts from none. After a vouched version the bindings before
// are unknown: a non-admin's version there passes only when a later
// admin version vouches for the chain (the rotation that re-sealed it),
// else it is refused.
func checkPolicy(ref SecretRef, base bindingsBase, opened []OpenedSecret, role func(accountID string) string) error {
	lastAdmin := -1
	for i, o := range opened {
		if !o.Vouched && role(o.Header.AuthorID) == RoleAdmin {
			lastAdmin = i
		}
	}
	for i, o := range opened {
		switch {
		case o.Vouched:
			base = bindingsBase{}
			continue
		case o.Content.Deleted:
			base = noBindings
			continue
		case role(o.Header.AuthorID) == RoleAdmin:
		case !base.known && i < lastAdmin:
		case !base.known || !base.same(o.Content.Bindings):
			subject := fmt.Sprintf("version %d of %s", o.Header.Version, ref)
			r := role(o.Header.AuthorID)
			if r == "" {
				r = "non-member"
			}
			return refuse(subject, CheckPolicy, fmt.Sprintf("account %s, a %s, changed its bindings; only a workspace admin may", o.Header.AuthorID, r))
		}
		base = baseOf(o.Content.Bindings)
	}
	return nil
}

// ErrBindingsAdminOnly: a non-admin tried to change bindings in a team
// workspace (a bind, or a push of a local change to them).
var ErrBindingsAdminOnly = errcode.New(errcode.Denied, "only a workspace admin can change bindings in a team workspace")

// bindingsDenied names the secret and the way back.
func bindingsDenied(sel vault.Selection, name string) error {
	return errcode.WithHint(fmt.Errorf("%w: secret %s in workspace %s", ErrBindingsAdminOnly, name, sel.Workspace),
		fmt.Sprintf("ask a workspace admin to change it; to undo a change made here, `agentsecrets secrets unbind %s TARGET --workspace %s --project %s` or take the server's version with `agentsecrets secrets pull --force %s`",
			name, sel.Workspace, sel.Project, name))
}

// CheckBindAllowed refuses early, from the index alone (before any
// passphrase), a bind of b in a remote workspace by an account this
// device last verified as a non-admin of it. A bind that grants exactly
// what a binding of the secret already grants passes: it changes nothing
// that syncs (at most it lifts this device's echo-tripwire suspension,
// which is local). With no pin for the account yet (the roster was never
// fetched here) it passes too: the push re-checks from the verified roster.
func CheckBindAllowed(ix *vault.Index, sel vault.Selection, name string, b policy.Binding) error {
	w := ix.Workspaces[sel.Workspace]
	if w == nil || w.Remote == nil || ix.Account == nil {
		return nil
	}
	t := ix.Teams[w.Remote.ID]
	if t == nil {
		return nil
	}
	p := t.Pins[ix.Account.ID]
	if p == nil || p.Admin {
		return nil
	}
	if s, err := ix.Secret(sel, name); err == nil {
		for _, old := range s.Bindings {
			if old.SameGrant(b) {
				return nil
			}
		}
	}
	return bindingsDenied(sel, name)
}

// checkPushBindings refuses a non-admin's push of name whose local
// bindings differ from those of the version the push builds on.
func (s *state) checkPushBindings(accountID, name string, local *vault.Secret) error {
	if s.keys == nil || s.keys.roster.Role(accountID) == RoleAdmin {
		return nil
	}
	base := knownBase(s.proj, name, s.known[name])
	if vs := s.opened[name]; len(vs) > 0 {
		h := vs[len(vs)-1]
		switch {
		case h.Vouched:
			base = bindingsBase{}
		case h.Content.Deleted:
			base = noBindings
		default:
			base = baseOf(h.Content.Bindings)
		}
	}
	if !base.known || !base.same(local.Bindings) {
		return bindingsDenied(s.sel, name)
	}
	return nil
}
