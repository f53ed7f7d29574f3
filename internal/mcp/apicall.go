package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// callInput is api_call's input: the call command's flags (its schema is
// the tool's, see TestAPICallInputMatchesSchema) but data_file, plus the
// original AgentSecrets tool's headers, body and injections.
type callInput struct {
	URL           string   `json:"url"`
	Method        string   `json:"method"`
	RequestHeader []string `json:"request_header"`
	Data          string   `json:"data"`
	Bearer        string   `json:"bearer"`
	Basic         string   `json:"basic"`
	Header        []string `json:"header"`
	Query         []string `json:"query"`
	BodyField     []string `json:"body_field"`
	FormField     []string `json:"form_field"`
	Timeout       string   `json:"timeout"`
	MaxResponse   *int64   `json:"max_response"`
	Fail          bool     `json:"fail"`
	Workspace     string   `json:"workspace"`
	Project       string   `json:"project"`
	// Decoded by hand: their errors name the input, never a value.
	Headers    json.RawMessage `json:"headers"`
	Body       json.RawMessage `json:"body"`
	Injections json.RawMessage `json:"injections"`
}

// apiCallDropped is the call flag api_call does not take: data_file would
// read the server's files (or its stdin, the protocol stream).
const apiCallDropped = "data_file"

// MaxAPIResponse caps api_call's decoded response body whatever the call
// asks. A result is held several times over on its way to the client (the
// body, its base64 or JSON text, the result's text and structured copies,
// the JSON-RPC frame), about 24 times its size in all: a 100 KB gzip answer
// decoding to 100 MB under the CLI's 256 MiB default took the server past
// 2 GB. 16 MiB is more than a model's context holds, and keeps a session
// under a few hundred MB.
const MaxAPIResponse = 16 << 20

// apiCallExtraSchema holds the schemas of the original AgentSecrets
// api_call inputs, accepted beside the call command's own fields.
func apiCallExtraSchema() map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"headers":    json.RawMessage(`{"type":"object","additionalProperties":{"type":"string"},"description":"Plain, non-secret request headers (name to value)."}`),
		"body":       json.RawMessage(`{"oneOf":[{"type":"string"},{"type":"object"},{"type":"array"}],"description":"Request body: a string is sent as is, an object or array as JSON."}`),
		"injections": json.RawMessage(`{"type":"object","additionalProperties":{"type":"string"},"description":"Where to inject which secret (by name): keys bearer, basic, header:<Name>, query:<param>, body:<path>, form:<field>."}`),
	}
}

// callFields are callInput's fields by JSON key.
var callFields = func() map[string]reflect.Type {
	out := map[string]reflect.Type{}
	t := reflect.TypeFor[callInput]()
	for i := range t.NumField() {
		out[t.Field(i).Tag.Get("json")] = t.Field(i).Type
	}
	return out
}()

// APICallKeys are the inputs api_call takes, sorted.
func APICallKeys() []string {
	keys := make([]string, 0, len(callFields))
	for k := range callFields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeCall reads api_call's arguments. A single string where a list is
// expected counts as a list of one.
func decodeCall(args json.RawMessage) (*callInput, error) {
	obj, err := inputObject(args)
	if err != nil {
		return nil, err
	}
	for key, raw := range obj {
		t, ok := callFields[key]
		if !ok {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %q is not an input (valid: %s)", inputKeyShown(key), strings.Join(APICallKeys(), ", ")),
				"see the tool's inputSchema")
		}
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String && bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) {
			obj[key] = append(append([]byte("["), raw...), ']')
		}
	}
	b, _ := json.Marshal(obj)
	var in callInput
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %s", jsonFieldError(err)), "see the tool's inputSchema")
	}
	return &in, nil
}

// request builds the broker request of an api_call: every injection spec
// through broker's one translator, the defaults broker's.
func (in *callInput) request() (*broker.Request, error) {
	if in.URL == "" {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "api_call needs url"), `e.g. {"url":"https://api.example.com/v1/items","injections":{"bearer":"API_KEY"}}`)
	}
	maxResponse := int64(broker.DefaultMaxResponse)
	if in.MaxResponse != nil {
		if maxResponse = *in.MaxResponse; maxResponse <= 0 {
			return nil, errcode.New(errcode.Usage, "api_call: max_response must be a positive number of bytes")
		}
	}
	// Errors of the call command's inputs are the CLI's, word for word.
	timeout, err := broker.ParseTimeout(in.Timeout)
	if err != nil {
		return nil, err
	}
	specs := broker.Specs{Bearer: in.Bearer, Basic: in.Basic, Header: in.Header, Query: in.Query, BodyField: in.BodyField, Form: in.FormField}
	ins, err := specs.Injections()
	if err != nil {
		return nil, err
	}
	more, err := injectionsMap(in.Injections)
	if err != nil {
		return nil, err
	}
	ins = append(ins, more...)
	header, err := broker.ParseHeaderLines(in.RequestHeader)
	if err != nil {
		return nil, err
	}
	if in.Headers != nil {
		m, err := stringMap("headers", in.Headers)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			header.Add(k, v)
		}
	}
	body := []byte(in.Data)
	if in.Body != nil {
		b, isJSON, err := apiCallBody(in.Body)
		if err != nil {
			return nil, err
		}
		if b != nil && len(body) > 0 {
			return nil, errcode.New(errcode.Usage, "give data or body, not both")
		}
		if b != nil {
			body = b
		}
		if isJSON && header.Get("Content-Type") == "" {
			header.Set("Content-Type", "application/json")
		}
	}
	method := in.Method
	if method == "" {
		method = broker.DefaultMethod(body, ins)
	}
	return &broker.Request{FrontEnd: audit.FrontEndMCP, Method: method, URL: in.URL, Header: header, Body: body, Injections: ins,
		Timeout: timeout, MaxResponse: min(maxResponse, MaxAPIResponse)}, nil
}

