package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/audit"
	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// OpenclawCmd groups the OpenClaw integration.
type OpenclawCmd struct {
	Resolve OpenclawResolveCmd `cmd:"" help:"OpenClaw exec SecretRef provider (protocol v1): read a request on stdin, answer with the values of secrets approved for OpenClaw release."`
}

// OpenclawResolveCmd is an OpenClaw exec provider. OpenClaw starts it with
// an empty environment plus the provider's passEnv, writes one request to
// stdin and reads one response from stdout; its args select the project.
type OpenclawResolveCmd struct {
	Scope
}

// Protocol limits. OpenClaw batches at most a few hundred ids; anything far
// larger is not OpenClaw.
const (
	openclawProtocol   = 1
	openclawMaxRequest = 1 << 20
	openclawMaxIDs     = 4096
)

// Per-id error codes. OpenClaw shows NOT_FOUND by name; the others it
// reports as a provider error for that id without displaying them.
const (
	openclawNotFound    = "NOT_FOUND"
	openclawNotApproved = "NOT_APPROVED"
	openclawInvalidID   = "INVALID_ID"
	openclawUnavailable = "UNAVAILABLE"
	openclawNotText     = "NOT_TEXT"
)

// OpenclawResolveResult summarises one answered request. It is not printed:
// stdout carries the protocol response, which holds the released values.
type OpenclawResolveResult struct {
	Provider string `json:"provider"`
	// Released are the ids answered with a value.
	Released []string `json:"released"`
	// Errors maps every other id to its protocol error code.
	Errors map[string]string `json:"errors"`
}

// ExitStatus is 0 even when ids failed: per-id errors are part of the
// protocol, and a non-zero exit would fail every ref of the batch.
func (r *OpenclawResolveResult) ExitStatus() int { return 0 }

type openclawRequest struct {
	ProtocolVersion json.RawMessage `json:"protocolVersion"`
	Provider        *string         `json:"provider"`
	IDs             []string        `json:"ids"`
}

type openclawError struct {
	Code    string `json:"code"`
	Message string `json:"message,omitempty"`
}

type openclawResponse struct {
	ProtocolVersion int                      `json:"protocolVersion"`
	Values          map[string]string        `json:"values"`
	Errors          map[string]openclawError `json:"errors,omitempty"`
}

// ErrOpenclawRequest: stdin is not a protocol v1 request. The exit status
// is usage's, which OpenClaw reports as a failure of the whole provider.
var ErrOpenclawRequest = errcode.New(errcode.Usage, "not an OpenClaw exec provider request (protocol version 1)")

const openclawRequestHint = `OpenClaw writes {"protocolVersion":1,"provider":"NAME","ids":["SECRET_NAME"]} on stdin; configure agentsecrets as an exec provider (see README "OpenClaw secret resolver")`

func (c *OpenclawResolveCmd) Run(env *Env) (*OpenclawResolveResult, error) {
	req, err := readOpenclawRequest(env.IO.In)
	if err != nil {
		return nil, err
	}
	st, err := env.storeToRead()
	if err != nil {
		return nil, err
	}
	ix, err := st.SharedIndex()
	if err != nil {
		return nil, err
	}
	sel, err := c.Scope.resolve(env, ix.Current)
	if err != nil {
		return nil, err
	}
	res := &OpenclawResolveResult{Provider: *req.Provider, Released: []string{}, Errors: map[string]string{}}
	resp := openclawResponse{ProtocolVersion: openclawProtocol, Values: map[string]string{}, Errors: map[string]openclawError{}}
	refuse := func(id, code string, err error) {
		// Only the ids' own errors carry their hint: a usage error's
		// default hint (see --help) means nothing to OpenClaw.
		rep := errcode.Classify(err)
		msg := rep.Message
		if rep.Hint != "" && code != openclawInvalidID && code != openclawNotText {
			msg += "; " + rep.Hint
		}
		resp.Errors[id] = openclawError{Code: code, Message: msg}
		res.Errors[id] = code
	}

	refs := map[string]broker.Ref{}
	var approved []broker.Ref
	var approvedIDs, notApprovedIDs, unknownIDs []string
	var notApproved, unknown []broker.Ref
	for _, id := range req.IDs {
		if _, dup := refs[id]; dup || resp.Errors[id].Code != "" {
			continue
		}
		ref, err := parseOpenclawID(id, sel.Selection)
		if err != nil {
			refuse(id, openclawInvalidID, err)
			continue
		}
		if err := broker.CheckRelease(ix, policy.ReleaseOpenClaw, ref); err != nil {
			if errcode.Classify(err).Code == errcode.NotFound {
				refuse(id, openclawNotFound, err)
				unknown, unknownIDs = append(unknown, ref), append(unknownIDs, id)
			} else {
				refuse(id, openclawNotApproved, err)
				notApproved, notApprovedIDs = append(notApproved, ref), append(notApprovedIDs, id)
			}
			continue
		}
		refs[id] = ref
		approved = append(approved, ref)
		approvedIDs = append(approvedIDs, id)
	}

	// Every decision is audited by the broker; an id whose record cannot be
	// written gets UNAVAILABLE, never a value (no record, no release).
	release := func(refs []broker.Ref) broker.ReleaseRequest {
		return broker.ReleaseRequest{FrontEnd: audit.FrontEndOpenClaw, Mode: policy.ReleaseOpenClaw, Refs: refs,
			Audit: audit.Open(st.Dirs.State, audit.Options{}), Now: env.Now}
	}
	for _, refused := range []struct {
		refs []broker.Ref
		ids  []string
		why  error
	}{{notApproved, notApprovedIDs, policy.ErrNotReleased}, {unknown, unknownIDs, vault.ErrNotFound}} {
		if len(refused.refs) == 0 {
			continue
		}
		if err := broker.RefuseRelease(env.ctx(), release(refused.refs), refused.why); err != nil {
			for _, id := range refused.ids {
				refuse(id, openclawUnavailable, err)
			}
		}
	}

	if len(approved) > 0 {
		rel, err := broker.Release(env.ctx(), st, release(approved))
		if err != nil {
			// Already audited by Release.
			for _, id := range approvedIDs {
				refuse(id, openclawUnavailable, err)
			}
		} else {
			defer rel.Wipe()
			var outcome broker.ReleaseOutcome
			for _, id := range approvedIDs {
				// Revealed for OpenClaw: handing values to it is what
				// resolve is for.
				v := rel.Value(refs[id]).Reveal()
				if !utf8.Valid(v) {
					outcome.Err = errcode.New(errcode.Usage, "the value is not UTF-8 text, which JSON cannot carry unchanged")
					refuse(id, openclawNotText, outcome.Err)
					rel.Withhold(refs[id])
					continue
				}
				resp.Values[id] = string(v)
				res.Released = append(res.Released, id)
			}
			if len(res.Released) > 0 {
				// Some values go out: the record is allowed, naming them.
				outcome.Err = nil
			}
			if err := rel.Finish(env.ctx(), outcome); err != nil {
				for _, id := range approvedIDs {
					delete(resp.Values, id)
					refuse(id, openclawUnavailable, err)
				}
				res.Released = []string{}
			}
		}
	}

	for _, id := range req.IDs {
		if e, ok := resp.Errors[id]; ok {
			fmt.Fprintf(env.IO.Err, "agentsecrets openclaw resolve: %s: %s\n", id, e.Message)
		}
	}
	if len(resp.Errors) == 0 {
		resp.Errors = nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resp); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encode response: %w", err)
	}
	_, err = env.IO.Out.Write(buf.Bytes())
	clear(buf.Bytes())
	if err != nil {
		return nil, errcode.Errorf(errcode.Unavailable, "write response: %w", err)
	}
	return res, nil
}

