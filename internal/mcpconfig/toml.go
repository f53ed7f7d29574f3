package mcpconfig

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Codex keeps its MCP servers in TOML tables ([mcp_servers.NAME]). The
// editor rewrites only the lines of our table, textually, so comments and
// layout elsewhere survive; the TOML decoder is used only to prove that the
// file parses before and after and that nothing but our table changed.

// tomlHeader reports whether l is a table or array-of-tables header line
// (what `^\s*\[` matches). No package-level regexp: every command links
// this package and would compile it at start.
func tomlHeader(l string) bool {
	return strings.HasPrefix(strings.TrimLeft(l, " \t\n\f\r"), "[")
}

// ourHeader matches [mcp_servers.NAME] and its sub-tables
// ([mcp_servers.NAME.env]), with the name bare or quoted.
func ourHeader(table, name string) *regexp.Regexp {
	q := regexp.QuoteMeta
	return regexp.MustCompile(`^\s*\[\s*` + q(table) + `\s*\.\s*(?:` + q(name) + `|"` + q(name) + `"|'` + q(name) + `')\s*(?:\]|\.)`)
}

// tomlDecode parses src into generic maps; the error carries the
// decoder's position, not the file's text.
func tomlDecode(src []byte) (map[string]any, error) {
	m := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(src)).Decode(&m); err != nil {
		if pe, ok := err.(toml.ParseError); ok {
			return nil, &SyntaxError{Line: pe.Position.Line, Col: pe.Position.Col, Msg: "invalid TOML"}
		}
		return nil, &SyntaxError{Line: 0, Col: 0, Msg: "invalid TOML"}
	}
	return m, nil
}

// tomlBlock finds the lines of our table (and its sub-tables): from its
// header to the next header that is not ours. ok is false when absent.
func tomlBlock(lines []string, table, name string) (from, to int, ok bool) {
	ours := ourHeader(table, name)
	from = -1
	for i, l := range lines {
		switch {
		case ours.MatchString(l):
			if from < 0 {
				from = i
			} else if to != i {
				// A second, separate block of ours: refuse rather
				// than guess which one the user meant.
				return 0, 0, false
			}
			to = i + 1
		case from >= 0 && to == i && !tomlHeader(l):
			to = i + 1
		}
	}
	if from < 0 {
		return 0, 0, false
	}
	// Leave blank lines and comments that precede the next table to it.
	for to > from+1 {
		t := strings.TrimSpace(lines[to-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		to--
	}
	return from, to, true
}

func splitLines(src []byte) []string {
	s := string(src)
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// tomlString is a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// renderTable writes [table.name] with string and string-array values in
// the order given.
func renderTable(table, name string, entry Object) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s.%s]\n", table, name)
	for _, f := range entry {
		switch v := f.Value.(type) {
		case string:
			fmt.Fprintf(&b, "%s = %s\n", f.Key, tomlString(v))
		case []string:
			q := make([]string, len(v))
			for i, s := range v {
				q[i] = tomlString(s)
			}
			fmt.Fprintf(&b, "%s = [%s]\n", f.Key, strings.Join(q, ", "))
		default:
			return "", fmt.Errorf("no TOML form for %T", f.Value)
		}
	}
	return b.String(), nil
}

func tomlGet(m map[string]any, table, name string) (any, bool) {
	t, ok := m[table].(map[string]any)
	if !ok {
		return nil, false
	}
	v, ok := t[name]
	return v, ok
}

// tomlComparable normalises a decoded document so that "our table removed"
// and "table of tables left empty" compare equal.
func tomlComparable(m map[string]any, table, name string, want any) map[string]any {
	t, _ := m[table].(map[string]any)
	nt := map[string]any{}
	for k, v := range t {
		nt[k] = v
	}
	if want == nil {
		delete(nt, name)
	} else {
		nt[name] = want
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	if len(nt) == 0 {
		delete(out, table)
	} else {
		out[table] = nt
	}
	return out
}

func tomlGeneric(entry Object) (map[string]any, error) {
	s, err := renderTable("t", "x", entry)
	if err != nil {
		return nil, err
	}
	m, err := tomlDecode([]byte(s))
	if err != nil {
		return nil, err
	}
	v, _ := tomlGet(m, "t", "x")
	return v.(map[string]any), nil
}

// tomlSet returns src with [table.name] replaced by entry.
func tomlSet(src []byte, table, name string, entry Object) ([]byte, bool, error) {
	before, err := tomlDecode(src)
	if err != nil {
		return nil, false, err
	}
	want, err := tomlGeneric(entry)
	if err != nil {
		return nil, false, err
	}
	cur, exists := tomlGet(before, table, name)
	if exists && reflect.DeepEqual(cur, want) {
		return src, false, nil
	}
	text, err := renderTable(table, name, entry)
	if err != nil {
		return nil, false, err
	}
	nl := "\n"
	if bytes.Contains(src, []byte("\r\n")) {
		nl = "\r\n"
		text = strings.ReplaceAll(text, "\n", nl)
	}
	lines := splitLines(src)
	from, to, found := tomlBlock(lines, table, name)
	var out string
	switch {
	case found:
		out = strings.Join(lines[:from], "") + text + strings.Join(lines[to:], "")
		if to < len(lines) && strings.TrimSpace(lines[to]) != "" {
			out = strings.Join(lines[:from], "") + text + nl + strings.Join(lines[to:], "")
		}
	case exists:
		return nil, false, fmt.Errorf("%s.%s is defined in a form this editor does not rewrite (inline or dotted keys)", table, name)
	default:
		body := string(src)
		if body != "" && !strings.HasSuffix(body, "\n") {
			body += nl
		}
		if strings.TrimSpace(body) != "" {
			body += nl
		}
		out = body + text
	}
	after, err := tomlDecode([]byte(out))
	if err != nil {
		return nil, false, fmt.Errorf("internal error: the edited file does not parse (%v)", err)
	}
	if !reflect.DeepEqual(tomlComparable(before, table, name, nil), tomlComparable(after, table, name, nil)) {
		return nil, false, fmt.Errorf("internal error: the edit changed more than [%s.%s]", table, name)
	}
	if got, _ := tomlGet(after, table, name); !reflect.DeepEqual(got, want) {
		return nil, false, fmt.Errorf("internal error: [%s.%s] did not take the new value", table, name)
	}
	return []byte(out), true, nil
}

// tomlRemove returns src without [table.name] (and its sub-tables).
func tomlRemove(src []byte, table, name string) ([]byte, bool, error) {
	before, err := tomlDecode(src)
	if err != nil {
		return nil, false, err
	}
	if _, exists := tomlGet(before, table, name); !exists {
		return src, false, nil
	}
	lines := splitLines(src)
	from, to, found := tomlBlock(lines, table, name)
	if !found {
		return nil, false, fmt.Errorf("%s.%s is defined in a form this editor does not rewrite (inline or dotted keys)", table, name)
	}
	// Drop one blank line that separated our table from what came before.
	if from > 0 && strings.TrimSpace(lines[from-1]) == "" {
		from--
	}
	out := strings.Join(lines[:from], "") + strings.Join(lines[to:], "")
	after, err := tomlDecode([]byte(out))
	if err != nil {
		return nil, false, fmt.Errorf("internal error: the edited file does not parse (%v)", err)
	}
	if !reflect.DeepEqual(tomlComparable(before, table, name, nil), tomlComparable(after, table, name, nil)) {
		return nil, false, fmt.Errorf("internal error: the edit changed more than [%s.%s]", table, name)
	}
	return []byte(out), true, nil
}
