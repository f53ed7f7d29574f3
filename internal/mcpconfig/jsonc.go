package mcpconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// Dialect is how much beyond RFC 8259 a client's config parser accepts. The
// editor accepts exactly that much: a strict-JSON client would fail to load
// a file with comments, so such a file is refused rather than "fixed".
type Dialect int

const (
	// JSON is strict RFC 8259.
	JSON Dialect = iota
	// JSONC adds // and /* */ comments and trailing commas (VS Code, Zed).
	JSONC
	// JSON5 further allows unquoted identifier keys (OpenClaw). Other JSON5
	// forms (single quotes, hex numbers, Infinity) are refused.
	JSON5
)

func (d Dialect) String() string {
	switch d {
	case JSONC:
		return "JSON with comments"
	case JSON5:
		return "JSON5"
	}
	return "JSON"
}

// node is one parsed value with its byte span in the source, so an edit
// can splice text and leave every other byte (order, comments, spacing)
// as it was.
type node struct {
	kind       byte // o(bject) a(rray) s(tring) n(umber) t(rue) f(alse) z (null)
	start, end int
	members    []member
	elems      []*node
	str        string
}

type member struct {
	key      string
	keyStart int
	value    *node
	comma    int // offset of the comma after the value, or -1
}

// SyntaxError says where a config file stops being parseable. It carries
// a position, never the file's text: a config may hold other servers'
// credentials.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

type parser struct {
	src []byte
	pos int
	d   Dialect
}

func (p *parser) fail(format string, args ...any) error {
	line, col := 1, 1
	for _, c := range p.src[:min(p.pos, len(p.src))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &SyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

// parseDoc parses a whole file whose top level must be an object. An
// empty (or whitespace-only) file yields nil, nil.
func parseDoc(src []byte, d Dialect) (*node, error) {
	p := &parser{src: src, d: d}
	if bytes.HasPrefix(src, []byte("\xef\xbb\xbf")) {
		p.pos = 3
	}
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.pos == len(src) {
		return nil, nil
	}
	if src[p.pos] != '{' {
		return nil, p.fail("the top level is not an object")
	}
	root, err := p.value(0)
	if err != nil {
		return nil, err
	}
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.pos != len(src) {
		return nil, p.fail("unexpected text after the top-level object")
	}
	return root, nil
}

// space skips whitespace and, where the dialect allows them, comments.
func (p *parser) space() error {
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '/' && p.d >= JSONC && p.pos+1 < len(p.src) && p.src[p.pos+1] == '/':
			for p.pos < len(p.src) && p.src[p.pos] != '\n' {
				p.pos++
			}
		case c == '/' && p.d >= JSONC && p.pos+1 < len(p.src) && p.src[p.pos+1] == '*':
			end := bytes.Index(p.src[p.pos+2:], []byte("*/"))
			if end < 0 {
				return p.fail("unterminated comment")
			}
			p.pos += 2 + end + 2
		case c == '/':
			return p.fail("comments are not allowed in %s", p.d)
		default:
			return nil
		}
	}
	return nil
}

const maxDepth = 200

func (p *parser) value(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	if p.pos >= len(p.src) {
		return nil, p.fail("unexpected end of file")
	}
	start := p.pos
	switch c := p.src[p.pos]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.string()
		if err != nil {
			return nil, err
		}
		return &node{kind: 's', start: start, end: p.pos, str: s}, nil
	case c == '-' || c >= '0' && c <= '9':
		for p.pos < len(p.src) && strings.IndexByte("+-0123456789.eE", p.src[p.pos]) >= 0 {
			p.pos++
		}
		if !json.Valid(p.src[start:p.pos]) {
			return nil, p.fail("malformed number")
		}
		return &node{kind: 'n', start: start, end: p.pos}, nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.src[p.pos:], []byte(lit)) {
				p.pos += len(lit)
				kind := lit[0]
				if lit == "null" {
					kind = 'z'
				}
				return &node{kind: kind, start: start, end: p.pos}, nil
			}
		}
		return nil, p.fail("unexpected character %q", rune(c))
	}
}

