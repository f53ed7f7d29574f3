package sync

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/secret"
	"github.com/agentsecrets/agentsecrets/internal/syncapi"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// bound returns bindings to hosts (header surface), created at t0.
func bound(hosts ...string) []policy.Binding {
	out := []policy.Binding{}
	for _, h := range hosts {
		out = append(out, policy.Binding{Host: h, Methods: []string{}, Surfaces: []string{"header"}, CreatedAt: t0})
	}
	return out
}

// step is one version of a chain: its author and bindings (nil bindings
// with deleted: a deletion).
type step struct {
	author   string
	bindings []policy.Binding
	deleted  bool
}

// policyTeam is alice (admin), bob (member), carol (reader) and dave, a
// former member the roster no longer lists.
func policyTeam(t *testing.T) (*team, *Roster) {
	tm := newTeam(t, "alice", "bob", "carol", "dave")
	d := detailOf("alice", tm.member("alice", RoleAdmin, "alice"), tm.member("bob", RoleMember, "alice"), tm.member("carol", RoleReader, "alice"))
	r, err := VerifyRoster(d, nil, Party{AccountID: "alice", Keys: tm.ids["alice"].Public()}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return tm, r
}

// sealSteps seals steps as versions from+1… of K, linked to prev.
func sealSteps(t *testing.T, tm *team, pk []byte, from int, prev string, steps []step) []syncapi.SecretVersion {
	t.Helper()
	var out []syncapi.SecretVersion
	for i, s := range steps {
		c := SecretContent{Deleted: true, UpdatedAt: t0}
		if !s.deleted {
			c = SecretContent{Value: secret.New([]byte(fmt.Sprintf("value %d", i))), Bindings: s.bindings, UpdatedAt: t0}
		}
		v := from + i + 1
		env, err := SealSecret(tm.ids[s.author], SecretHeader{SecretRef: ref("K"), Version: v, Prev: prev, AuthorID: s.author, KeyVersion: 1, CreatedAt: t0}, pk, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, syncapi.SecretVersion{Name: "K", Version: v, Envelope: env, AuthorID: s.author, CreatedAt: t0})
		prev = EnvelopeHash(env)
	}
	return out
}

// TestCheckPolicy: in a chain verified as a pull verifies it, a version
// by a non-admin must keep the bindings of the version before it; an
// admin may change them; a reader never signs at all.
func TestCheckPolicy(t *testing.T) {
	tm, r := policyTeam(t)
	stripe, other := bound("api.stripe.com"), bound("evil.example")
	for _, tc := range []struct {
		name  string
		steps []step
		check Check // "" accepted
	}{
		{"admin binds at version 1", []step{{"alice", stripe, false}}, ""},
		{"admin changes bindings", []step{{"alice", stripe, false}, {"alice", other, false}}, ""},
		{"admin removes bindings", []step{{"alice", stripe, false}, {"alice", bound(), false}}, ""},
		{"member keeps bindings", []step{{"alice", stripe, false}, {"bob", bound("api.stripe.com"), false}}, ""},
		{"member keeps bindings in another order", []step{{"alice", bound("a.example", "b.example"), false}, {"bob", bound("b.example", "a.example"), false}}, ""},
		{"member creates without bindings", []step{{"bob", bound(), false}}, ""},
		{"member deletes a bound secret", []step{{"alice", stripe, false}, {"bob", nil, true}}, ""},
		{"member's version 1 with bindings", []step{{"bob", stripe, false}}, CheckPolicy},
		{"member adds a binding", []step{{"alice", stripe, false}, {"bob", bound("api.stripe.com", "evil.example"), false}}, CheckPolicy},
		{"member removes a binding", []step{{"alice", bound("a.example", "b.example"), false}, {"bob", bound("a.example"), false}}, CheckPolicy},
		{"member changes a binding", []step{{"alice", stripe, false}, {"bob", other, false}}, CheckPolicy},
		{"member widens methods", []step{{"alice", []policy.Binding{{Host: "api.stripe.com", Methods: []string{"GET"}, Surfaces: []string{"header"}}}, false},
			{"bob", stripe, false}}, CheckPolicy},
		{"member widens surfaces", []step{{"alice", stripe, false},
			{"bob", []policy.Binding{{Host: "api.stripe.com", Surfaces: []string{"header", "query"}}}, false}}, CheckPolicy},
		{"member re-creates a deleted secret with bindings", []step{{"alice", stripe, false}, {"bob", nil, true}, {"bob", stripe, false}}, CheckPolicy},
		{"member's change after an admin's", []step{{"alice", stripe, false}, {"alice", other, false}, {"bob", stripe, false}}, CheckPolicy},
		{"reader never signs", []step{{"alice", stripe, false}, {"carol", stripe, false}}, CheckRole},
		{"former member's version, then member, then admin", []step{{"dave", stripe, false}, {"bob", other, false}, {"alice", other, false}}, ""},
		{"former member's version, then member alone", []step{{"dave", stripe, false}, {"bob", other, false}}, CheckPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk := key32(t)
			vs := sealSteps(t, tm, pk, 0, "", tc.steps)
			keys := ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: pk}}
			opened, err := VerifyChain(ref("K"), Known{}, len(vs), vs, keys, r.SecretSigners())
			if err == nil {
				err = checkPolicy(ref("K"), noBindings, opened, r.Role)
			}
			if CheckOf(err) != tc.check {
				t.Fatalf("got %v, want check %q", err, tc.check)
			}
			if tc.check == CheckPolicy && (errCode(err) != errcode.Conflict || !strings.Contains(err.Error(), "bob")) {
				t.Fatalf("a policy refusal is a conflict: %v", err)
			}
		})
	}
}

