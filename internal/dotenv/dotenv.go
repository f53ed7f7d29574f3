// Package dotenv parses .env files for `agentsecrets secrets import`.
//
// The accepted syntax is the common subset of docker compose, python-dotenv
// and godotenv, so a file that works with those tools imports unchanged:
//
//   - Blank lines and lines whose first non-blank character is '#' are
//     ignored. A leading UTF-8 byte order mark is skipped, and lines may end
//     in LF or CRLF (a CRLF inside a multi-line quoted value becomes LF).
//   - An assignment is NAME=VALUE, optionally preceded by "export" and one or
//     more spaces or tabs. Spaces and tabs are allowed before NAME and around
//     '='. NAME must match ^[A-Za-z_][A-Za-z0-9_.-]*$.
//   - An unquoted VALUE runs to the end of the line and is trimmed of spaces
//     and tabs. A '#' preceded by a space or tab starts a comment; any other
//     '#' is part of the value, so URL=http://x/#frag keeps its fragment.
//   - A VALUE in single quotes or backticks is taken literally, with no
//     escapes, and may span lines.
//   - A VALUE in double quotes may span lines and understands the escapes
//     \n \r \t \" \\ and \$. Any other backslash is kept as is, together with
//     the character after it.
//   - After a closing quote only spaces, tabs and an optional '#' comment may
//     follow on that line.
//   - An empty VALUE yields an Entry with an empty Value; rejecting it is the
//     caller's decision.
//   - When a NAME is assigned more than once the last assignment wins, and
//     the single Entry kept sits where that last assignment was.
//
// There is deliberately no variable interpolation and no command
// substitution: ${X}, $X and $(cmd) are returned literally. An importer that
// expanded them could copy one secret into another name, leak parts of the
// caller's environment into the vault, or run commands from a file the user
// merely meant to read.
//
// Input larger than 4 MiB and input containing a NUL byte are rejected; a
// .env file is small text, and anything else is almost certainly the wrong
// file.
package dotenv

import (
	"bytes"
	"strconv"

	"github.com/agentsecrets/agentsecrets/internal/secret"
)

// maxSize bounds the input so that a mistaken path (a log, a disk image)
// fails fast instead of being held in memory and scanned.
const maxSize = 4 << 20

// The reasons are a closed set of fixed strings: error text is built only
// from these and a line number, never from the input, so a secret on a
// malformed line cannot reach a terminal, a log or an agent transcript.
const (
	reasonTooLarge          = "file larger than 4 MiB"
	reasonNUL               = "NUL byte"
	reasonMissingEquals     = "missing '='"
	reasonInvalidName       = "invalid name"
	reasonUnterminatedDQ    = "unterminated double quote"
	reasonUnterminatedSQ    = "unterminated single quote"
	reasonUnterminatedBT    = "unterminated backtick quote"
	reasonTrailingAfterQuot = "unexpected text after closing quote"
)

// Entry is one assignment.
type Entry struct {
	Name string
	// Value is the caller's to wipe.
	Value secret.Value
	Line  int // 1-based line where the assignment starts
}

// ParseError reports a syntax error by line and reason only. It never quotes
// the offending text, because that text may be a secret value.
type ParseError struct {
	Line   int
	Reason string
}

// Error formats as "line N: reason". Line 0 means the error concerns the
// whole input, where a line number would be meaningless.
func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return e.Reason
	}
	return "line " + strconv.Itoa(e.Line) + ": " + e.Reason
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Parse parses .env syntax. On any error it returns nil entries and a *ParseError.
//
// Every returned Value is a fresh slice that does not alias data, so the
// caller may wipe data as soon as Parse returns.
func Parse(data []byte) ([]Entry, error) {
	if len(data) > maxSize {
		return nil, &ParseError{Line: 0, Reason: reasonTooLarge}
	}
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return nil, &ParseError{Line: 1 + bytes.Count(data[:i], []byte{'\n'}), Reason: reasonNUL}
	}
	p := &parser{d: bytes.TrimPrefix(data, bom), line: 1}
	var all []Entry
	for p.pos < len(p.d) {
		e, ok, err := p.statement()
		if err != nil {
			for _, e := range all {
				e.Value.Wipe()
			}
			return nil, err
		}
		if ok {
			all = append(all, e)
		}
	}
	return dedupe(all), nil
}

// dedupe keeps the last assignment of each name at its own position, which
// is what a shell sourcing the file would end up with.
func dedupe(all []Entry) []Entry {
	seen := make(map[string]bool, len(all))
	keep := make([]bool, len(all))
	n := 0
	for i := len(all) - 1; i >= 0; i-- {
		if !seen[all[i].Name] {
			seen[all[i].Name] = true
			keep[i] = true
			n++
		}
	}
	out := make([]Entry, 0, n)
	for i, e := range all {
		if keep[i] {
			out = append(out, e)
		} else {
			e.Value.Wipe() // overridden by a later assignment
		}
	}
	return out
}

