package commands

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// f is the expected value of a command struct's fields after parsing,
// by Go field name (promoted fields of Scope, WorkspaceFlag and Approval
// included). Fields not named are not checked.
type f map[string]any

// parseCases is argv → populated struct for every command path. Each
// command has at least one case; TestParseCoversEveryCommand fails when a
// command is added without one.
var parseCases = []struct {
	argv []string
	want f
}{
	{[]string{"init"}, f{"Backend": "auto", "AgentFiles": false}},
	{[]string{"init", "--backend", "file", "--admin-passphrase-file", "a.pass", "--agent-files"}, f{"Backend": "file", "AdminPassphraseFile": "a.pass", "AgentFiles": true}},
	{[]string{"status", "--workspace", "w", "--project", "p"}, f{"Workspace": "w", "Project": "p"}},
	{[]string{"doctor", "--repair"}, f{"Repair": true}},
	{[]string{"workspace", "create", "acme", "--switch"}, f{"Name": "acme", "Switch": true}},
	{[]string{"workspace", "list"}, f{}},
	{[]string{"workspace", "switch", "acme"}, f{"Name": "acme"}},
	{[]string{"workspace", "allowlist", "add", "api.example.com:8443", "--allow-http", "--allow-private", "--workspace", "w", "--passphrase-file", "p"},
		f{"Target": "api.example.com:8443", "AllowHTTP": true, "AllowPrivate": true, "Workspace": "w", "PassphraseFile": "p"}},
	{[]string{"workspace", "allowlist", "remove", "api.example.com", "--workspace", "w"}, f{"Target": "api.example.com", "Workspace": "w"}},
	{[]string{"workspace", "allowlist", "list"}, f{"Workspace": ""}},
	{[]string{"workspace", "allowlist", "log", "--last", "5"}, f{"Last": 5}},
	{[]string{"workspace", "invite", "bob@example.com", "--role", "reader", "--workspace", "w", "--passphrase-file", "p"},
		f{"Email": "bob@example.com", "Role": "reader", "Workspace": "w", "PassphraseFile": "p"}},
	{[]string{"workspace", "invite", "bob@example.com"}, f{"Email": "bob@example.com", "Role": "member"}},
	{[]string{"workspace", "invites"}, f{}},
	{[]string{"workspace", "join", "acme", "--code", "-"}, f{"Name": "acme", "Code": "-"}},
	{[]string{"workspace", "remove", "bob@example.com", "--workspace", "w"}, f{"Member": "bob@example.com", "Workspace": "w"}},
	{[]string{"workspace", "audit", "--workspace", "w", "--member", "bob@example.com", "--secret", "STRIPE_KEY", "--since", "1h", "--last", "5"},
		f{"Workspace": "w", "Member": "bob@example.com", "Secret": "STRIPE_KEY", "Since": "1h", "Last": 5}},
	{[]string{"workspace", "members", "--workspace", "w", "--verify", "bob@example.com", "--fingerprint", "0a1b 2c3d"},
		f{"Workspace": "w", "Verify": "bob@example.com", "Fingerprint": "0a1b 2c3d"}},
	{[]string{"workspace", "token", "create", "ci", "--role", "reader", "--project", "a", "--project", "b", "--expires", "30d", "--out", "t", "--workspace", "w", "--passphrase-file", "p"},
		f{"Name": "ci", "Role": "reader", "Project": []string{"a", "b"}, "Expires": "30d", "Out": "t", "Workspace": "w", "PassphraseFile": "p"}},
	{[]string{"workspace", "token", "create", "ci", "--role", "member"}, f{"Name": "ci", "Role": "member", "Expires": "90d", "Out": ""}},
	{[]string{"workspace", "token", "list", "--workspace", "w"}, f{"Workspace": "w"}},
	{[]string{"workspace", "token", "revoke", "ci", "--passphrase-file", "p"}, f{"Token": "ci", "PassphraseFile": "p"}},
	{[]string{"broker", "token", "create", "agent", "--project", "w/p", "--project", "w/q", "--workspace", "x", "--out", "t"},
		f{"Name": "agent", "Project": []string{"w/p", "w/q"}, "Workspace": []string{"x"}, "Out": "t"}},
	{[]string{"broker", "token", "list"}, f{}},
	{[]string{"broker", "token", "revoke", "agent"}, f{"Name": "agent"}},
	{[]string{"broker", "status"}, f{}},
	{[]string{"broker", "whoami"}, f{}},
	{[]string{"broker", "migrate", "--passphrase-file", "p"}, f{"PassphraseFile": "p"}},
	{[]string{"broker", "receive", "--passphrase-file", "p"}, f{"PassphraseFile": "p"}},
	{[]string{"project", "create", "web", "--use", "--workspace", "w"}, f{"Name": "web", "Use": true, "Workspace": "w"}},
	{[]string{"project", "list", "--workspace", "w"}, f{"Workspace": "w"}},
	{[]string{"project", "use", "web", "--link"}, f{"Name": "web", "Link": true}},
	{[]string{"project", "delete", "web", "--force"}, f{"Name": "web", "Force": true}},
	{[]string{"secrets", "set", "A", "B", "--from-stdin", "--project", "p"}, f{"Names": []string{"A", "B"}, "FromStdin": true, "FromFile": "", "Project": "p"}},
	{[]string{"secrets", "set", "A", "--from-file", "v.txt"}, f{"Names": []string{"A"}, "FromFile": "v.txt"}},
	{[]string{"secrets", "generate", "TOKEN"}, f{"Name": "TOKEN", "Length": 32, "Charset": "alnum", "Overwrite": false}},
	{[]string{"secrets", "generate", "TOKEN", "--length", "64", "--charset", "hex", "--overwrite"}, f{"Name": "TOKEN", "Length": 64, "Charset": "hex", "Overwrite": true}},
	{[]string{"secrets", "list", "--workspace", "w"}, f{"Workspace": "w", "Project": ""}},
	{[]string{"secrets", "delete", "A", "B"}, f{"Names": []string{"A", "B"}, "Yes": false}},
	{[]string{"secrets", "delete", "A", "--yes"}, f{"Names": []string{"A"}, "Yes": true}},
	{[]string{"secrets", "import", ".env", "--skip-existing"}, f{"Path": ".env", "SkipExisting": true, "AllowPartial": false}},
	{[]string{"secrets", "import", "-", "--allow-partial"}, f{"Path": "-", "AllowPartial": true}},
	{[]string{"secrets", "bind", "KEY", "api.example.com/v1", "--method", "GET", "--method", "POST", "--surface", "header", "--header-name", "X-Api-Key", "--allow-range", "--allow-echo", "--passphrase-file", "p"},
		f{"Name": "KEY", "Target": "api.example.com/v1", "Method": []string{"GET", "POST"}, "Surface": []string{"header"}, "HeaderName": []string{"X-Api-Key"}, "AllowRange": true, "AllowEcho": true, "PassphraseFile": "p"}},
	{[]string{"secrets", "unbind", "KEY", "api.example.com"}, f{"Name": "KEY", "Target": "api.example.com"}},
	{[]string{"secrets", "unbind", "KEY"}, f{"Name": "KEY", "Target": ""}},
	{[]string{"call", "--url", "https://api.example.com/v1", "--bearer", "KEY"},
		f{"URL": "https://api.example.com/v1", "Bearer": "KEY", "Timeout": "30s", "MaxResponse": int64(268435456), "Fail": false}},
	{[]string{"call", "--url", "https://x.test", "--method", "POST", "--request-header", "Accept: text/plain", "--data", "{}", "--basic", "U",
		"--header", "X-Api-Key=K", "--query", "key=Q", "--body-field", "auth.token=B", "--form-field", "secret=F", "--timeout", "5s", "--max-response", "100", "--fail"},
		f{"Method": "POST", "RequestHeader": []string{"Accept: text/plain"}, "Data": "{}", "Basic": "U", "Header": []string{"X-Api-Key=K"}, "Query": []string{"key=Q"},
			"BodyField": []string{"auth.token=B"}, "FormField": []string{"secret=F"}, "Timeout": "5s", "MaxResponse": int64(100), "Fail": true}},
	{[]string{"proxy", "start"}, f{"Port": 8765, "Background": false, "MaxResponse": int64(268435456), "Timeout": "30s"}},
	{[]string{"proxy", "start", "--port", "0", "--background", "--timeout", "1m"}, f{"Port": 0, "Background": true, "Timeout": "1m"}},
	{[]string{"proxy", "stop"}, f{}},
	{[]string{"proxy", "status"}, f{}},
	{[]string{"proxy", "logs"}, f{"Last": 50, "Decision": ""}},
	{[]string{"proxy", "logs", "--last", "0", "--secret", "KEY", "--host", "api.example.com", "--decision", "blocked", "--since", "1h"},
		f{"Last": 0, "Secret": "KEY", "Host": "api.example.com", "Decision": "blocked", "Since": "1h"}},
	{[]string{"audit", "verify"}, f{}},
	{[]string{"version"}, f{}},
	{[]string{"mcp", "serve", "--workspace", "w"}, f{"HTTP": "", "Workspace": "w"}},
	{[]string{"server"}, f{"Listen": "127.0.0.1:8787", "DB": "", "Signup": "closed"}},
	{[]string{"broker", "install", "--user", "alice", "--user", "bob=acme/web", "--dry-run"}, f{"User": []string{"alice", "bob=acme/web"}, "DryRun": true}},
	{[]string{"broker", "uninstall", "--purge"}, f{"Purge": true}},
	{[]string{"broker", "run", "--state", "/s", "--socket", "/r/b.sock", "--user", "alice=acme", "--as", "agentsecrets"},
		f{"State": "/s", "Socket": "/r/b.sock", "User": []string{"alice=acme"}, "As": "agentsecrets"}},
	{[]string{"server", "--listen", "0.0.0.0:443", "--db", "postgres://db/sync", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--signup", "open"},
		f{"Listen": "0.0.0.0:443", "DB": "postgres://db/sync", "TLSCert": "c.pem", "TLSKey": "k.pem", "Signup": "open"}},
	{[]string{"mcp", "install", "--client", "cursor", "--client", "zed", "--print", "--scope", "project"},
		f{"Client": []string{"cursor", "zed"}, "All": false, "Print": true, "Scope": "project"}},
	{[]string{"mcp", "install", "--all"}, f{"All": true, "Scope": "user"}},
	{[]string{"mcp", "uninstall", "--all", "--print"}, f{"All": true, "Print": true, "Scope": "user"}},
	{[]string{"schema", "secrets", "set"}, f{"Command": []string{"secrets", "set"}}},
	{[]string{"completion", "fish"}, f{"Shell": "fish"}},
	{[]string{"env", "--only", "A", "--", "printenv", "A"}, f{"Only": []string{"A"}, "NoMasking": false, "Command": []string{"--", "printenv", "A"}}},
	{[]string{"env", "--only", "A=KEY", "--no-masking", "printenv"}, f{"Only": []string{"A=KEY"}, "NoMasking": true, "Command": []string{"printenv"}}},
	{[]string{"openclaw", "resolve", "--project", "p"}, f{"Project": "p"}},
	{[]string{"status", "--check"}, f{"Check": true}},
	{[]string{"workspace", "create", "acme", "--remote"}, f{"Name": "acme", "Remote": true}},
	{[]string{"workspace", "publish"}, f{"Name": ""}},
	{[]string{"workspace", "publish", "acme"}, f{"Name": "acme"}},
	{[]string{"project", "link"}, f{"Name": "", "AutoPush": false, "NoAutoPush": false}},
	{[]string{"project", "link", "web", "--auto-push", "--workspace", "w"}, f{"Name": "web", "AutoPush": true, "Workspace": "w"}},
	{[]string{"project", "link", "web", "--no-auto-push"}, f{"Name": "web", "NoAutoPush": true}},
	{[]string{"secrets", "diff"}, f{"Names": []string(nil)}},
	{[]string{"secrets", "diff", "A", "B", "--project", "p"}, f{"Names": []string{"A", "B"}, "Project": "p"}},
	{[]string{"secrets", "pull", "A"}, f{"Names": []string{"A"}, "Force": false}},
	{[]string{"secrets", "pull", "--force"}, f{"Names": []string(nil), "Force": true}},
	{[]string{"secrets", "push"}, f{"Names": []string(nil), "Force": false}},
	{[]string{"secrets", "push", "A", "--force"}, f{"Names": []string{"A"}, "Force": true}},
	{[]string{"secrets", "history", "A", "--workspace", "w"}, f{"Name": "A", "Workspace": "w"}},
	{[]string{"account", "create", "--server", "https://sync.example.com", "--email", "ada@example.com", "--password-file", "p", "--recovery-kit-file", "kit.txt", "--device-name", "laptop"},
		f{"Server": "https://sync.example.com", "Email": "ada@example.com", "PasswordFile": "p", "RecoveryKitFile": "kit.txt", "DeviceName": "laptop"}},
	{[]string{"account", "show"}, f{"Check": false}},
	{[]string{"account", "show", "--check"}, f{"Check": true}},
	{[]string{"account", "devices"}, f{"Revoke": ""}},
	{[]string{"account", "devices", "--revoke", "dev1"}, f{"Revoke": "dev1"}},
	{[]string{"login", "--server", "http://127.0.0.1:8787", "--email", "ada@example.com", "--password-file", "p", "--account-key-file", "kit.txt", "--device-name", "ci"},
		f{"Server": "http://127.0.0.1:8787", "Email": "ada@example.com", "PasswordFile": "p", "AccountKeyFile": "kit.txt", "DeviceName": "ci"}},
	{[]string{"logout"}, f{"ForgetDevice": false}},
	{[]string{"logout", "--forget-device"}, f{"ForgetDevice": true}},
}

// parseArgs parses argv with the parser Main builds, without running the
// command, and returns the selected command's path and struct, and the
// globals.
func parseArgs(t *testing.T, argv []string) (string, reflect.Value, *CLI) {
	t.Helper()
	env, _ := testEnv(t)
	cli := &CLI{}
	exited := -1
	parser, err := newParser(cli, env, &exited)
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := parser.Parse(argv)
	if err != nil || exited >= 0 {
		t.Fatalf("parse %q: %v (exit %d)", argv, err, exited)
	}
	node := kctx.Selected()
	if node == nil {
		t.Fatalf("parse %q selected no command", argv)
	}
	return commandWords(node.Path()), node.Target, cli
}

// TestParse checks that every case's argv fills the command's struct as
// expected: names, repeated flags, positionals, defaults and enums.
func TestParse(t *testing.T) {
	for _, c := range parseCases {
		t.Run(strings.Join(c.argv, " "), func(t *testing.T) {
			_, target, _ := parseArgs(t, c.argv)
			for name, want := range c.want {
				got := target.FieldByName(name)
				if !got.IsValid() {
					t.Fatalf("%s has no field %s", target.Type(), name)
				}
				if !reflect.DeepEqual(got.Interface(), want) {
					t.Errorf("%s.%s = %#v, want %#v", target.Type(), name, got.Interface(), want)
				}
			}
		})
	}
}

// TestParseGlobals: the global flags land in Globals wherever they are
// given on the line.
func TestParseGlobals(t *testing.T) {
	_, _, cli := parseArgs(t, []string{"--format", "text", "secrets", "list", "--select", "secrets.#.name", "--vault-passphrase-file", "v.pass"})
	want := Globals{Format: "text", Select: "secrets.#.name", VaultPassphraseFile: "v.pass"}
	if cli.Globals != want {
		t.Errorf("globals %+v, want %+v", cli.Globals, want)
	}
	_, _, cli = parseArgs(t, []string{"status", "--json"})
	if !cli.JSON || cli.Format != "auto" {
		t.Errorf("--json: %+v", cli.Globals)
	}
}

// TestParseCoversEveryCommand walks the kong model: every runnable
// command must have a case in parseCases.
func TestParseCoversEveryCommand(t *testing.T) {
	covered := map[string]bool{}
	for _, c := range parseCases {
		path, _, _ := parseArgs(t, c.argv)
		covered[path] = true
	}
	env, _ := testEnv(t)
	exited := -1
	parser, err := newParser(&CLI{}, env, &exited)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		if n.Type == kong.CommandNode && len(n.Children) == 0 && !covered[commandWords(n.Path())] {
			missing = append(missing, commandWords(n.Path()))
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(parser.Model.Node)
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("commands without a parse case in parseCases: %s", strings.Join(missing, ", "))
	}
}
