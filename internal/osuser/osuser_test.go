package osuser

import (
	"errors"
	"os/user"
	"reflect"
	"runtime"
	"slices"
	"testing"
)

func TestParseID(t *testing.T) {
	for _, c := range []struct {
		out    string
		user   *user.User
		groups []string
	}{
		{"uid=1000(alice) gid=1000(alice) groups=1000(alice),27(sudo),998(agentsecrets)\n",
			&user.User{Uid: "1000", Gid: "1000", Username: "alice"}, []string{"1000", "27", "998"}},
		{"uid=0(root) gid=0(root) groups=0(root)", &user.User{Uid: "0", Gid: "0", Username: "root"}, []string{"0"}},
		// macOS: the same format, more groups.
		{"uid=501(bob) gid=20(staff) groups=20(staff),12(everyone),61(localaccounts)",
			&user.User{Uid: "501", Gid: "20", Username: "bob"}, []string{"20", "12", "61"}},
		// An id with no entry prints bare.
		{"uid=4242 gid=4242 groups=4242", &user.User{Uid: "4242", Gid: "4242"}, []string{"4242"}},
		{"", nil, nil},
		{"id: 'nosuch': no such user", nil, nil},
		{"uid=x(alice) gid=1(a)", nil, nil},
		{"uid=1(a)", nil, nil},
	} {
		u, groups, ok := parseID(c.out)
		if ok != (c.user != nil) || !reflect.DeepEqual(u, c.user) || !slices.Equal(groups, c.groups) {
			t.Errorf("parseID(%q) = %+v %v %v, want %+v %v", c.out, u, groups, ok, c.user, c.groups)
		}
	}
}

func TestParseGroup(t *testing.T) {
	for _, c := range []struct {
		out  string
		want *user.Group
	}{
		{"agentsecrets:x:998:alice,bob\n", &user.Group{Name: "agentsecrets", Gid: "998"}},
		{"staff:*:20:\n", &user.Group{Name: "staff", Gid: "20"}},
		{"", nil},
		{"broken", nil},
		{"g:x:abc:", nil},
		{":x:1:", nil},
	} {
		if g, ok := parseGetentGroup(c.out); ok != (c.want != nil) || !reflect.DeepEqual(g, c.want) {
			t.Errorf("parseGetentGroup(%q) = %+v %v, want %+v", c.out, g, ok, c.want)
		}
	}
	for _, c := range []struct {
		out  string
		want *user.Group
	}{
		{"PrimaryGroupID: 20\n", &user.Group{Name: "staff", Gid: "20"}},
		{"No such key: PrimaryGroupID", nil},
		{"PrimaryGroupID: ", nil},
		{"PrimaryGroupID: -1", nil},
	} {
		if g, ok := parseDsclGID("staff", c.out); ok != (c.want != nil) || !reflect.DeepEqual(g, c.want) {
			t.Errorf("parseDsclGID(%q) = %+v %v, want %+v", c.out, g, ok, c.want)
		}
	}
}

// TestNameServiceTools runs the system's own tools for an account every
// unix system has, and checks them against os/user, which finds root in
// /etc/passwd with or without cgo.
func TestNameServiceTools(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix name service")
	}
	want, err := user.Lookup("root")
	if err != nil {
		t.Fatal(err)
	}
	u, ok := nsUser("root")
	if !ok || u.Uid != want.Uid || u.Gid != want.Gid || u.Username != "root" {
		t.Fatalf("nsUser(root) = %+v %v, want uid %s gid %s", u, ok, want.Uid, want.Gid)
	}
	if u, ok := nsUser(want.Uid); !ok || u.Username != "root" {
		t.Fatalf("nsUser(%s) = %+v %v, want root", want.Uid, u, ok)
	}
	groups, ok := nsGroupIds("root")
	if !ok || !slices.Contains(groups, want.Gid) {
		t.Fatalf("nsGroupIds(root) = %v %v, want to contain %s", groups, ok, want.Gid)
	}
	g, err := user.LookupGroupId(want.Gid)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := nsGroup(g.Name); !ok || got.Gid != want.Gid {
		t.Fatalf("nsGroup(%s) = %+v %v, want gid %s", g.Name, got, ok, want.Gid)
	}
	for _, bad := range []string{"", "-a", "no-such-user-agentsecrets-test"} {
		if u, ok := nsUser(bad); ok {
			t.Errorf("nsUser(%q) = %+v, want not found", bad, u)
		}
		if g, ok := nsGroup(bad); ok {
			t.Errorf("nsGroup(%q) = %+v, want not found", bad, g)
		}
	}
}

// TestLookupUnknown: a name nobody has stays unknown, with os/user's own
// error type (callers test for it).
func TestLookupUnknown(t *testing.T) {
	const name = "no-such-user-agentsecrets-test"
	if _, err := Lookup(name); !isType[user.UnknownUserError](err) {
		t.Errorf("Lookup = %v, want UnknownUserError", err)
	}
	if _, err := LookupGroup(name); !isType[user.UnknownGroupError](err) {
		t.Errorf("LookupGroup = %v, want UnknownGroupError", err)
	}
	if _, err := LookupId("4000000000"); !isType[user.UnknownUserIdError](err) {
		t.Errorf("LookupId = %v, want UnknownUserIdError", err)
	}
	if u, err := Lookup("root"); err != nil || u.Uid != "0" {
		t.Errorf("Lookup(root) = %+v, %v", u, err)
	}
}

func isType[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}
