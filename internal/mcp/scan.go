package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
)

// Scan reports whether b holds, in any form it knows, a value the tool
// call touched (a broker Redactor's Bytes is one).
type Scan func(b []byte) ([]byte, bool)

type scansKey struct{}

// scans are the Scans a running call registered.
type scans struct {
	mu sync.Mutex
	fs []Scan
}

// Touched registers, for the tool call running in ctx, a Scan for the
// values it touched. Before the call's result (or error) is written to
// the protocol stream it is scanned once more; a hit withholds it and the
// client gets an internal error instead. Outside a tool call it does
// nothing.
func Touched(ctx context.Context, s Scan) {
	if sc, ok := ctx.Value(scansKey{}).(*scans); ok && s != nil {
		sc.mu.Lock()
		sc.fs = append(sc.fs, s)
		sc.mu.Unlock()
	}
}

// maxNestedJSON bounds how many levels of JSON-inside-a-string the final
// scan decodes.
const maxNestedJSON = 4

// hit reports whether text holds a touched value: as the bytes that go
// out, and as every string a client gets by decoding them (JSON escapes
// such as \u002B spell a value in bytes no encoder-side pattern need
// match), including strings that are JSON documents themselves.
func (sc *scans) hit(text []byte) bool {
	sc.mu.Lock()
	fs := append([]Scan(nil), sc.fs...)
	sc.mu.Unlock()
	if len(fs) == 0 {
		return false
	}
	found := false
	check := func(b []byte) bool {
		for _, f := range fs {
			if _, h := f(b); h {
				found = true
			}
		}
		return found
	}
	if check(text) {
		return true
	}
	var walk func(doc []byte, level int)
	walk = func(doc []byte, level int) {
		dec := json.NewDecoder(bytes.NewReader(doc))
		for !found {
			tok, err := dec.Token()
			if err != nil {
				// The end, or not JSON (a plain text): the byte scan
				// above covered it.
				return
			}
			s, ok := tok.(string)
			if !ok {
				continue
			}
			if check([]byte(s)) {
				return
			}
			if t := bytes.TrimSpace([]byte(s)); level < maxNestedJSON && len(t) > 0 && (t[0] == '{' || t[0] == '[' || t[0] == '"') && json.Valid(t) {
				walk(t, level+1)
			}
		}
	}
	walk(text, 0)
	return found
}
