// Package errcode owns the closed set of error codes agentsecrets reports.
//
// Every front end (CLI, proxy, MCP, audit) turns an error into a code through
// Classify, so a failure reads the same everywhere: one table maps a code to
// its exit status, its HTTP status and a default hint. Packages declare their
// sentinels with New and wrap them with fmt.Errorf("...: %w", err); anything
// that carries no code classifies as Internal.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
)

// Code is one of the documented error codes. The set is closed: adding a code
// is a contract change (README table, schema/error.json).
type Code string

const (
	Internal         Code = "internal"
	Usage            Code = "usage"
	NotFound         Code = "not_found"
	Denied           Code = "denied"
	ApprovalRequired Code = "approval_required"
	Conflict         Code = "conflict"
	Unavailable      Code = "unavailable"
	Upstream         Code = "upstream"
	Timeout          Code = "timeout"
	TooLarge         Code = "too_large"
	Unauthorized     Code = "unauthorized"
	RateLimited      Code = "rate_limited"
	CheckFailed      Code = "check_failed"
)

// Spec is the fixed meaning of a code.
type Spec struct {
	Code        Code
	Exit        int
	HTTP        int
	Description string
	Hint        string
}

var table = []Spec{
	{Internal, 1, http.StatusInternalServerError, "a bug or an unexpected environment failure", "run `agentsecrets doctor` and report the output if the problem persists"},
	{Usage, 2, http.StatusBadRequest, "the command line or --input is invalid", "run `agentsecrets COMMAND --help` or `agentsecrets schema COMMAND`"},
	{NotFound, 3, http.StatusNotFound, "a named secret, project, workspace or file does not exist", "run `agentsecrets secrets list` to see what exists"},
	{Denied, 4, http.StatusForbidden, "policy or a wrong passphrase refused the operation", "run `agentsecrets workspace allowlist list` to see the policy"},
	{ApprovalRequired, 5, http.StatusForbidden, "the change widens policy and needs the admin passphrase", "a human reruns the command on a terminal, or with --passphrase-file PATH"},
	{Conflict, 6, http.StatusConflict, "the target already exists or was changed concurrently", "run `agentsecrets status` and retry"},
	{Unavailable, 7, http.StatusServiceUnavailable, "the vault backend or another dependency cannot be reached", "run `agentsecrets doctor`"},
	{Upstream, 8, http.StatusBadGateway, "the upstream API failed or answered with an error status", "check the upstream service; the response is in the result"},
	{Timeout, 9, http.StatusGatewayTimeout, "an operation did not finish in time", "retry, or raise --timeout"},
	{TooLarge, 10, http.StatusRequestEntityTooLarge, "an input or response exceeds a size limit", "send a smaller input"},
	{Unauthorized, 11, http.StatusUnauthorized, "a session token is missing or wrong", "use the token from `agentsecrets proxy status`"},
	{RateLimited, 12, http.StatusTooManyRequests, "too many attempts: the sync server is limiting authentication", "wait a minute and retry"},
	// Not an error report: the exit status of a command that printed its
	// whole result, in which a check failed (doctor, audit verify).
	{CheckFailed, 13, http.StatusInternalServerError, "the command printed its full result, and a check in it failed (doctor, audit verify)", "read the failed checks in the result; each names its fix"},
}

// Specs returns the table, ordered by exit status, for documentation and schemas.
func Specs() []Spec {
	out := append([]Spec(nil), table...)
	sort.Slice(out, func(i, j int) bool { return out[i].Exit < out[j].Exit })
	return out
}

// Codes lists every code, for the error schema's enum.
func Codes() []string {
	out := make([]string, 0, len(table))
	for _, s := range Specs() {
		out = append(out, string(s.Code))
	}
	return out
}

// Lookup returns the spec of c; an unknown code is treated as Internal.
func Lookup(c Code) Spec {
	for _, s := range table {
		if s.Code == c {
			return s
		}
	}
	return table[0]
}

// Error is a classified error. Message and Hint must never contain a secret
// value: they are printed, served over HTTP and written to the audit log.
type Error struct {
	Code    Code
	Message string
	Hint    string
	Err     error
	// Reason, when set, is the audit reason of this error (see AuditOf):
	// a sentinel that means one specific refusal names it.
	Reason string
}

