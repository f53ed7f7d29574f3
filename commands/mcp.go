package commands

// McpCmd groups the MCP integration: registering agentsecrets as an MCP
// server with agent clients (and, in the serve command, being one).
type McpCmd struct {
	Install   McpInstallCmd   `cmd:"" help:"Add agentsecrets to MCP clients' configs (Claude, Cursor, VS Code, Zed, Codex, ...)."`
	Uninstall McpUninstallCmd `cmd:"" help:"Remove agentsecrets from MCP clients' configs, leaving everything else."`
}