func (p *parser) string() (string, error) {
	start := p.pos
	p.pos++
	for p.pos < len(p.src) {
		switch c := p.src[p.pos]; {
		case c == '\\':
			p.pos += 2
		case c == '"':
			p.pos++
			var s string
			if err := json.Unmarshal(p.src[start:p.pos], &s); err != nil {
				p.pos = start
				return "", p.fail("malformed string")
			}
			return s, nil
		case c < 0x20:
			return "", p.fail("control character in string")
		default:
			p.pos++
		}
	}
	return "", p.fail("unterminated string")
}

func isIdentByte(c byte, first bool) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

func (p *parser) key() (string, error) {
	if p.pos < len(p.src) && p.src[p.pos] == '"' {
		return p.string()
	}
	if p.d == JSON5 && p.pos < len(p.src) && isIdentByte(p.src[p.pos], true) {
		start := p.pos
		for p.pos < len(p.src) && isIdentByte(p.src[p.pos], false) {
			p.pos++
		}
		return string(p.src[start:p.pos]), nil
	}
	return "", p.fail("expected a quoted key")
}

// listEnd consumes a separator or the closing bracket after an element and
// reports whether the list ended. comma gets the separator's offset.
func (p *parser) listEnd(closer byte, comma *int) (bool, error) {
	if err := p.space(); err != nil {
		return false, err
	}
	if p.pos >= len(p.src) {
		return false, p.fail("unexpected end of file")
	}
	switch p.src[p.pos] {
	case closer:
		p.pos++
		return true, nil
	case ',':
		*comma = p.pos
		p.pos++
		if err := p.space(); err != nil {
			return false, err
		}
		if p.pos < len(p.src) && p.src[p.pos] == closer {
			if p.d == JSON {
				return false, p.fail("trailing comma")
			}
			p.pos++
			return true, nil
		}
		return false, nil
	}
	return false, p.fail("expected ',' or '%c'", closer)
}

func (p *parser) object(depth int) (*node, error) {
	n := &node{kind: 'o', start: p.pos}
	p.pos++
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.pos < len(p.src) && p.src[p.pos] == '}' {
		p.pos++
		n.end = p.pos
		return n, nil
	}
	seen := map[string]bool{}
	for {
		m := member{keyStart: p.pos, comma: -1}
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, p.fail("duplicate key %q", k)
		}
		seen[k] = true
		m.key = k
		if err := p.space(); err != nil {
			return nil, err
		}
		if p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.pos++
		if err := p.space(); err != nil {
			return nil, err
		}
		if m.value, err = p.value(depth + 1); err != nil {
			return nil, err
		}
		done, err := p.listEnd('}', &m.comma)
		if err != nil {
			return nil, err
		}
		n.members = append(n.members, m)
		if done {
			n.end = p.pos
			return n, nil
		}
	}
}

func (p *parser) array(depth int) (*node, error) {
	n := &node{kind: 'a', start: p.pos}
	p.pos++
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.pos < len(p.src) && p.src[p.pos] == ']' {
		p.pos++
		n.end = p.pos
		return n, nil
	}
	for {
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		n.elems = append(n.elems, v)
		comma := -1
		done, err := p.listEnd(']', &comma)
		if err != nil {
			return nil, err
		}
		if done {
			n.end = p.pos
			return n, nil
		}
	}
}

func (n *node) get(key string) (int, *member) {
	for i := range n.members {
		if n.members[i].key == key {
			return i, &n.members[i]
		}
	}
	return -1, nil
}