// Error returns Message; Errorf already folds the wrapped error's text into it.
func (e *Error) Error() string {
	if e.Message == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// AuditReason is the reason set on e ("" lets an error it wraps, or its
// code, name one).
func (e *Error) AuditReason() string { return e.Reason }

// New declares a sentinel with a code.
func New(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// NewReason declares a sentinel with a code and the audit reason of the
// refusal it stands for.
func NewReason(code Code, reason, message string) *Error {
	return &Error{Code: code, Message: message, Reason: reason}
}

// Errorf builds a coded error with a formatted message (wrapping with %w works).
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	wrapped := errors.Unwrap(err)
	if _, multi := err.(interface{ Unwrap() []error }); multi {
		// Several %w verbs: keep the whole joined chain, not nothing.
		wrapped = err
	}
	return &Error{Code: code, Message: err.Error(), Err: wrapped}
}

// WithHint returns err carrying hint, keeping its code and message.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// Report is what every front end shows for a failed operation.
type Report struct {
	Code    Code   `json:"code" jsonschema:"description=One of the documented error codes"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty" jsonschema:"description=The next command to run"`
}

// Envelope is the JSON shape of every failure on every front end: the CLI's
// output, the proxy's HTTP error body and an MCP tool's error text.
type Envelope struct {
	Error Report `json:"error"`
}

// Classify turns any error into a Report. The message is the full wrapped
// error text, so context added by fmt.Errorf reaches the user. The code comes
// from the outermost *Error in the chain; a hint added with WithHint overrides
// the code's own hint, and the table's default hint is the last resort.
func Classify(err error) Report {
	if err == nil {
		return Report{}
	}
	r := Report{Code: Internal, Message: err.Error()}
	var coded *Error
	if errors.As(err, &coded) {
		r.Code = coded.Code
		r.Hint = coded.Hint
	}
	var h *hinted
	if errors.As(err, &h) {
		r.Hint = h.hint
	}
	if r.Hint == "" {
		r.Hint = Lookup(r.Code).Hint
	}
	return r
}

// AuditReasoner is an error that names why it refused or failed, for the
// audit record: a policy denial, an address the SSRF guard blocks, a
// sentinel declared with NewReason.
type AuditReasoner interface {
	AuditReason() string
}

// Outcome is how a failed operation is audited.
type Outcome struct {
	Code Code
	// Blocked: policy or a human refused (denied, approval_required); any
	// other failure is an error.
	Blocked bool
	// Reason is a short token: the first non-empty AuditReason in the
	// error's chain, else the code's own reason.
	Reason string
}

// codeReasons are the reasons of errors that name none themselves.
var codeReasons = map[Code]string{
	NotFound:         "unknown_secret",
	Timeout:          "upstream_timeout",
	Upstream:         "upstream_error",
	TooLarge:         "too_large",
	Usage:            "bad_request",
	Unavailable:      "vault_unavailable",
	Denied:           "denied",
	ApprovalRequired: "approval_required",
}

// AuditOf is the one mapping from an error to its audit decision and
// reason, for every path that audits (the broker's requests and releases).
// It is nil-safe: a nil error has the zero Outcome.
func AuditOf(err error) Outcome {
	if err == nil {
		return Outcome{}
	}
	code := Classify(err).Code
	o := Outcome{Code: code, Blocked: code == Denied || code == ApprovalRequired, Reason: auditReason(err)}
	if o.Reason == "" {
		o.Reason = codeReasons[code]
	}
	if o.Reason == "" {
		o.Reason = "internal"
	}
	return o
}

// auditReason walks err's whole chain (errors.As would stop at the first
// *Error, whose Reason is usually empty) for the first reason named.
func auditReason(err error) string {
	for err != nil {
		if r, ok := err.(AuditReasoner); ok {
			if s := r.AuditReason(); s != "" {
				return s
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if s := auditReason(e); s != "" {
					return s
				}
			}
			return ""
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		default:
			return ""
		}
	}
	return ""
}

// ExitCode is the process exit status for err (0 for nil).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	return Lookup(Classify(err).Code).Exit
}