type parser struct {
	d    []byte
	pos  int
	line int
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func trimBlank(b []byte) []byte {
	return bytes.TrimRight(bytes.TrimLeft(b, " \t"), " \t")
}

// lineBounds returns the end of the line content starting at pos (without
// its terminator) and the start of the next line. A CR right before LF, or
// right before the end of input, belongs to the terminator so that files
// saved on Windows parse like their LF twins.
func (p *parser) lineBounds(pos int) (end, next int) {
	i := bytes.IndexByte(p.d[pos:], '\n')
	if i < 0 {
		end, next = len(p.d), len(p.d)
	} else {
		end, next = pos+i, pos+i+1
	}
	if end > pos && p.d[end-1] == '\r' {
		end--
	}
	return end, next
}

// advanceLine moves to the start of the next physical line.
func (p *parser) advanceLine(next int) {
	p.pos = next
	p.line++
}

func (p *parser) fail(line int, reason string) (Entry, bool, error) {
	return Entry{}, false, &ParseError{Line: line, Reason: reason}
}

// statement consumes one line, or several when a quoted value spans lines.
// ok is false for blank and comment lines.
func (p *parser) statement() (e Entry, ok bool, err error) {
	start, lineNo := p.pos, p.line
	end, next := p.lineBounds(start)
	text := p.d[start:end]
	lead := bytes.TrimLeft(text, " \t")
	if len(lead) == 0 || lead[0] == '#' {
		p.advanceLine(next)
		return Entry{}, false, nil
	}
	eq := bytes.IndexByte(text, '=')
	if eq < 0 {
		return p.fail(lineNo, reasonMissingEquals)
	}
	name := trimBlank(text[:eq])
	// "export =x" assigns a variable called export; only strip the keyword
	// when blanks separate it from something else.
	if len(name) > len("export") && bytes.HasPrefix(name, []byte("export")) && isBlank(name[len("export")]) {
		name = bytes.TrimLeft(name[len("export"):], " \t")
	}
	if !validName(name) {
		return p.fail(lineNo, reasonInvalidName)
	}
	e = Entry{Name: string(name), Line: lineNo}

	q := start + eq + 1
	for q < end && isBlank(p.d[q]) {
		q++
	}
	if q == end {
		e.Value = secret.New([]byte{})
		p.advanceLine(next)
		return e, true, nil
	}
	var v []byte
	switch p.d[q] {
	case '\'':
		v, err = p.literal(q, '\'', lineNo, reasonUnterminatedSQ)
	case '`':
		v, err = p.literal(q, '`', lineNo, reasonUnterminatedBT)
	case '"':
		v, err = p.doubleQuoted(q, lineNo)
	default:
		e.Value = secret.New(unquoted(p.d[start+eq+1 : end]))
		p.advanceLine(next)
		return e, true, nil
	}
	if err != nil {
		clear(v)
		return Entry{}, false, err
	}
	if err := p.afterQuote(); err != nil {
		clear(v)
		return Entry{}, false, err
	}
	e.Value = secret.New(v)
	return e, true, nil
}

func validName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// unquoted takes raw, everything after '=' on the line. raw[0] follows the
// '=' itself, never a blank, so "KEY=#x" keeps "#x" while "KEY= #x" is empty.
func unquoted(raw []byte) []byte {
	for i := 1; i < len(raw); i++ {
		if raw[i] == '#' && isBlank(raw[i-1]) {
			raw = raw[:i]
			break
		}
	}
	v := trimBlank(raw)
	return append(make([]byte, 0, len(v)), v...)
}

// literal reads a single-quoted or backtick-quoted value whose opening quote
// is at q, leaving p.pos just after the closing quote.
func (p *parser) literal(q int, quote byte, lineNo int, reason string) ([]byte, error) {
	i := bytes.IndexByte(p.d[q+1:], quote)
	if i < 0 {
		return nil, &ParseError{Line: lineNo, Reason: reason}
	}
	raw := p.d[q+1 : q+1+i]
	out := make([]byte, 0, len(raw))
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c == '\n' {
			p.line++
		}
		if c == '\r' && j+1 < len(raw) && raw[j+1] == '\n' {
			continue
		}
		out = append(out, c)
	}
	p.pos = q + 1 + i + 1
	return out, nil
}

// doubleQuoted reads a double-quoted value whose opening quote is at q,
// leaving p.pos just after the closing quote.
func (p *parser) doubleQuoted(q int, lineNo int) ([]byte, error) {
	d := p.d
	var out []byte
	for i := q + 1; i < len(d); {
		c := d[i]
		switch {
		case c == '"':
			p.pos = i + 1
			if out == nil {
				out = []byte{}
			}
			return out, nil
		case c == '\\' && i+1 < len(d):
			switch e := d[i+1]; e {
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case '"', '\\', '$':
				out = append(out, e)
			default:
				// Keep the backslash and let the next byte go through the
				// normal path, so a following newline is still counted and
				// a CRLF still folds to LF.
				out = append(out, '\\')
				i++
				continue
			}
			i += 2
		case c == '\r' && i+1 < len(d) && d[i+1] == '\n':
			i++ // the LF is appended and counted on the next iteration
		default:
			if c == '\n' {
				p.line++
			}
			out = append(out, c)
			i++
		}
	}
	return nil, &ParseError{Line: lineNo, Reason: reasonUnterminatedDQ}
}

// afterQuote checks the rest of the line holding a closing quote. Text there
// is rejected rather than appended because KEY='a'b is ambiguous between the
// shells and dotenv libraries this format imitates.
func (p *parser) afterQuote() error {
	end, next := p.lineBounds(p.pos)
	rest := bytes.TrimLeft(p.d[p.pos:end], " \t")
	if len(rest) > 0 && rest[0] != '#' {
		return &ParseError{Line: p.line, Reason: reasonTrailingAfterQuot}
	}
	p.advanceLine(next)
	return nil
}
