package commands

import (
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text output goes to a person's terminal, and much of what it shows was
// chosen by someone else: request paths and hosts an agent sent, names in
// an index an agent edited, an upstream's error text. A decoded %0a forges
// a log line, ESC sequences erase lines or set the clipboard (OSC 52), and
// bidi overrides reorder what is read. So every string of a result is made
// terminal-safe before any text renderer sees it, and every byte written in
// text mode passes a writer that escapes what slipped through.

// termEscape returns s with every control character, C1 control, invalid
// UTF-8 byte and bidirectional-formatting rune written as a visible escape
// (\n, \x1b, \u202e). Printable text, including non-ASCII letters, is kept.
func termEscape(s string) string { return escapeForTerm(s, false) }

// termEscapeLines is termEscape for text meant to span lines (a config
// snippet): newlines and tabs are kept, every other control escaped.
func termEscapeLines(s string) string { return escapeForTerm(s, true) }

func escapeForTerm(s string, keepLines bool) string {
	if termClean(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case keepLines && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case needsEscape(r):
			switch r {
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			default:
				if r < 0x80 {
					b.WriteString(`\x`)
					b.WriteString(hex2(byte(r)))
				} else {
					q := strconv.QuoteRuneToASCII(r) // '\u202e'
					b.WriteString(q[1 : len(q)-1])
				}
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}

// termClean is the fast path: most strings are printable ASCII.
func termClean(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// needsEscape: C0 and C1 controls, DEL, and the Unicode formatting runes
// that change how the surrounding text displays.
func needsEscape(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x200b && r <= 0x200f, // zero-width and directional marks
		r >= 0x202a && r <= 0x202e, // bidi embeddings and overrides
		r >= 0x2066 && r <= 0x2069, // bidi isolates
		r == 0xfeff, r == 0x061c:
		return true
	}
	return false
}

// termSafeResult makes every string reachable from v terminal-safe, in
// place (a string field tagged `term:"lines"` keeps its newlines and
// tabs). It runs only in text mode, right before the one render of a result
// that is not used afterwards. Unexported fields are not rendered and are
// left alone.
func termSafeResult(v any) {
	termSafeValue(reflect.ValueOf(v), 0)
}

func termSafeValue(v reflect.Value, depth int) {
	if depth > 32 || !v.IsValid() {
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return
		}
		e := v.Elem()
		if v.Kind() == reflect.Interface && e.Kind() == reflect.String {
			if v.CanSet() {
				v.Set(reflect.ValueOf(termEscape(e.String())).Convert(e.Type()))
			}
			return
		}
		if v.Kind() == reflect.Interface && !e.CanSet() {
			// A value held in an interface cannot be changed in place: copy,
			// clean and store it back.
			if v.CanSet() {
				c := reflect.New(e.Type()).Elem()
				c.Set(e)
				termSafeValue(c, depth+1)
				v.Set(c)
			}
			return
		}
		termSafeValue(e, depth+1)
	case reflect.String:
		if v.CanSet() {
			v.SetString(termEscape(v.String()))
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			switch {
			case !f.IsExported():
			case f.Tag.Get("term") == "lines" && f.Type.Kind() == reflect.String:
				if fv := v.Field(i); fv.CanSet() {
					fv.SetString(termEscapeLines(fv.String()))
				}
			default:
				termSafeValue(v.Field(i), depth+1)
			}
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes are never rendered as text
		}
		for i := 0; i < v.Len(); i++ {
			termSafeValue(v.Index(i), depth+1)
		}
	case reflect.Map:
		if v.IsNil() {
			return
		}
		iter := v.MapRange()
		type entry struct{ k, v reflect.Value }
		var changed []entry
		var stale []reflect.Value
		for iter.Next() {
			k, val := iter.Key(), iter.Value()
			nk := reflect.New(k.Type()).Elem()
			nk.Set(k)
			termSafeValue(nk, depth+1)
			nv := reflect.New(val.Type()).Elem()
			nv.Set(val)
			termSafeValue(nv, depth+1)
			if !nk.Equal(k) {
				stale = append(stale, k)
			}
			changed = append(changed, entry{nk, nv})
		}
		for _, k := range stale {
			v.SetMapIndex(k, reflect.Value{})
		}
		for _, e := range changed {
			v.SetMapIndex(e.k, e.v)
		}
	}
}

// termWriter escapes, in whatever a text renderer writes, every control
// character but the newline and tab that lay out tables, and every C1
// control and invalid byte: the net under termSafeResult, for strings a
// renderer builds from something other than the result's fields.
type termWriter struct {
	w interface{ Write([]byte) (int, error) }
	// colour lets writeStyled add style codes around what it writes.
	colour bool
	// pending holds the start of a UTF-8 sequence split across writes.
	pending []byte
}

func (t *termWriter) Write(p []byte) (int, error) {
	buf := append(t.pending, p...)
	t.pending = nil
	var out []byte
	for i := 0; i < len(buf); {
		c := buf[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			out = append(out, c)
			i++
			continue
		}
		if c < 0x80 {
			out = append(out, '\\', 'x')
			out = append(out, hex2(c)...)
			i++
			continue
		}
		if !utf8.FullRune(buf[i:]) {
			t.pending = append([]byte(nil), buf[i:]...)
			break
		}
		r, size := utf8.DecodeRune(buf[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			out = append(out, '\\', 'x')
			out = append(out, hex2(c)...)
		case needsEscape(r):
			q := strconv.QuoteRuneToASCII(r)
			out = append(out, q[1:len(q)-1]...)
		default:
			out = append(out, buf[i:i+size]...)
		}
		i += size
	}
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close writes out a UTF-8 sequence the renderer left unfinished, escaped.
func (t *termWriter) Close() error {
	if len(t.pending) == 0 {
		return nil
	}
	var out []byte
	for _, c := range t.pending {
		out = append(out, '\\', 'x')
		out = append(out, hex2(c)...)
	}
	t.pending = nil
	_, err := t.w.Write(out)
	return err
}