// TestCheckPolicyFromKnown: the first new version compares with what this
// device keeps of the version it verified last: its stored bindings, the
// digest of them once they changed here, or none after a deletion.
func TestCheckPolicyFromKnown(t *testing.T) {
	tm, r := policyTeam(t)
	stripe := bound("api.stripe.com")
	pk := key32(t)
	for _, tc := range []struct {
		name    string
		secret  *vault.Secret
		tomb    *vault.SecretSync
		next    []policy.Binding
		refused bool
	}{
		{"kept bindings", &vault.Secret{Bindings: stripe, Synced: &vault.SecretSync{Version: 1, Bindings: vault.BindingsDigest(stripe)}}, nil, stripe, false},
		{"widened", &vault.Secret{Bindings: stripe, Synced: &vault.SecretSync{Version: 1, Bindings: vault.BindingsDigest(stripe)}}, nil, bound("api.stripe.com", "evil.example"), true},
		{"changed here since, kept", &vault.Secret{Bindings: bound("mine.example"), Synced: &vault.SecretSync{Version: 1, Bindings: vault.BindingsDigest(stripe)}}, nil, stripe, false},
		{"changed here since, widened", &vault.Secret{Bindings: bound("mine.example"), Synced: &vault.SecretSync{Version: 1, Bindings: vault.BindingsDigest(stripe)}}, nil, bound("mine.example"), true},
		{"deleted here", nil, &vault.SecretSync{Version: 1, Bindings: vault.BindingsDigest(stripe)}, stripe, false},
		{"after a deletion", nil, &vault.SecretSync{Version: 1, Deleted: true}, stripe, true},
		{"after a deletion, none", nil, &vault.SecretSync{Version: 1, Deleted: true}, bound(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &vault.Project{Secrets: map[string]*vault.Secret{}, Sync: &vault.ProjectSync{Tombstones: map[string]vault.SecretSync{}}}
			if tc.secret != nil {
				p.Secrets["K"] = tc.secret
			}
			if tc.tomb != nil {
				p.Sync.Tombstones["K"] = *tc.tomb
			}
			known := Known{Version: 1, Hash: EnvelopeHash([]byte("version 1"))}
			vs := sealSteps(t, tm, pk, 1, known.Hash, []step{{"bob", tc.next, false}})
			opened, err := VerifyChain(ref("K"), known, 2, vs, ProjectKeys{Current: 1, ByVersion: map[int][]byte{1: pk}}, r.SecretSigners())
			if err != nil {
				t.Fatal(err)
			}
			err = checkPolicy(ref("K"), knownBase(p, "K", known), opened, r.Role)
			if (CheckOf(err) == CheckPolicy) != tc.refused {
				t.Fatalf("got %v, refused want %v", err, tc.refused)
			}
			// A member's own push is held to the same base.
			if tc.secret != nil {
				st := &state{sel: vault.Selection{Workspace: "acme", Project: testProj}, proj: p, known: map[string]Known{"K": known},
					opened: map[string][]OpenedSecret{}, keys: &Keys{roster: r}}
				local := &vault.Secret{Bindings: tc.next}
				err := st.checkPushBindings("bob", "K", local)
				if (errCode(err) == errcode.Denied) != tc.refused {
					t.Fatalf("push: got %v, refused want %v", err, tc.refused)
				}
				if err := st.checkPushBindings("alice", "K", local); err != nil {
					t.Fatalf("an admin's push: %v", err)
				}
			}
		})
	}
}

// TestCheckPushBindingsOnHead: a forced push builds on the server's head,
// so a member's bindings must be the head's: pushing the old ones over an
// admin's change would undo it.
func TestCheckPushBindingsOnHead(t *testing.T) {
	_, r := policyTeam(t)
	stripe, other := bound("api.stripe.com"), bound("evil.example")
	for _, tc := range []struct {
		name    string
		head    OpenedSecret
		local   []policy.Binding
		refused bool
	}{
		{"the head's bindings", OpenedSecret{Content: SecretContent{Bindings: other}}, other, false},
		{"the bindings before an admin's change", OpenedSecret{Content: SecretContent{Bindings: other}}, stripe, true},
		{"after a deletion, none", OpenedSecret{Content: SecretContent{Deleted: true}}, bound(), false},
		{"after a deletion, some", OpenedSecret{Content: SecretContent{Deleted: true}}, stripe, true},
		{"a vouched head", OpenedSecret{Vouched: true}, stripe, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &vault.Project{Secrets: map[string]*vault.Secret{}, Sync: &vault.ProjectSync{}}
			st := &state{sel: vault.Selection{Workspace: "acme", Project: testProj}, proj: p, known: map[string]Known{},
				opened: map[string][]OpenedSecret{"K": {tc.head}}, keys: &Keys{roster: r}}
			err := st.checkPushBindings("bob", "K", &vault.Secret{Bindings: tc.local})
			if (errCode(err) == errcode.Denied) != tc.refused {
				t.Fatalf("got %v, refused want %v", err, tc.refused)
			}
		})
	}
}