// apiCall is the hot path: the input decoded straight into a
// broker.Request (no parser per call), sent through the runtime's broker.
func (s *Session) apiCall(ctx context.Context, args json.RawMessage) (any, error) {
	in, err := decodeCall(args)
	if err != nil {
		return nil, err
	}
	req, err := in.request()
	if err != nil {
		return nil, err
	}
	brk, err := s.rt.Broker()
	if err != nil {
		return nil, err
	}
	ix, err := s.rt.Index()
	if err != nil {
		return nil, err
	}
	// The session's workspace unless the call names one, and its project
	// only if the call names neither.
	sc := Scope{Workspace: in.Workspace, Project: in.Project}
	if cur := s.currentScope(); sc.Workspace == "" {
		sc.Workspace = cur.Workspace
		if sc.Project == "" {
			sc.Project = cur.Project
		}
	}
	if req.Selection, err = s.cmds.Selection(ix, sc); err != nil {
		return nil, err
	}
	// The result gets a last scan for the values this request resolved.
	req.Scan = func(r *broker.Redactor) { Touched(ctx, r.Bytes) }
	return s.cmds.Send(ctx, brk, req, in.Fail, s.rt.Async)
}

// jsonFieldError names the field a JSON type error is about, never the
// value that was there.
func jsonFieldError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%q must be of type %s", inputKeyShown(te.Field), te.Type.String())
	}
	return "input does not match the schema"
}

func stringMap(key string, raw json.RawMessage) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: %s must be an object of strings", key), "see the tool's inputSchema")
	}
	return m, nil
}

// injectionsMap reads the original tool's injections map ("header:X-Key":
// "NAME"), each entry through broker.ParseInjection, keys in sorted order
// so the request is the same whatever the map order.
func injectionsMap(raw json.RawMessage) ([]broker.Injection, error) {
	if raw == nil {
		return nil, nil
	}
	m, err := stringMap("injections", raw)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []broker.Injection
	for _, k := range keys {
		style, field, hasField := strings.Cut(k, ":")
		spec := m[k]
		if hasField {
			spec = field + "=" + spec
		}
		in, err := broker.ParseInjection(style, spec)
		if err == nil && hasField != broker.FieldStyle(style) {
			err = errcode.New(errcode.Usage, "bearer and basic take no field; header, query, body and form take one")
		}
		if err != nil {
			return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "api_call: injection key %q: %v", injectionKeyShown(k), err),
				`keys are bearer, basic, header:<Name>, query:<param>, body:<path> or form:<field>, e.g. "injections": {"bearer": "STRIPE_KEY", "header:X-Api-Key": "OTHER_KEY"}`)
		}
		out = append(out, in)
	}
	return out, nil
}

// inputKeyShown echoes an input key only if it is shaped like an input
// name, and injectionKeyShown an injection key only if it is printable
// ASCII: a value pasted as a key must not come back in the error.
func inputKeyShown(k string) string {
	return shown(k, 32, func(c rune) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' })
}

func injectionKeyShown(k string) string {
	return shown(k, 64, func(c rune) bool { return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\' })
}

func shown(k string, maxLen int, ok func(rune) bool) string {
	if len(k) == 0 || len(k) > maxLen || strings.IndexFunc(k, func(c rune) bool { return !ok(c) }) >= 0 {
		return fmt.Sprintf("<%d-byte key>", len(k))
	}
	return k
}

// apiCallBody: a JSON string is the body as is; any other JSON value is
// sent as JSON (isJSON), null as no body.
func apiCallBody(raw json.RawMessage) (body []byte, isJSON bool, err error) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) {
		return nil, false, nil
	}
	if bytes.HasPrefix(raw, []byte(`"`)) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return nil, false, errcode.New(errcode.Usage, "api_call: body is not valid JSON")
		}
		return []byte(str), false, nil
	}
	return append([]byte(nil), raw...), true, nil
}
