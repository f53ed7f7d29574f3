package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
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
// match), including strings inside strings that are JSON themselves.
func (sc *scans) hit(text []byte) bool {
	sc.mu.Lock()
	fs := append([]Scan(nil), sc.fs...)
	sc.mu.Unlock()
	if len(fs) == 0 {
		return false
	}
	// A string without a backslash decodes to its own bytes, which the
	// scan of text covers; only escaped strings need decoding, and all of
	// them are scanned in one pass.
	var decoded bytes.Buffer
	escapedStrings(text, &decoded, 0)
	for _, f := range fs {
		if _, h := f(text); h {
			return true
		}
		if _, h := f(decoded.Bytes()); decoded.Len() > 0 && h {
			return true
		}
	}
	return false
}

// escapedStrings appends to out, one per line, the decoded form of every
// JSON string in doc that holds an escape, and recursively of the escaped
// strings inside those (JSON in a string, as httpbin's "data").
func escapedStrings(doc []byte, out *bytes.Buffer, level int) {
	for i := 0; i < len(doc); i++ {
		if doc[i] != '"' {
			continue
		}
		j, escaped := i+1, false
		for ; j < len(doc) && doc[j] != '"'; j++ {
			if doc[j] == '\\' {
				escaped = true
				j++
			}
		}
		if j >= len(doc) {
			return
		}
		if escaped {
			var s string
			if json.Unmarshal(doc[i:j+1], &s) == nil {
				out.WriteString(s)
				out.WriteByte('\n')
				if level < maxNestedJSON && strings.Contains(s, `\`) {
					escapedStrings([]byte(s), out, level+1)
				}
			}
		}
		i = j
	}
}
