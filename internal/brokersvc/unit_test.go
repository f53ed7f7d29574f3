package brokersvc

import (
	"context"
	"encoding/xml"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

var update = flag.Bool("update", false, "rewrite testdata/ golden files")

func goldenPlan(goos string) Plan {
	p := DefaultPlan(goos)
	p.Clients = []Client{{Name: "alice"}, {Name: "bob", Scopes: []string{"default/web", "acme"}}}
	return p
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/brokersvc -run Golden -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (rerun with -update if intended)\ngot:\n%s", path, got)
	}
}

func TestUnitGolden(t *testing.T) { golden(t, UnitName, UnitText(goldenPlan("linux"))) }

func TestPlistGolden(t *testing.T) {
	golden(t, LaunchLabel+".plist", PlistText(goldenPlan("darwin")))
}

// TestUnitVerify runs systemd's own checker over the unit, with the
// default layout and with test paths (ReadWritePaths instead of
// StateDirectory): any warning fails, since systemd ignores a bad line
// with only a warning and the unit would run unhardened.
func TestUnitVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skipf("systemd-analyze not found: %v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	def := goldenPlan("linux")
	def.Binary = exe // verify checks that ExecStart is executable
	alt := def
	alt.StateDir, alt.SocketDir = "/srv/agentsecrets/state", "/srv/agentsecrets/run"
	for name, p := range map[string]Plan{"default": def, "other dirs": alt} {
		t.Run(name, func(t *testing.T) {
			text := UnitText(p)
			if name == "other dirs" && !strings.Contains(text, "ReadWritePaths=/srv/agentsecrets/state\n") {
				t.Errorf("no ReadWritePaths for a state dir outside /var/lib:\n%s", text)
			}
			path := filepath.Join(t.TempDir(), UnitName)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

// TestPlistParses reads the plist back with encoding/xml (plutil is
// macOS-only) and checks each key launchd needs, including a value that
// needs escaping.
func TestPlistParses(t *testing.T) {
	p := goldenPlan("darwin")
	p.StateDir = "/var/db/a&b<c>" // PlistText escapes; Check would refuse this path
	dict := parsePlist(t, PlistText(p))
	want := map[string]string{
		"Label":     LaunchLabel,
		"RunAtLoad": "true", "KeepAlive": "true", "Umask": "63",
		"StandardErrorPath": "/var/db/a&b<c>/broker.log", "WorkingDirectory": "/var/db/a&b<c>",
		"ProgramArguments": strings.Join(p.RunAsCommand(), "|"),
	}
	for k, v := range want {
		if dict[k] != v {
			t.Errorf("%s = %q, want %q", k, dict[k], v)
		}
	}
	if len(dict) != len(want) {
		t.Errorf("plist has keys %v", dict)
	}
}

// parsePlist flattens a plist dict: strings and integers as text, booleans
// as "true"/"false", an array's strings joined with "|".
func parsePlist(t *testing.T, text string) map[string]string {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(text))
	out := map[string]string{}
	var key string
	var array []string
	inArray := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("plist is not XML: %v", err)
		}
		if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "array" {
			out[key], inArray = strings.Join(array, "|"), false
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "key", "string", "integer":
			var s string
			if err := d.DecodeElement(&s, &se); err != nil {
				t.Fatal(err)
			}
			switch {
			case se.Name.Local == "key":
				key = s
			case inArray:
				array = append(array, s)
			default:
				out[key] = s
			}
		case "true", "false":
			out[key] = se.Name.Local
		case "array":
			inArray, array = true, nil
		}
	}
}

func TestParseClient(t *testing.T) {
	tests := []struct {
		in   string
		want Client
		bad  bool
	}{
		{in: "alice", want: Client{Name: "alice"}},
		{in: "bob=default/web,acme", want: Client{Name: "bob", Scopes: []string{"default/web", "acme"}}},
		{in: "_svc.x-1", want: Client{Name: "_svc.x-1"}},
		{in: "", bad: true},
		{in: "alice bob", bad: true},
		{in: "-rf", bad: true},
		{in: "alice=", bad: true},
		{in: "alice=a/b/c", bad: true},
		{in: "alice=a b", bad: true},
		{in: "alice=%h", bad: true},
		{in: "eve\n--as=root", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseClient(tt.in)
		if tt.bad {
			if errcode.Classify(err).Code != errcode.Usage {
				t.Errorf("ParseClient(%q) = %+v, %v; want a usage error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got.Name != tt.want.Name || !slices.Equal(got.Scopes, tt.want.Scopes) || got.String() != tt.in {
			t.Errorf("ParseClient(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// TestPlanCheck: paths that would need quoting in the unit, plist or
// shell, and an OS without a service design, are refused.
func TestPlanCheck(t *testing.T) {
	bad := map[string]func(*Plan){
		"relative state":    func(p *Plan) { p.StateDir = "var/lib/x" },
		"space in binary":   func(p *Plan) { p.Binary = "/opt/my app/agentsecrets" },
		"percent in socket": func(p *Plan) { p.SocketDir = "/run/%i" },
		"unclean":           func(p *Plan) { p.ServiceFile = "/etc/systemd/../x.service" },
		"bad account":       func(p *Plan) { p.User = "root;x" },
		"windows":           func(p *Plan) { p.OS = "windows" },
	}
	for name, mod := range bad {
		p := goldenPlan("linux")
		mod(&p)
		if err := p.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p := goldenPlan("windows")
	_, err := Install(context.Background(), p, Exec{})
	if !strings.Contains(errcode.Classify(err).Hint, "docs/broker.md#windows") {
		t.Errorf("install on windows: %v", err)
	}
	if p := goldenPlan("linux"); p.Check() != nil {
		t.Errorf("default plan refused: %v", p.Check())
	}
}

// recorder is a Runner that records commands and answers dscl listings:
// dsAccounts cannot run on Linux, so its command lines are checked here.
type recorder struct{ cmds []string }

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := name + " " + strings.Join(args, " ")
	r.cmds = append(r.cmds, line)
	switch line {
	case "dscl . -list /Users UniqueID":
		return []byte("root 0\n_www 70\n_taken 200\nalice 501\n"), nil
	case "dscl . -list /Groups PrimaryGroupID":
		return []byte("wheel 0\n_grp 201\n"), nil
	case "dscl . -read /Groups/_agentsecrets GroupMembership":
		return []byte("GroupMembership: alice bob\n"), nil
	}
	return nil, nil
}

func TestDarwinAccountCommands(t *testing.T) {
	p := goldenPlan("darwin")
	r := &recorder{}
	acc := accountsFor("darwin")
	ctx := context.Background()
	if err := acc.createGroup(ctx, r, p); err != nil {
		t.Fatal(err)
	}
	if err := acc.addMember(ctx, r, p, "alice"); err != nil {
		t.Fatal(err)
	}
	m, err := acc.members(ctx, r, p)
	if err != nil || !slices.Equal(m, []string{"alice", "bob"}) {
		t.Errorf("members = %v, %v", m, err)
	}
	for _, want := range []string{
		"dscl . -create /Groups/_agentsecrets PrimaryGroupID 202", // 200 is a uid, 201 a gid
		"dscl . -create /Groups/_agentsecrets Password *",
		"dseditgroup -o edit -a alice -t user _agentsecrets",
	} {
		if !slices.Contains(r.cmds, want) {
			t.Errorf("no %q in %v", want, r.cmds)
		}
	}
	r.cmds = nil
	// gid 424242 is nobody's uid here, so the uid follows the gid.
	if err := acc.createUser(ctx, r, p, "424242"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"dscl . -create /Users/_agentsecrets UniqueID 424242",
		"dscl . -create /Users/_agentsecrets PrimaryGroupID 424242",
		"dscl . -create /Users/_agentsecrets UserShell /usr/bin/false",
		"dscl . -create /Users/_agentsecrets NFSHomeDirectory /var/db/agentsecrets",
		"dscl . -create /Users/_agentsecrets IsHidden 1",
	} {
		if !slices.Contains(r.cmds, want) {
			t.Errorf("no %q in %v", want, r.cmds)
		}
	}
	if id, ok := lowestFree(200, 203, "a 200\nb 201\nc 202\n"); ok {
		t.Errorf("lowestFree of a full range = %d", id)
	}
}
