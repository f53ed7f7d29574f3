package commands

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/term"
)

// CallCmd sends one HTTP request with secrets injected by name. The value
// goes to the upstream only; the result holds the response, redacted.
type CallCmd struct {
	URL           string   `name:"url" required:"" placeholder:"URL" help:"Target URL (https://; http:// only for hosts allowlisted with --allow-http)." json:"url"`
	Method        string   `short:"X" placeholder:"METHOD" help:"HTTP method (default GET, or POST when a body is given)." json:"method,omitempty"`
	RequestHeader []string `name:"request-header" short:"H" placeholder:"'Name: value'" sep:"none" help:"Plain, non-secret request header in curl's form (repeatable)." json:"request_header,omitempty"`
	Data          string   `short:"d" placeholder:"BODY" help:"Request body." json:"data,omitempty"`
	DataFile      string   `placeholder:"PATH" help:"Read the request body from a file, or - for stdin." json:"data_file,omitempty"`
	Bearer        string   `placeholder:"NAME" predictor:"secret" help:"Secret sent as Authorization: Bearer." json:"bearer,omitempty"`
	Basic         string   `placeholder:"NAME" predictor:"secret" help:"Secret holding user:password, sent as Authorization: Basic." json:"basic,omitempty"`
	Header        []string `placeholder:"Header=NAME" sep:"none" help:"Secret sent in a header (repeatable)." json:"header,omitempty"`
	Query         []string `placeholder:"param=NAME" sep:"none" help:"Secret sent as a query parameter, name kept exactly (repeatable)." json:"query,omitempty"`
	BodyField     []string `placeholder:"path=NAME" sep:"none" help:"Secret set at a dotted path of a JSON body, arrays by index (repeatable)." json:"body_field,omitempty"`
	FormField     []string `placeholder:"field=NAME" sep:"none" help:"Secret set as a form field, name kept exactly (repeatable)." json:"form_field,omitempty"`
	Timeout       string   `default:"30s" placeholder:"DURATION" help:"Give up after this long (e.g. 10s, 2m)." json:"timeout,omitempty"`
	MaxResponse   int64    `default:"268435456" placeholder:"BYTES" help:"Largest response body accepted, after decompression." json:"max_response,omitempty"`
	Fail          bool     `help:"Exit non-zero (code upstream) when the upstream answers HTTP 400 or more." json:"fail,omitempty"`
	Verbose       bool     `short:"v" help:"Print each request as sent (method, URL, headers; injected values masked) to stderr." json:"verbose,omitempty"`
	Scope
}

// CallResult is the upstream's answer, with every echo of an injected value
// replaced.
type CallResult struct {
	Status int `json:"status"`
	// Headers are lower-case names; repeated headers are joined with ", ".
	Headers map[string]string `json:"headers"`
	// Body is parsed JSON when the response is JSON, a string when it is
	// text, and base64 when it is binary (see body_encoding).
	Body         any     `json:"body" jsonschema:"oneof_type=object;array;string;number;boolean;null"`
	BodyEncoding string  `json:"body_encoding" jsonschema:"enum=json,enum=text,enum=base64,enum=empty"`
	Redacted     bool    `json:"redacted"`
	DurationMS   float64 `json:"duration_ms"`
	AuditID      string  `json:"audit_id"`
	Notes
}

// injections are the flags' injection specs, parsed by the broker's one
// translator.
func (c *CallCmd) injections() ([]broker.Injection, error) {
	specs := broker.Specs{Bearer: c.Bearer, Basic: c.Basic, Header: c.Header, Query: c.Query, BodyField: c.BodyField, Form: c.FormField}
	return specs.Injections()
}

func (c *CallCmd) body(env *Env) ([]byte, error) {
	if c.Data != "" && c.DataFile != "" {
		return nil, errcode.New(errcode.Usage, "give --data or --data-file, not both")
	}
	if c.DataFile == "" {
		return []byte(c.Data), nil
	}
	var b []byte
	var err error
	if c.DataFile != "-" {
		if b, err = env.user().readFile(c.DataFile, broker.MaxRequestBody); err != nil {
			return nil, errcode.WithHint(userFileError("--data-file", c.DataFile, err), "pass a readable file, or - for stdin")
		}
	} else {
		b, err = io.ReadAll(io.LimitReader(env.IO.In, broker.MaxRequestBody+1))
	}
	if err != nil {
		return nil, userFileError("--data-file", c.DataFile, err)
	}
	return b, nil
}

