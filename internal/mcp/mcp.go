// Package mcp is agentsecrets' Model Context Protocol server, built on the
// official Go SDK. It knows nothing about commands: the caller hands it a
// list of tools, each with the JSON Schemas of its input and output (the
// ones in schema/, passed through unchanged, never inferred from Go types)
// and a handler. Every failure becomes an isError result carrying the same
// code, message and hint as the CLI, through errcode.Classify.
//
// Transports: stdio (the usual way an MCP client starts a server) and
// Streamable HTTP on a loopback address behind a session token, with the
// same Host check as the local proxy.
package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Annotations are the hints a client shows its user before a call. They
// must be honest: a client may skip confirmation for a read-only tool.
type Annotations struct {
	ReadOnly    bool
	Destructive bool
	Idempotent  bool
	OpenWorld   bool
}

// Handler runs one tool call. args is the JSON object the client sent
// (never nil; "{}" when it sent none). The result is encoded as JSON and
// must match the tool's output schema.
type Handler func(ctx context.Context, args json.RawMessage) (any, error)

// Tool is one MCP tool.
type Tool struct {
	Name        string
	Title       string
	Description string
	Annotations Annotations
	// Input and Output are JSON Schema (2020-12) documents; Input must be
	// of type object.
	Input, Output json.RawMessage
	Handler       Handler
}

// Server serves a fixed set of tools. It is safe for concurrent use by
// several sessions.
type Server struct {
	sdk   *sdk.Server
	calls atomic.Int64
}

// New builds a server named name at version, with tools.
func New(name, version, instructions string, tools []Tool) (*Server, error) {
	s := &Server{}
	s.sdk = sdk.NewServer(&sdk.Implementation{Name: name, Title: name, Version: version}, &sdk.ServerOptions{
		Instructions: instructions,
		// The tool set is fixed for the process: no list-changed
		// notifications will come. Logging stays advertised for clients
		// on 2025-11-25, which may call logging/setLevel (the SDK answers).
		//lint:ignore SA1019 deprecated only from 2026-07-28; older clients still use it
		Capabilities: &sdk.ServerCapabilities{Logging: &sdk.LoggingCapabilities{}, Tools: &sdk.ToolCapabilities{}},
	})
	seen := map[string]bool{}
	for _, t := range tools {
		if seen[t.Name] {
			return nil, fmt.Errorf("tool %q defined twice", t.Name)
		}
		seen[t.Name] = true
		tool, err := t.sdkTool()
		if err != nil {
			return nil, err
		}
		s.sdk.AddTool(tool, s.handle(t))
	}
	return s, nil
}

// Calls is the number of tool calls answered so far.
func (s *Server) Calls() int64 { return s.calls.Load() }

func (t Tool) sdkTool() (*sdk.Tool, error) {
	var in map[string]any
	if err := json.Unmarshal(t.Input, &in); err != nil || in["type"] != "object" {
		return nil, fmt.Errorf("tool %q: input schema is not a JSON object schema of type object", t.Name)
	}
	if len(t.Output) > 0 && !json.Valid(t.Output) {
		return nil, fmt.Errorf("tool %q: output schema is not valid JSON", t.Name)
	}
	a := t.Annotations
	tool := &sdk.Tool{
		Name:        t.Name,
		Title:       t.Title,
		Description: t.Description,
		// Raw bytes: the SDK passes them through instead of inferring a
		// schema from Go types (which would make slices ["null","array"]).
		InputSchema: t.Input,
		Annotations: &sdk.ToolAnnotations{
			Title:           t.Title,
			ReadOnlyHint:    a.ReadOnly,
			DestructiveHint: &a.Destructive,
			IdempotentHint:  a.Idempotent,
			OpenWorldHint:   &a.OpenWorld,
		},
	}
	if len(t.Output) > 0 {
		tool.OutputSchema = t.Output
	}
	return tool, nil
}

// handle adapts a Handler to the SDK: the result goes out both as
// structuredContent and as its JSON text (for clients that read only
// content); an error goes out as an isError result whose text is the CLI's
// {"error":{...}} object. Error results carry no structuredContent, since
// it would have to match the output schema.
func (s *Server) handle(t Tool) sdk.ToolHandler {
	return func(ctx context.Context, req *sdk.CallToolRequest) (res *sdk.CallToolResult, err error) {
		s.calls.Add(1)
		defer func() {
			// A panic message could quote anything the handler held; the
			// client learns only that the tool failed.
			if recover() != nil {
				res, err = errorResult(errcode.Errorf(errcode.Internal, "tool %s failed unexpectedly", t.Name)), nil
			}
		}()
		sc := &scans{}
		ctx = context.WithValue(ctx, scansKey{}, sc)
		args := json.RawMessage("{}")
		if req.Params != nil && len(bytes.TrimSpace(req.Params.Arguments)) > 0 && !bytes.Equal(bytes.TrimSpace(req.Params.Arguments), []byte("null")) {
			args = req.Params.Arguments
		}
		out, herr := t.Handler(ctx, args)
		var result *sdk.CallToolResult
		var b []byte
		switch {
		case herr != nil:
			result = errorResult(herr)
			b = []byte(result.Content[0].(*sdk.TextContent).Text)
		default:
			var merr error
			if b, merr = encode(out); merr != nil {
				return errorResult(errcode.Errorf(errcode.Internal, "encode %s result: %v", t.Name, merr)), nil
			}
			result = &sdk.CallToolResult{
				Content:           []sdk.Content{&sdk.TextContent{Text: string(b)}},
				StructuredContent: json.RawMessage(b),
			}
		}
		// The last look before the protocol stream: structuredContent
		// and the text are the same bytes b.
		if sc.hit(b) {
			return errorResult(errcode.WithHint(errcode.Errorf(errcode.Internal, "the %s result held a value the call used; it was withheld", t.Name),
				"nothing was returned; report this: a value got past redaction")), nil
		}
		return result, nil
	}
}

// ErrorReport is the text of a failed call: the CLI's error object.
type ErrorReport = errcode.Envelope

func errorResult(err error) *sdk.CallToolResult {
	b, _ := encode(ErrorReport{Error: errcode.Classify(err)})
	return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}}
}

func encode(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// ServeStdio runs one session over in and out (newline-delimited JSON-RPC)
// until the client closes in or ctx ends. Every line passes filterLines
// first: a malformed one is answered with a JSON-RPC error and the
// session goes on. Nothing but JSON-RPC messages is written to out.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	w := &lineWriter{w: out}
	pr, pw := io.Pipe()
	filtered := make(chan error, 1)
	go func() {
		err := filterLines(in, pw, w)
		pw.CloseWithError(err) // nil: the SDK reads io.EOF
		filtered <- err
	}()
	err := s.sdk.Run(ctx, &sdk.IOTransport{Reader: pr, Writer: w})
	// A filter still writing finds the pipe closed; one blocked reading
	// in (stdin) stays so until the process ends, as the SDK's own
	// reader would.
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil && ctx.Err() != nil {
		return nil
	}
	select {
	case ferr := <-filtered:
		if ferr != nil && !errors.Is(ferr, io.ErrClosedPipe) {
			return ferr
		}
	default:
	}
	return err
}
