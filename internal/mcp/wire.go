package mcp

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// Limits on one inbound JSON-RPC message. The SDK ends the whole session
// on any message it cannot decode (and batches and bad ids are among
// them), so every message is checked here first: a bad one is answered
// with a JSON-RPC error and the session goes on.
const (
	// MaxMessage bounds one message: a line on stdio, a POST body over
	// HTTP. Tool inputs are small; the largest is an api_call body, which
	// the broker caps at 10 MiB anyway. A longer line is read to its end
	// (never buffered whole) and answered with an error.
	MaxMessage = 4 << 20
	// MaxDepth bounds the nesting of objects and arrays. The SDK refuses
	// (by ending the session) anything past 1000; MCP messages nest a
	// handful of levels, api_call's JSON body a few more.
	MaxDepth = 64
)

// JSON-RPC 2.0 error codes the filter answers with.
const (
	codeParseError     = -32700
	codeInvalidRequest = -32600
)

// rpcReply is a JSON-RPC error response written by the filter itself.
type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorObject  `json:"error"`
}

type rpcErrorObject struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// rpcMessage is the canonical form of a checked message, the only form
// the SDK ever sees: exactly these keys, each of the type the SDK's
// decoder expects, so it cannot disagree with the check (about duplicate
// keys, key case, id types or encodings).
type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  *string         `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

var nullID = json.RawMessage("null")

// checkMessage validates one message. It returns either the canonical
// message to hand to the SDK (without a trailing newline) or the error
// response to send back; both nil means there was nothing to handle (a
// blank line). The reply never quotes the message: it may hold anything.
func checkMessage(msg []byte) (canon, reply []byte) {
	msg = bytes.TrimSpace(msg)
	if len(msg) == 0 {
		return nil, nil
	}
	if len(msg) > MaxMessage {
		return nil, errorReply(nullID, codeInvalidRequest, "message larger than "+strconv.Itoa(MaxMessage>>20)+" MiB")
	}
	// JSON text is UTF-8 (RFC 8259); decoders differ on what they do with
	// anything else, so none of it goes on.
	if !utf8.Valid(msg) || !json.Valid(msg) {
		return nil, errorReply(nullID, codeParseError, "parse error: not a JSON value")
	}
	if depth(msg) > MaxDepth {
		return nil, errorReply(nullID, codeInvalidRequest, "message nests deeper than "+strconv.Itoa(MaxDepth)+" levels")
	}
	switch msg[0] {
	case '{':
	case '[':
		// Batches were dropped from MCP in 2025-06-18. The SDK still
		// accepts them at older revisions, but ends the session on a
		// batch with a bad member or a reused id; no client sends them.
		return nil, errorReply(nullID, codeInvalidRequest, "JSON-RPC batches are not supported; send one message per line")
	default:
		return nil, errorReply(nullID, codeInvalidRequest, "invalid request: not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil {
		return nil, errorReply(nullID, codeParseError, "parse error: not a JSON object")
	}
	out := rpcMessage{JSONRPC: "2.0"}
	id, idOK := canonicalID(fields["id"])
	replyID := nullID
	if idOK && id != nil {
		replyID = id
	}
	invalid := func(why string) ([]byte, []byte) {
		return nil, errorReply(replyID, codeInvalidRequest, "invalid request: "+why)
	}
	var version string
	if err := json.Unmarshal(fields["jsonrpc"], &version); err != nil || version != "2.0" {
		return invalid(`"jsonrpc" must be "2.0"`)
	}
	if !idOK {
		return invalid(`"id" must be a string, an integer or null`)
	}
	out.ID = id
	if raw, ok := fields["method"]; ok {
		var method string
		if err := json.Unmarshal(raw, &method); err != nil || raw[0] != '"' {
			return invalid(`"method" must be a string`)
		}
		out.Method = &method
		if p := fields["params"]; p != nil && !bytes.Equal(p, nullID) {
			if p[0] != '{' && p[0] != '[' {
				return invalid(`"params" must be an object or an array`)
			}
			out.Params = p
		}
	} else {
		// A response to a request the server sent (sampling, roots,
		// elicitation): an id, and a result or an error object.
		if id == nil {
			return invalid(`a message without "method" must be a response with an id`)
		}
		res, hasRes := fields["result"]
		e, hasErr := fields["error"]
		switch {
		case hasRes == hasErr:
			return invalid(`a response has exactly one of "result" and "error"`)
		case hasErr:
			var eo struct {
				Code    *json.Number `json:"code"`
				Message *string      `json:"message"`
			}
			if e[0] != '{' || json.Unmarshal(e, &eo) != nil || eo.Code == nil || eo.Message == nil || !isInteger(string(*eo.Code)) {
				return invalid(`"error" must be an object with an integer code and a string message`)
			}
			out.Error = e
		default:
			out.Result = res
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return invalid("cannot be re-encoded")
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// canonicalID returns an id in the form the SDK decodes without loss: a
// JSON string re-encoded, an integer within ±2^53 (the SDK reads ids as
// float64), nil for an absent or null id. ok is false for anything else
// (objects, arrays, booleans, fractions, huge numbers).
func canonicalID(raw json.RawMessage) (id json.RawMessage, ok bool) {
	if raw == nil || bytes.Equal(raw, nullID) {
		return nil, true
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, false
		}
		b, err := json.Marshal(s)
		return b, err == nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if !isInteger(string(raw)) {
			return nil, false
		}
		return append(json.RawMessage(nil), raw...), true
	}
	return nil, false
}

// isInteger reports whether s is a JSON integer an IEEE double holds
// exactly.
func isInteger(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n >= -(1<<53) && n <= 1<<53
}

// depth is the deepest nesting of objects and arrays in valid JSON.
func depth(data []byte) int {
	d, deepest := 0, 0
	inString, escaped := false, false
	for _, b := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', '[':
			d++
			deepest = max(deepest, d)
		case '}', ']':
			d--
		}
	}
	return deepest
}

func errorReply(id json.RawMessage, code int, msg string) []byte {
	b, _ := json.Marshal(rpcReply{JSONRPC: "2.0", ID: id, Error: rpcErrorObject{Code: code, Message: msg}})
	return b
}

// lineWriter serialises whole-line writes to the protocol stream: the
// SDK writes each message with one Write, and so does the filter, so
// lines never interleave.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (*lineWriter) Close() error { return nil }

// filterLines reads newline-delimited messages from in, hands each valid
// one (canonical, newline-terminated) to sdk and answers each invalid one
// on out itself. It returns when in ends or fails, or sdk is closed; the
// error is nil at the end of in.
func filterLines(in io.Reader, sdk io.Writer, out io.Writer) error {
	br := bufio.NewReaderSize(in, 64<<10)
	var line []byte
	for {
		line = line[:0]
		tooLong := false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if !tooLong && len(line)+len(chunk) <= MaxMessage+1 { // +1: the newline
				line = append(line, chunk...)
			} else {
				// Past the cap the rest of the line is read and
				// dropped, so a huge line costs no memory.
				tooLong, line = true, line[:0]
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		var canon, reply []byte
		if tooLong {
			reply = errorReply(nullID, codeInvalidRequest, "message larger than "+strconv.Itoa(MaxMessage>>20)+" MiB")
		} else {
			canon, reply = checkMessage(line)
		}
		if reply != nil {
			if _, werr := out.Write(append(reply, '\n')); werr != nil {
				return werr
			}
		}
		if canon != nil {
			if _, werr := sdk.Write(append(canon, '\n')); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
