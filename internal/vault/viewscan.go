package vault

import (
	"encoding/json"
	"errors"
	"strings"
)

// This file is the JSON reader behind View and decodeIndex: a cursor that
// walks index.json forward once, builds no tree, and skips what it does not
// need with a byte scan and no allocation. decodeIndexJSON reads exactly
// what encoding/json reads and refuses what it refuses (FuzzDecodeIndex).
// View, which reads one project, differs only where a key repeats: the
// first wins there (the writer never repeats one); FuzzViewProject holds it
// to that.

var errSyntax = errors.New("malformed JSON")

// cursor is a position in a JSON text: the rest of it from there on.
type cursor struct {
	s string
}

func (c *cursor) skipSpace() {
	for len(c.s) > 0 && (c.s[0] == ' ' || c.s[0] == '\n' || c.s[0] == '\t' || c.s[0] == '\r') {
		c.s = c.s[1:]
	}
}

// peek is the next byte that is not white space, or 0 at the end.
func (c *cursor) peek() byte {
	c.skipSpace()
	if c.s == "" {
		return 0
	}
	return c.s[0]
}

// value consumes the value at the cursor and returns it as raw JSON.
func (c *cursor) value() (string, error) {
	c.skipSpace()
	n, err := valueLen(c.s)
	if err != nil {
		return "", err
	}
	v := c.s[:n]
	c.s = c.s[n:]
	return v, nil
}

// members calls fn for each member of the object at the cursor, in order,
// with the cursor at the member's value; fn consumes the value, or stops
// the walk by returning false with the cursor still there.
func (c *cursor) members(fn func(key string) (bool, error)) error {
	if c.peek() != '{' {
		return errSyntax
	}
	c.s = c.s[1:]
	if c.peek() == '}' {
		c.s = c.s[1:]
		return nil
	}
	for {
		key, err := c.str()
		if err != nil {
			return err
		}
		if c.peek() != ':' {
			return errSyntax
		}
		c.s = c.s[1:]
		c.skipSpace()
		if more, err := fn(key); err != nil || !more {
			return err
		}
		switch c.peek() {
		case ',':
			c.s = c.s[1:]
		case '}':
			c.s = c.s[1:]
			return nil
		default:
			return errSyntax
		}
	}
}

// enter moves the cursor to the value of the first member named key of the
// object at the cursor. field matches as encoding/json matches a struct
// field's name (case folded); otherwise the key must be equal, as a map's.
// found is false if there is no such member or the value is not an object.
func (c *cursor) enter(key string, field bool) (found bool, err error) {
	err = c.members(func(k string) (bool, error) {
		if k == key || field && strings.EqualFold(k, key) {
			found = c.peek() == '{'
			return false, nil
		}
		_, err := c.value()
		return true, err
	})
	return found, err
}

// skipValid consumes the value at the cursor, which encoding/json must
// accept: for a member nobody reads, which skipping by brackets alone would
// let through malformed.
func (c *cursor) skipValid() error {
	raw, err := c.value()
	if err == nil && !json.Valid([]byte(raw)) {
		err = errSyntax
	}
	return err
}

// valueLen is the length of the JSON value at the start of s. Objects and
// arrays are skipped by bracket depth: their contents are checked only as
// far as finding where they end.
func valueLen(s string) (int, error) {
	if s == "" {
		return 0, errSyntax
	}
	switch s[0] {
	case '"':
		return stringLen(s)
	case '{', '[':
		depth := 0
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '"':
				n, err := stringLen(s[i:])
				if err != nil {
					return 0, err
				}
				i += n - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, errSyntax
	}
	n := 0
	for n < len(s) && !endsLiteral(s[n]) {
		n++
	}
	if n == 0 {
		return 0, errSyntax
	}
	return n, nil
}

func endsLiteral(b byte) bool {
	switch b {
	case ',', '}', ']', ' ', '\n', '\t', '\r':
		return true
	}
	return false
}

// stringLen is the length of the JSON string at the start of s, quotes
// included.
func stringLen(s string) (int, error) {
	for i := 1; ; {
		j := strings.IndexByte(s[i:], '"')
		if j < 0 {
			return 0, errSyntax
		}
		i += j
		escapes := 0
		for k := i - 1; s[k] == '\\'; k-- {
			escapes++
		}
		i++
		if escapes%2 == 0 {
			return i, nil
		}
	}
}