// readOpenclawRequest reads and checks one request. Unknown fields are
// allowed (later minor revisions may add some); a version other than 1 is
// not.
func readOpenclawRequest(r io.Reader) (*openclawRequest, error) {
	bad := func(why string) error {
		return errcode.WithHint(fmt.Errorf("%w: %s", ErrOpenclawRequest, why), openclawRequestHint)
	}
	b, err := io.ReadAll(io.LimitReader(r, openclawMaxRequest+1))
	if err != nil {
		return nil, bad("cannot read stdin")
	}
	if len(b) > openclawMaxRequest {
		return nil, bad("request larger than 1 MiB")
	}
	var req openclawRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&req); err != nil {
		return nil, bad("stdin is not one JSON object with the protocol's fields")
	}
	if dec.More() {
		return nil, bad("more than one JSON value on stdin")
	}
	if string(req.ProtocolVersion) != "1" {
		return nil, bad("protocolVersion must be 1")
	}
	if req.Provider == nil {
		return nil, bad("provider is missing")
	}
	if req.IDs == nil {
		return nil, bad("ids is missing")
	}
	if len(req.IDs) > openclawMaxIDs {
		return nil, bad(fmt.Sprintf("more than %d ids", openclawMaxIDs))
	}
	return &req, nil
}

// parseOpenclawID maps an id to a secret: NAME is a secret of the project
// the provider's args (or the user's current selection) select;
// WORKSPACE/PROJECT/NAME names one anywhere. OpenClaw's exec id grammar
// has no '_' ([A-Za-z0-9][A-Za-z0-9._:/#-]*), so '-' in the NAME part
// stands for '_': STRIPE-KEY is the secret STRIPE_KEY. Secret names never
// contain '-', so the mapping is one to one; '_' is accepted as well.
func parseOpenclawID(id string, def vault.Selection) (broker.Ref, error) {
	parts := strings.Split(id, "/")
	parts[len(parts)-1] = strings.ReplaceAll(parts[len(parts)-1], "-", "_")
	var ref broker.Ref
	switch len(parts) {
	case 1:
		ref = broker.Ref{Selection: def, Name: parts[0]}
	case 3:
		ref = broker.Ref{Selection: vault.Selection{Workspace: parts[0], Project: parts[1]}, Name: parts[2]}
		if vault.CheckSpaceName("workspace", ref.Workspace) != nil || vault.CheckSpaceName("project", ref.Project) != nil {
			return broker.Ref{}, errcode.New(errcode.Usage, "invalid workspace or project in id (want NAME or WORKSPACE/PROJECT/NAME)")
		}
	default:
		return broker.Ref{}, errcode.New(errcode.Usage, "invalid id (want NAME or WORKSPACE/PROJECT/NAME)")
	}
	if vault.CheckSecretName(ref.Name) != nil {
		return broker.Ref{}, errcode.New(errcode.Usage, "invalid secret name in id (want NAME or WORKSPACE/PROJECT/NAME)")
	}
	return ref, nil
}
