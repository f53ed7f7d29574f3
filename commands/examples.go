package commands

import (
	"fmt"
	"io"
	"strings"

	"github.com/alecthomas/kong"
)

// examples are a command line or two for each command, by command path
// ("" is the tool itself). `--help` and the man page show them; a test
// parses every one with the real parser, so none goes stale.
var examples = map[string][]string{
	"": {
		"agentsecrets init",
		"agentsecrets call --url https://api.stripe.com/v1/balance --bearer STRIPE_KEY",
	},
	"init":       {"agentsecrets init", "agentsecrets init --backend file --agent-files"},
	"status":     {"agentsecrets status", "agentsecrets status --select current.project"},
	"doctor":     {"agentsecrets doctor", "agentsecrets doctor --repair"},
	"call":       {"agentsecrets call --url https://api.stripe.com/v1/balance --bearer STRIPE_KEY", "agentsecrets call --url https://api.example.com/v1/items --method POST --data '{\"name\":\"x\"}' --header X-Api-Key=EXAMPLE_KEY"},
	"env":        {"agentsecrets env --only DATABASE_URL -- ./migrate.sh", "agentsecrets env --only API_KEY=EXAMPLE_KEY -- npm test"},
	"schema":     {"agentsecrets schema secrets set", "agentsecrets schema"},
	"server":     {"agentsecrets server --listen 127.0.0.1:8787", "agentsecrets server --db postgres://sync@db/agentsecrets --signup open"},
	"login":      {"agentsecrets login --server https://sync.example.com --email ada@example.com"},
	"logout":     {"agentsecrets logout", "agentsecrets logout --forget-device"},
	"completion": {"agentsecrets completion bash > ~/.local/share/bash-completion/completions/agentsecrets", "agentsecrets completion fish > ~/.config/fish/completions/agentsecrets.fish"},
	"version":    {"agentsecrets version", "agentsecrets version --select commit --raw"},

	"workspace create":           {"agentsecrets workspace create acme --switch"},
	"workspace list":             {"agentsecrets workspace list"},
	"workspace switch":           {"agentsecrets workspace switch acme"},
	"workspace allowlist add":    {"agentsecrets workspace allowlist add api.stripe.com", "agentsecrets workspace allowlist add 127.0.0.1:8080 --allow-http --allow-private"},
	"workspace allowlist remove": {"agentsecrets workspace allowlist remove api.stripe.com"},
	"workspace allowlist list":   {"agentsecrets workspace allowlist list"},
	"workspace allowlist log":    {"agentsecrets workspace allowlist log --last 10"},
	"workspace publish":          {"agentsecrets workspace publish acme"},
	"workspace invite":           {"agentsecrets workspace invite bob@example.com --role reader"},
	"workspace invites":          {"agentsecrets workspace invites"},
	"workspace join":             {"agentsecrets workspace join acme --code -"},
	"workspace members":          {"agentsecrets workspace members", "agentsecrets workspace members --verify bob@example.com --fingerprint '0a1b 2c3d'"},
	"workspace remove":           {"agentsecrets workspace remove bob@example.com"},
	"workspace audit":            {"agentsecrets workspace audit --member bob@example.com --since 24h"},
	"workspace token create":     {"agentsecrets workspace token create ci --role reader --project web --expires 30d --out ci.token"},
	"workspace token list":       {"agentsecrets workspace token list"},
	"workspace token revoke":     {"agentsecrets workspace token revoke ci"},

	"project create": {"agentsecrets project create web --use"},
	"project list":   {"agentsecrets project list"},
	"project use":    {"agentsecrets project use web", "agentsecrets project use web --link"},
	"project delete": {"agentsecrets project delete web"},
	"project link":   {"agentsecrets project link web --auto-push"},

	"secrets set":      {"agentsecrets secrets set STRIPE_KEY", "printf %s \"$KEY\" | agentsecrets secrets set STRIPE_KEY --from-stdin"},
	"secrets generate": {"agentsecrets secrets generate WEBHOOK_SECRET --length 64 --charset hex"},
	"secrets list":     {"agentsecrets secrets list", "agentsecrets secrets list --select secrets.#.name"},
	"secrets delete":   {"agentsecrets secrets delete OLD_KEY", "agentsecrets secrets delete OLD_KEY --yes"},
	"secrets import":   {"agentsecrets secrets import .env", "agentsecrets secrets import .env --skip-existing"},
	"secrets bind":     {"agentsecrets secrets bind STRIPE_KEY api.stripe.com/v1", "agentsecrets secrets bind EXAMPLE_KEY api.example.com --surface header --header-name X-Api-Key"},
	"secrets unbind":   {"agentsecrets secrets unbind STRIPE_KEY api.stripe.com"},
	"secrets diff":     {"agentsecrets secrets diff"},
	"secrets pull":     {"agentsecrets secrets pull", "agentsecrets secrets pull STRIPE_KEY --force"},
	"secrets push":     {"agentsecrets secrets push"},
	"secrets history":  {"agentsecrets secrets history STRIPE_KEY"},

	"proxy start":  {"agentsecrets proxy start --background", "agentsecrets proxy start --port 0"},
	"proxy stop":   {"agentsecrets proxy stop"},
	"proxy status": {"agentsecrets proxy status"},
	"proxy logs":   {"agentsecrets proxy logs --last 20", "agentsecrets proxy logs --decision blocked --since 1h"},

	"audit verify": {"agentsecrets audit verify"},

	"mcp serve":     {"agentsecrets mcp serve"},
	"mcp install":   {"agentsecrets mcp install --client cursor", "agentsecrets mcp install --all --print"},
	"mcp uninstall": {"agentsecrets mcp uninstall --all"},

	"openclaw resolve": {"agentsecrets openclaw resolve --project web"},

	"account create":  {"agentsecrets account create --server https://sync.example.com --email ada@example.com"},
	"account show":    {"agentsecrets account show --check"},
	"account devices": {"agentsecrets account devices", "agentsecrets account devices --revoke dev1"},

	"broker install":      {"sudo agentsecrets broker install --user alice", "sudo agentsecrets broker install --user alice --dry-run"},
	"broker uninstall":    {"sudo agentsecrets broker uninstall"},
	"broker run":          {"agentsecrets broker run --state /var/lib/agentsecrets --socket /run/agentsecrets/broker.sock --user alice"},
	"broker status":       {"agentsecrets broker status"},
	"broker whoami":       {"agentsecrets broker whoami"},
	"broker migrate":      {"agentsecrets broker migrate"},
	"broker receive":      {"agentsecrets broker receive"},
	"broker token create": {"agentsecrets broker token create agent --project acme/web --out agent.token"},
	"broker token list":   {"agentsecrets broker token list"},
	"broker token revoke": {"agentsecrets broker token revoke agent"},
}

// helpPrinter is kong's help followed by the command's examples.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	if err := kong.DefaultHelpPrinter(options, ctx); err != nil {
		return err
	}
	path := ""
	if node := ctx.Selected(); node != nil {
		path = commandWords(node.Path())
	}
	return writeExamples(ctx.Stdout, examples[path])
}

func writeExamples(w io.Writer, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\nExamples:\n")
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write examples: %w", err)
	}
	return nil
}

// helpValue is kong's flag help with the default appended, unless the
// help already says it.
func helpValue(value *kong.Value) string {
	help := kong.DefaultHelpValueFormatter(value)
	if !value.HasDefault || value.Default == "" || value.IsBool() || strings.Contains(help, "default") {
		return help
	}
	return help + " (default: " + value.Default + ")"
}
