package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestMcpInstallRun(t *testing.T) {
	root, run := fileVault(t)
	exe, err := selfPath()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ := run("", "mcp", "install", "--client", "cursor", "--client", "zed", "--project", "default")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	res := decode(t, out)
	if res["command"] != exe || len(res["args"].([]any)) != 4 {
		t.Errorf("server %v %v", res["command"], res["args"])
	}
	for i, want := range []string{filepath.Join(root, ".cursor", "mcp.json"), filepath.Join(root, ".config", "zed", "settings.json")} {
		c := res["clients"].([]any)[i].(map[string]any)
		if c["path"] != want || c["action"] != "added" || c["entry"] != nil {
			t.Errorf("client %d: %v", i, c)
		}
	}

	// --input feeds the same flags as JSON; --print writes nothing.
	code, out, _ = run(`{"client":["codex"],"print":true}`, "mcp", "install", "--input", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	c := decode(t, out)["clients"].([]any)[0].(map[string]any)
	if c["client"] != "codex" || c["action"] != "added" || c["entry"] == nil {
		t.Errorf("--input --print: %v", c)
	}
	if _, err := os.Stat(filepath.Join(root, ".codex")); !os.IsNotExist(err) {
		t.Error("--print created files")
	}

	for _, args := range [][]string{
		{"mcp", "install"},
		{"mcp", "install", "--client", "emacs"},
		{"mcp", "install", "--all", "--client", "zed"},
		{"mcp", "install", "--client", "zed", "--scope", "global"},
		{"mcp", "install", "--client", "codex", "--scope", "project"},
		{"mcp", "uninstall"},
	} {
		if code, out, _ := run("", args...); code != 2 || errorCode(t, out) != "usage" {
			t.Errorf("%v: exit %d %s", args, code, out)
		}
	}
}

func TestMcpInstallText(t *testing.T) {
	r := &McpInstallResult{Command: "/bin/agentsecrets", Args: []string{"mcp", "serve"}, DryRun: true, Clients: []McpClientResult{
		{Client: "cursor", Action: "added", Path: "/h/.cursor/mcp.json", Entry: "{\n  \"x\": 1\n}\n"},
		{Client: "zed", Action: "skipped", Reason: "not installed"},
	}, Next: []string{"agentsecrets mcp install --all"}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "Server: /bin/agentsecrets mcp serve (dry run: nothing written)\n" +
		"  cursor          added     /h/.cursor/mcp.json\n" +
		"      {\n        \"x\": 1\n      }\n" +
		"  zed             skipped (not installed)\n" +
		"Next: agentsecrets mcp install --all\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant\n%s", b.String(), want)
	}
}