// str consumes the string at the cursor and returns its text. Names,
// timestamps and fingerprints are plain ASCII and come out as slices of the
// file in one pass; anything else goes through encoding/json, so both
// readers agree on it.
func (c *cursor) str() (string, error) {
	if c.peek() != '"' {
		return "", errSyntax
	}
	s := c.s
	for i := 1; i < len(s); i++ {
		switch b := s[i]; {
		case b == '"':
			c.s = s[i+1:]
			return s[1:i], nil
		case b == '\\' || b >= 0x80 || b < 0x20:
			raw, err := c.value()
			if err != nil {
				return "", err
			}
			var text string
			err = json.Unmarshal([]byte(raw), &text)
			return text, err
		}
	}
	return "", errSyntax
}

// decodeIndexJSON decodes index.json into ix exactly as json.Unmarshal would,
// and about four times as fast on a large index. encoding/json scans every
// byte through its state machine before decoding any, and decodes each
// secret by reflection: about 2.7 ms for 1,000 secrets, paid by every
// one-shot command that reads the index (`call` included). Here the
// secrets, nearly all of the bytes, go through the cursor, and every other
// part of the file, small and varied, through encoding/json.
// FuzzDecodeIndex holds the two to the same result and the same verdict.
func decodeIndexJSON(b []byte, ix *Index) error {
	// A copy: the strings decoded share it.
	c := &cursor{s: string(b)}
	// null decodes to nothing, as in encoding/json.
	if c.peek() == 'n' {
		return c.end(c.null())
	}
	rest, err := c.split("workspaces", func() error {
		return decodeMap(c, &ix.Workspaces, func(w *Workspace) error {
			rest, err := c.split("projects", func() error {
				return decodeMap(c, &w.Projects, func(p *Project) error {
					rest, err := c.split("secrets", func() error {
						return decodeMap(c, &p.Secrets, func(s *Secret) error { return c.secret(s, true) })
					})
					return unmarshalRest(rest, err, p)
				})
			})
			return unmarshalRest(rest, err, w)
		})
	})
	return unmarshalRest(rest, c.end(err), ix)
}

// end is err, or an error if anything but white space follows the value.
func (c *cursor) end(err error) error {
	if c.skipSpace(); err == nil && c.s != "" {
		err = errSyntax
	}
	return err
}

// split walks the object at the cursor. The member whose key matches the
// field name special (case-folded, as encoding/json matches) is handed to
// decode with the cursor at its value; every other member is kept, raw, in
// a new object for encoding/json, which split returns (nil if none).
func (c *cursor) split(special string, decode func() error) ([]byte, error) {
	var rest []byte
	err := c.members(func(k string) (bool, error) {
		if strings.EqualFold(k, special) {
			err := decode()
			return err == nil, err
		}
		raw, err := c.value()
		if err != nil {
			return false, err
		}
		key, err := json.Marshal(k)
		if err != nil {
			return false, err
		}
		if rest == nil {
			rest = append(rest, '{')
		} else {
			rest = append(rest, ',')
		}
		rest = append(append(append(rest, key...), ':'), raw...)
		return true, nil
	})
	if rest != nil {
		rest = append(rest, '}')
	}
	return rest, err
}

// unmarshalRest hands the members split kept to encoding/json, once the
// walk succeeded.
func unmarshalRest(rest []byte, err error, v any) error {
	if err != nil || rest == nil {
		return err
	}
	return json.Unmarshal(rest, v)
}

// decodeMap decodes the object or null at the cursor into *m as
// encoding/json decodes a map of pointers: null makes the map nil; an
// object adds to it, each member a new value, or nil for null.
func decodeMap[T any](c *cursor, m *map[string]*T, decode func(*T) error) error {
	if c.peek() == 'n' {
		*m = nil
		return c.null()
	}
	if *m == nil {
		*m = map[string]*T{}
	}
	return c.members(func(k string) (bool, error) {
		if c.peek() == 'n' {
			(*m)[k] = nil
			err := c.null()
			return err == nil, err
		}
		v := new(T)
		(*m)[k] = v
		err := decode(v)
		return err == nil, err
	})
}

// null consumes a null.
func (c *cursor) null() error {
	raw, err := c.value()
	if err == nil && raw != "null" {
		err = errSyntax
	}
	return err
}