func (c *CallCmd) Run(env *Env) (*CallResult, error) {
	start := env.Now()
	if len(c.URL) > 8 && strings.EqualFold(c.URL[:8], "https://") {
		broker.WarmRoots()
	}
	req, err := c.request(env)
	if err != nil {
		return nil, err
	}
	st, _, sel, err := env.openProjectToRead(c.Scope)
	if err != nil {
		return nil, err
	}
	req.Selection = sel.Selection
	// The values are read by now and the response is a round trip away:
	// the output guard's scanner is readied meanwhile (most often it is
	// the request's own redactor).
	req.Scan = env.prepareScanner
	b := broker.New(broker.Config{Store: st, Audit: audit.Open(st.Dirs.State, audit.Options{}), MaxResponse: c.MaxResponse, Now: env.Now})
	if env.daemon {
		// The daemon's context ends when its client is interrupted.
		return c.send(env.ctx(), env, b, req, start, nil)
	}
	// Once the value may have gone out, Ctrl-C or SIGTERM must not end this
	// process before the request's record is written: caught, the signal
	// cancels the request, which is recorded as interrupted, and then ends
	// the process as it would have, so a shell stops the script around it.
	ctx, stop := catchInterrupts(env.ctx())
	res, err := c.send(ctx, env, b, req, start, nil)
	if sig := stop(); sig != nil {
		term.EndBy(sig)
	}
	return res, err
}

// catchInterrupts returns parent, cancelled when this process gets SIGINT
// or SIGTERM, and stop, which ends the catching and returns the signal
// caught, if any.
func catchInterrupts(parent context.Context) (ctx context.Context, stop func() os.Signal) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	caught := make(chan os.Signal, 1)
	go func() {
		sig := <-sigs // nil once stop closes sigs
		if sig != nil {
			cancel()
		}
		caught <- sig
	}()
	return ctx, func() os.Signal {
		// After Stop, nothing more is sent on sigs: closing it is safe.
		signal.Stop(sigs)
		close(sigs)
		sig := <-caught
		cancel()
		return sig
	}
}

// request builds the broker request of the flags, without a project: the
// caller resolves the scope.
func (c *CallCmd) request(env *Env) (*broker.Request, error) {
	timeout, err := broker.ParseTimeout(c.Timeout)
	if err != nil {
		return nil, err
	}
	ins, err := c.injections()
	if err != nil {
		return nil, err
	}
	header, err := broker.ParseHeaderLines(c.RequestHeader)
	if err != nil {
		return nil, err
	}
	body, err := c.body(env)
	if err != nil {
		return nil, err
	}
	method := c.Method
	if method == "" {
		method = broker.DefaultMethod(body, ins)
	}
	req := &broker.Request{FrontEnd: audit.FrontEndCall, Method: method, URL: c.URL, Header: header, Body: body, Injections: ins, Timeout: timeout}
	if c.Verbose {
		// stderr, never the result: stdout stays one JSON value.
		req.Sent = func(s broker.Sent) { fmt.Fprint(env.IO.Err, termEscapeLines(s.String())) }
	}
	return req, nil
}

// send runs req through b and reads the whole (redacted) response. The
// response is closed (which writes its audit record) in place, or through
// async when a long-lived front end wants that off the reply's path.
func (c *CallCmd) send(ctx context.Context, env *Env, b *broker.Broker, req *broker.Request, start time.Time, async func(func())) (*CallResult, error) {
	resp, err := b.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	data, readErr := io.ReadAll(resp.Body)
	if async != nil {
		// A long-lived front end's Writer reports a failed append by
		// refusing the next requests (broker.Auditor's Ready).
		async(func() { resp.Close(readErr) })
	} else if err := resp.Close(readErr); err != nil {
		// No audit record, no response: the body is not printed.
		return nil, err
	}
	if err := broker.ReadError(ctx, readErr); err != nil {
		return nil, err
	}
	res := &CallResult{Status: resp.Status, Headers: flattenHeaders(resp.Header), Redacted: resp.Redacted(), AuditID: resp.AuditID,
		DurationMS: float64(env.Now().Sub(start).Microseconds()) / 1000}
	res.Body, res.BodyEncoding = decodeBody(resp.Header.Get("Content-Type"), data)
	for _, n := range resp.Notes {
		res.warn("%s", n)
	}
	if res.Redacted {
		res.warn("the response echoed an injected secret; every echo was replaced with %s", broker.Marker)
	}
	if c.Fail && resp.Status >= 400 {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Upstream, "upstream answered HTTP %d", resp.Status), "drop --fail to see the response")
	}
	return res, nil
}

func flattenHeaders(h http.Header) map[string]string {
	out := make(map[string]string, len(h))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out[strings.ToLower(k)] = strings.Join(h[k], ", ")
	}
	return out
}

// decodeBody presents a body the way an agent can use it: JSON inline,
// text as a string, anything else as base64.
func decodeBody(contentType string, data []byte) (any, string) {
	if len(data) == 0 {
		return "", "empty"
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "") && json.Valid(data) {
		return json.RawMessage(data), "json"
	}
	if utf8.Valid(data) && !strings.ContainsRune(string(data), 0) {
		return string(data), "text"
	}
	return base64.StdEncoding.EncodeToString(data), "base64"
}
