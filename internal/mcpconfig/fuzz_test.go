package mcpconfig

import (
	"bytes"
	"testing"
)

// FuzzJSONSet: for any file, the editor either refuses it or produces a
// file that parses, already holds the entry (a second install changes
// nothing) and loses it again on uninstall; it never panics.
func FuzzJSONSet(f *testing.F) {
	for _, s := range []string{"", "{}", `{"mcpServers":{"a":1}}`, "{\n  // c\n  \"mcpServers\": {\n    \"a\": {}, /* x */\n  },\n}\n",
		"{ mcp: { servers: { demo: {command: 'x'} } } }", `{"mcpServers": {"agentsecrets": {"command": "/old"}}}`, "\xef\xbb\xbf{}", `{"a":[1,2,{"b":null}]}`} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, src []byte, dialect uint8) {
		d := Dialect(dialect % 3)
		path := []string{"mcpServers", ServerName}
		out, _, err := jsonSet(src, d, path, testEntry)
		if err != nil {
			return
		}
		again, changed, err := jsonSet(out, d, path, testEntry)
		if err != nil || changed || !bytes.Equal(again, out) {
			t.Fatalf("second install: changed=%v err=%v\n%q", changed, err, out)
		}
		if _, changed, err := jsonRemove(out, d, path); err != nil || !changed {
			t.Fatalf("uninstall: changed=%v err=%v\n%q", changed, err, out)
		}
	})
}

// FuzzTOMLSet is FuzzJSONSet for Codex's TOML.
func FuzzTOMLSet(f *testing.F) {
	for _, s := range []string{"", "a = 1\n", "[mcp_servers.x]\ncommand = \"y\"\n", "[mcp_servers.agentsecrets]\ncommand = \"/old\"\n[z]\n", "# c\n[[arr]]\nk = 1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		out, _, err := tomlSet(src, "mcp_servers", ServerName, testEntry)
		if err != nil {
			return
		}
		if _, changed, err := tomlSet(out, "mcp_servers", ServerName, testEntry); err != nil || changed {
			t.Fatalf("second install: changed=%v err=%v\n%q", changed, err, out)
		}
		if _, changed, err := tomlRemove(out, "mcp_servers", ServerName); err != nil || !changed {
			t.Fatalf("uninstall: changed=%v err=%v\n%q", changed, err, out)
		}
	})
}