// toAny converts a parsed value to the generic form encoding/json decodes
// into (numbers as json.Number), for comparisons.
func (n *node) toAny(src []byte) any {
	switch n.kind {
	case 'o':
		m := make(map[string]any, len(n.members))
		for _, mb := range n.members {
			m[mb.key] = mb.value.toAny(src)
		}
		return m
	case 'a':
		a := make([]any, 0, len(n.elems))
		for _, e := range n.elems {
			a = append(a, e.toAny(src))
		}
		return a
	case 's':
		return n.str
	case 'n':
		return json.Number(src[n.start:n.end])
	case 't':
		return true
	case 'f':
		return false
	}
	return nil
}

// Object is a JSON object whose keys keep the order they were given in, so
// the entries we write read the way each client documents them.
type Object []Field

// Field is one key of an Object.
type Field struct {
	Key   string
	Value any
}

// MarshalJSON writes the fields in order.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshal(f.Key, "", "")
		if err != nil {
			return nil, err
		}
		v, err := marshal(f.Value, "", "")
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshal encodes without HTML escaping; prefix and indent as in
// json.MarshalIndent (both empty: compact).
func marshal(v any, prefix, indent string) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if prefix != "" || indent != "" {
		enc.SetIndent(prefix, indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// generic is v as encoding/json would decode it, for comparisons.
func generic(v any) (any, error) {
	b, err := marshal(v, "", "")
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	err = dec.Decode(&out)
	return out, err
}

// lineIndent is the whitespace that starts the line holding pos, and
// whether pos is the first non-blank byte of that line.
func lineIndent(src []byte, pos int) (string, bool) {
	ls := bytes.LastIndexByte(src[:pos], '\n') + 1
	i := ls
	for i < pos && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	return string(src[ls:i]), i == pos
}

// indentUnit guesses one level of the file's indentation from the first
// member of the top-level object; two spaces if the file gives no clue.
func indentUnit(src []byte, root *node) string {
	if root != nil && len(root.members) > 0 {
		if ind, first := lineIndent(src, root.members[0].keyStart); first && ind != "" {
			rootInd, _ := lineIndent(src, root.start)
			if strings.HasPrefix(ind, rootInd) && len(ind) > len(rootInd) {
				return ind[len(rootInd):]
			}
			return ind
		}
	}
	return "  "
}

// multiline reports whether an object's text spans lines; a one-line
// object gets one-line insertions.
func multiline(src []byte, n *node) bool {
	return bytes.IndexByte(src[n.start:n.end], '\n') >= 0
}

// edit is one splice: replace src[from:to] with text.
type edit struct {
	from, to int
	text     string
}

func (e edit) apply(src []byte) []byte {
	text := e.text
	if bytes.Contains(src, []byte("\r\n")) {
		// A Windows-edited file keeps its line endings.
		text = strings.ReplaceAll(text, "\n", "\r\n")
	}
	out := make([]byte, 0, len(src)-(e.to-e.from)+len(text))
	out = append(out, src[:e.from]...)
	out = append(out, text...)
	return append(out, src[e.to:]...)
}

// nest wraps value in objects keyed by path, innermost last.
func nest(path []string, value any) any {
	for i := len(path) - 1; i >= 0; i-- {
		value = Object{{path[i], value}}
	}
	return value
}

// renderMember renders `"key": value` for insertion into obj.
func renderMember(src []byte, obj *node, unit string, key string, value any) (string, bool, error) {
	multi := multiline(src, obj) || len(obj.members) == 0
	var ind string
	if len(obj.members) > 0 {
		ind, _ = lineIndent(src, obj.members[len(obj.members)-1].keyStart)
	} else {
		objInd, _ := lineIndent(src, obj.start)
		ind = objInd + unit
	}
	k, err := marshal(key, "", "")
	if err != nil {
		return "", false, err
	}
	var v []byte
	if multi {
		v, err = marshal(value, ind, unit)
	} else {
		v, err = marshal(value, "", "")
	}
	if err != nil {
		return "", false, err
	}
	if multi {
		return ind + string(k) + ": " + string(v), true, nil
	}
	return string(k) + ": " + string(v), false, nil
}

// insertMember returns the edits that add key: value as the last member
// of obj, in descending offset order so they apply one after another.
func insertMember(src []byte, obj *node, unit, key string, value any) ([]edit, error) {
	text, multi, err := renderMember(src, obj, unit, key, value)
	if err != nil {
		return nil, err
	}
	if len(obj.members) == 0 {
		inner := src[obj.start+1 : obj.end-1]
		objInd, _ := lineIndent(src, obj.start)
		if len(bytes.TrimSpace(inner)) == 0 {
			return []edit{{obj.start + 1, obj.end - 1, "\n" + text + "\n" + objInd}}, nil
		}
		// Only comments inside: keep them after the new member.
		return []edit{{obj.start + 1, obj.start + 1, "\n" + text}}, nil
	}
	last := obj.members[len(obj.members)-1]
	if !multi {
		if last.comma >= 0 {
			return []edit{{last.comma + 1, last.comma + 1, " " + text}}, nil
		}
		return []edit{{last.value.end, last.value.end, ", " + text}}, nil
	}
	// Insert after the rest of the last member's line, so a trailing
	// comment stays with the member it describes.
	at := last.value.end
	if last.comma >= 0 {
		at = last.comma + 1
	}
	for at < len(src) && (src[at] == ' ' || src[at] == '\t') {
		at++
	}
	if bytes.HasPrefix(src[at:], []byte("//")) {
		for at < len(src) && src[at] != '\n' && src[at] != '\r' {
			at++
		}
	} else if bytes.HasPrefix(src[at:], []byte("/*")) {
		if end := bytes.Index(src[at:], []byte("*/")); end >= 0 && bytes.IndexByte(src[at:at+end], '\n') < 0 {
			at += end + 2
		}
	} else {
		at = last.value.end
		if last.comma >= 0 {
			at = last.comma + 1
		}
	}
	if last.comma >= 0 {
		// The file uses trailing commas; keep its style.
		return []edit{{at, at, "\n" + text + ","}}, nil
	}
	// The comma goes right after the value, the member after the line.
	return []edit{{at, at, "\n" + text}, {last.value.end, last.value.end, ","}}, nil
}

func applyInsert(src []byte, obj *node, unit, key string, value any) ([]byte, error) {
	edits, err := insertMember(src, obj, unit, key, value)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		src = e.apply(src)
	}
	return src, nil
}

// removeMember deletes obj.members[i], with its separator and, when the
// member had its own line, that line.
func removeMember(src []byte, obj *node, i int) []byte {
	m := obj.members[i]
	n := len(obj.members)
	end := m.value.end
	if m.comma >= 0 {
		end = m.comma + 1
	}
	if i < n-1 {
		from := m.keyStart
		if _, first := lineIndent(src, m.keyStart); first {
			from = bytes.LastIndexByte(src[:m.keyStart], '\n') + 1
			// Take the line break too, if nothing but blanks follows.
			j := end
			for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\r') {
				j++
			}
			if j < len(src) && src[j] == '\n' {
				end = j + 1
			}
		} else {
			for end < len(src) && (src[end] == ' ' || src[end] == '\t') {
				end++
			}
		}
		return edit{from, end, ""}.apply(src)
	}
	if i > 0 {
		// The last member: take its line (and the line break before
		// it), keep whatever comment followed the previous member, and
		// drop the separator unless the file uses trailing commas.
		prev := obj.members[i-1]
		from := m.keyStart
		if _, first := lineIndent(src, m.keyStart); first {
			from = bytes.LastIndexByte(src[:m.keyStart], '\n')
			if from > 0 && src[from-1] == '\r' {
				from--
			}
		} else if len(bytes.TrimSpace(src[prev.comma+1:m.keyStart])) == 0 {
			from = prev.comma + 1
		}
		out := edit{from, end, ""}.apply(src)
		if m.comma < 0 {
			out = edit{prev.comma, prev.comma + 1, ""}.apply(out)
		}
		return out
	}
	// The only member.
	rest := append(append([]byte{}, src[obj.start+1:m.keyStart]...), src[end:obj.end-1]...)
	if len(bytes.TrimSpace(rest)) == 0 {
		return edit{obj.start + 1, obj.end - 1, ""}.apply(src)
	}
	return edit{m.keyStart, end, ""}.apply(src)
}