// TestSameBindings: the comparison is canonical: order, list order,
// creation time and a local suspension aside; every grant difference
// counts.
func TestSameBindings(t *testing.T) {
	b := policy.Binding{Host: "api.example", Port: 8443, PathPrefix: "/v1", Methods: []string{"GET", "POST"}, Surfaces: []string{"header", "query"},
		HeaderNames: []string{"X-Api-Key"}, CreatedAt: t0}
	later := t0.Add(1)
	for _, tc := range []struct {
		name string
		edit func(*policy.Binding)
		same bool
	}{
		{"identical", func(*policy.Binding) {}, true},
		{"created later", func(x *policy.Binding) { x.CreatedAt = later }, true},
		{"suspended here", func(x *policy.Binding) { x.SuspendedAt, x.SuspendReason = &later, "echo" }, true},
		{"methods reordered", func(x *policy.Binding) { x.Methods = []string{"POST", "GET"} }, true},
		{"surfaces reordered", func(x *policy.Binding) { x.Surfaces = []string{"query", "header"} }, true},
		{"host", func(x *policy.Binding) { x.Host = "evil.example" }, false},
		{"port", func(x *policy.Binding) { x.Port = 443 }, false},
		{"path prefix", func(x *policy.Binding) { x.PathPrefix = "" }, false},
		{"any method", func(x *policy.Binding) { x.Methods = nil }, false},
		{"a method", func(x *policy.Binding) { x.Methods = append(x.Methods, "DELETE") }, false},
		{"a surface", func(x *policy.Binding) { x.Surfaces = append(x.Surfaces, "body") }, false},
		{"a header name", func(x *policy.Binding) { x.HeaderNames = append(x.HeaderNames, "X-Other") }, false},
		{"range", func(x *policy.Binding) { x.AllowRange = true }, false},
		{"echo", func(x *policy.Binding) { x.AllowEcho = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := b
			c.Methods, c.Surfaces, c.HeaderNames = append([]string{}, b.Methods...), append([]string{}, b.Surfaces...), append([]string{}, b.HeaderNames...)
			tc.edit(&c)
			other := policy.Binding{Host: "z.example", Surfaces: []string{"header"}}
			if got := SameBindings([]policy.Binding{b, other}, []policy.Binding{other, c}); got != tc.same {
				t.Fatalf("SameBindings = %v, want %v", got, tc.same)
			}
		})
	}
	if SameBindings(bound("a.example"), bound("a.example", "a.example")) || !SameBindings(nil, bound()) {
		t.Fatal("length or empty forms compare wrongly")
	}
}

// TestCheckBindAllowed: a bind in a remote workspace is refused early for
// an account this device pinned as a non-admin, and only then.
func TestCheckBindAllowed(t *testing.T) {
	sel := vault.Selection{Workspace: "acme", Project: testProj}
	stripe := bound("api.stripe.com")[0]
	suspended := stripe
	suspended.SuspendedAt, suspended.SuspendReason = &t0, "echo"
	getOnly := stripe
	getOnly.Methods = []string{"GET"}
	for _, tc := range []struct {
		name    string
		remote  bool
		pin     *vault.Pin
		bind    policy.Binding
		refused bool
	}{
		{"local workspace", false, &vault.Pin{}, bound("evil.example")[0], false},
		{"admin", true, &vault.Pin{Admin: true}, bound("evil.example")[0], false},
		{"member, a new target", true, &vault.Pin{}, bound("evil.example")[0], true},
		{"member, another grant of a bound target", true, &vault.Pin{}, getOnly, true},
		{"member lifts a local suspension (the same grant)", true, &vault.Pin{}, stripe, false},
		{"roster never fetched", true, nil, bound("evil.example")[0], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := &vault.Index{Account: &vault.Account{ID: "bob"}, Workspaces: map[string]*vault.Workspace{"acme": {
				Projects: map[string]*vault.Project{testProj: {Secrets: map[string]*vault.Secret{"K": {Bindings: []policy.Binding{suspended}}}}}}}}
			if tc.remote {
				ix.Workspaces["acme"].Remote = &vault.RemoteWorkspace{ID: testWS}
			}
			if tc.pin != nil {
				ix.Team(testWS, "").Pins["bob"] = tc.pin
			}
			err := CheckBindAllowed(ix, sel, "K", tc.bind)
			if (errCode(err) == errcode.Denied) != tc.refused {
				t.Fatalf("got %v, refused want %v", err, tc.refused)
			}
		})
	}
}

func errCode(err error) errcode.Code {
	if err == nil {
		return ""
	}
	return errcode.Classify(err).Code
}