// lookup walks path from root and returns the deepest object reached, how
// many keys of path it consumed, and the member at path if all were found.
func lookup(root *node, path []string) (*node, int, *member, error) {
	obj := root
	for i, k := range path {
		_, m := obj.get(k)
		if m == nil {
			return obj, i, nil, nil
		}
		if i == len(path)-1 {
			return obj, i, m, nil
		}
		if m.value.kind != 'o' {
			return nil, 0, nil, fmt.Errorf("%q is not an object", strings.Join(path[:i+1], "."))
		}
		obj = m.value
	}
	return obj, len(path), nil, nil
}

// jsonSet returns src with the member at path set to value, and whether
// anything changed. Every byte outside the edited member is kept.
func jsonSet(src []byte, d Dialect, path []string, value any) ([]byte, bool, error) {
	root, err := parseDoc(src, d)
	if err != nil {
		return nil, false, err
	}
	want, err := generic(value)
	if err != nil {
		return nil, false, err
	}
	if root == nil {
		b, err := marshal(nest(path, value), "", "  ")
		if err != nil {
			return nil, false, err
		}
		return append(b, '\n'), true, nil
	}
	unit := indentUnit(src, root)
	obj, depth, m, err := lookup(root, path)
	if err != nil {
		return nil, false, err
	}
	var out []byte
	switch {
	case m != nil && reflect.DeepEqual(m.value.toAny(src), want):
		return src, false, nil
	case m != nil:
		ind, _ := lineIndent(src, m.keyStart)
		var v []byte
		if multiline(src, obj) {
			v, err = marshal(value, ind, unit)
		} else {
			v, err = marshal(value, "", "")
		}
		if err != nil {
			return nil, false, err
		}
		out = edit{m.value.start, m.value.end, string(v)}.apply(src)
	default:
		out, err = applyInsert(src, obj, unit, path[depth], nest(path[depth+1:], value))
		if err != nil {
			return nil, false, err
		}
	}
	if err := checkEdit(src, out, d, path, want); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// jsonRemove returns src without the member at path; unchanged when it is
// not there. Parents left empty stay (an empty "mcpServers" is harmless and
// may be the user's).
func jsonRemove(src []byte, d Dialect, path []string) ([]byte, bool, error) {
	root, err := parseDoc(src, d)
	if err != nil || root == nil {
		return src, false, err
	}
	obj, _, m, err := lookup(root, path)
	if err != nil {
		return nil, false, err
	}
	if m == nil {
		return src, false, nil
	}
	i, _ := obj.get(path[len(path)-1])
	out := removeMember(src, obj, i)
	if err := checkEdit(src, out, d, path, nil); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// checkEdit re-parses the edited text and proves the edit did what it
// should and nothing else: the document equals the original with only
// path set to want (or removed, for nil).
func checkEdit(before, after []byte, d Dialect, path []string, want any) error {
	b, err := parseDoc(before, d)
	if err != nil {
		return err
	}
	a, err := parseDoc(after, d)
	if err != nil || a == nil {
		return fmt.Errorf("internal error: the edited file does not parse (%v)", err)
	}
	exp := b.toAny(before).(map[string]any)
	setGeneric(exp, path, want)
	if !reflect.DeepEqual(exp, a.toAny(after)) {
		return fmt.Errorf("internal error: the edit changed more than %q", strings.Join(path, "."))
	}
	return nil
}

// setGeneric sets (want != nil) or deletes path in a decoded document.
func setGeneric(m map[string]any, path []string, want any) {
	for _, k := range path[:len(path)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			if want == nil {
				return
			}
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	if want == nil {
		delete(m, path[len(path)-1])
	} else {
		m[path[len(path)-1]] = want
	}
}
