package audit

import (
	"context"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// Record is one broker decision. It has no field that can hold a secret
// value: names, styles, host and path only; never header values, query
// strings or bodies. TestRecordHoldsNoValue keeps it that way.
type Record struct {
	ID       string    `json:"id"`        // random 16-byte hex, set by Append if empty
	Time     time.Time `json:"time"`      // UTC, set by Append if zero
	FrontEnd string    `json:"front_end"` // call | proxy | mcp | env | openclaw
	Method   string    `json:"method,omitempty"`
	Host     string    `json:"host,omitempty"` // host[:port], never userinfo
	// Path is the URL path the client asked for, before any injection;
	// never the query or fragment (the query style injects there).
	Path string `json:"path,omitempty"`
	// Workspace and Project are the local names of the selection the
	// request used (names only); a team workspace's audit upload selects
	// its records by them (internal/sync).
	Workspace  string   `json:"workspace,omitempty"`
	Project    string   `json:"project,omitempty"`
	Secrets    []string `json:"secrets"`          // secret NAMES
	Styles     []string `json:"styles"`           // bearer, basic, header, query, body, form
	Status     int      `json:"status,omitempty"` // upstream HTTP status
	DurationMS float64  `json:"duration_ms"`
	Decision   string   `json:"decision"`         // allowed | blocked | redacted | error
	Reason     string   `json:"reason,omitempty"` // e.g. credential_echo, not_allowlisted, not_bound, ssrf_private_address, upstream_timeout
	Code       string   `json:"code,omitempty"`   // errcode code for blocked/error
	// Command is the base name of the program `env` started (never its
	// arguments, which could hold anything); a plain file name or Invalid.
	Command string `json:"command,omitempty"`
	// ExitCode is that program's exit status (128+N when signal N killed
	// it); absent means 0 or that no program ran.
	ExitCode int `json:"exit_code,omitempty"`
	// ClientUID, ClientPID and ClientToken say who asked when the broker
	// daemon ran the request for a local client (absent when the user's
	// own process ran it): the kernel's uid (decimal) and pid of the
	// connecting process, and the name of the broker token it presented.
	ClientUID   string `json:"client_uid,omitempty"`
	ClientPID   int    `json:"client_pid,omitempty"`
	ClientToken string `json:"client_token,omitempty"`
	// Prev is the hex SHA-256 of the previous line's bytes (without its
	// newline); "" only for the very first record. Append sets it.
	Prev string `json:"prev"`
}

// Decisions.
const (
	DecisionAllowed  = "allowed"
	DecisionBlocked  = "blocked"
	DecisionRedacted = "redacted"
	DecisionError    = "error"
)

// Front ends.
const (
	FrontEndCall  = "call"
	FrontEndProxy = "proxy"
	FrontEndMCP   = "mcp"
	// FrontEndEnv and FrontEndOpenClaw release values to another process
	// rather than send them upstream (policy.ReleaseEnv, ReleaseOpenClaw).
	FrontEndEnv      = "env"
	FrontEndOpenClaw = "openclaw"
)

// Injection styles, as the broker names them.
const (
	StyleBearer = "bearer"
	StyleBasic  = "basic"
	StyleHeader = "header"
	StyleQuery  = "query"
	StyleBody   = "body"
	StyleForm   = "form"
)

// Fail sets r's outcome for err through the one mapping
// (errcode.AuditOf): its code, blocked when policy or a human refused and
// error otherwise, and its reason. A function, not a method: Record has
// none (TestRecordHoldsNoValue).
func Fail(r *Record, err error) {
	o := errcode.AuditOf(err)
	r.Code, r.Reason, r.Decision = string(o.Code), o.Reason, DecisionError
	if o.Blocked {
		r.Decision = DecisionBlocked
	}
}

// Styles is the closed set of injection style names a record may carry.
// The broker's Style constants name the same set (its tests tie them).
func Styles() []string { return slices.Clone(styles) }

// Invalid replaces a field Append was given outside its syntax (a secret
// name that is not a name, a method that is not a token, ...). It cannot be
// mistaken for a real name, and it keeps whatever was there out of the log.
const Invalid = "(invalid)"

// maxPath bounds the stored path; longer paths are cut (at a rune boundary).
const maxPath = 2048

// ErrInvalidRecord means the broker handed Append a record without a known
// front end or decision: a bug, since both come from code, not from input.
var ErrInvalidRecord = errcode.New(errcode.Internal, "invalid audit record")

var (
	decisions = []string{DecisionAllowed, DecisionBlocked, DecisionRedacted, DecisionError}
	frontEnds = []string{FrontEndCall, FrontEndProxy, FrontEndMCP, FrontEndEnv, FrontEndOpenClaw}
	styles    = []string{StyleBearer, StyleBasic, StyleHeader, StyleQuery, StyleBody, StyleForm}
)

// normalise fills the fields Append owns and brings every other field into
// its syntax. Only a missing front end or decision is an error: everything
// else may come from a malformed request, which must still be audited.
func (r *Record) normalise(now func() time.Time) error {
	if !slices.Contains(frontEnds, r.FrontEnd) {
		return fmt.Errorf("%w: front end must be one of %s", ErrInvalidRecord, strings.Join(frontEnds, ", "))
	}
	if !slices.Contains(decisions, r.Decision) {
		return fmt.Errorf("%w: decision must be one of %s", ErrInvalidRecord, strings.Join(decisions, ", "))
	}
	if !validID(r.ID) {
		r.ID = newID()
	}
	if r.Time.IsZero() {
		r.Time = now()
	}
	r.Time = r.Time.UTC()
	if y := r.Time.Year(); y < 1 || y > 9999 { // outside what RFC 3339 (and json) can encode
		r.Time = now().UTC()
	}
	if r.Method != "" && !validMethod(r.Method) {
		r.Method = Invalid
	}
	r.Host = cleanHost(r.Host)
	r.Path = cleanPath(r.Path)
	r.Workspace, r.Project = cleanSpaceName(r.Workspace), cleanSpaceName(r.Project)
	r.Secrets = cleanList(r.Secrets, validSecretName)
	r.Styles = cleanList(r.Styles, func(s string) bool { return slices.Contains(styles, s) })
	if r.Status < 0 || r.Status > 999 {
		r.Status = 0
	}
	if math.IsNaN(r.DurationMS) || math.IsInf(r.DurationMS, 0) || r.DurationMS < 0 {
		r.DurationMS = 0 // json cannot encode NaN or ±Inf
	}
	if r.Reason != "" && !ValidToken(r.Reason) {
		r.Reason = Invalid
	}
	if r.Code != "" && !slices.Contains(errcode.Codes(), r.Code) {
		r.Code = Invalid
	}
	if r.Command != "" && !validCommand(r.Command) {
		r.Command = Invalid
	}
	if r.ExitCode < 0 || r.ExitCode > 255 {
		r.ExitCode = 255
	}
	if r.ClientUID != "" && !allDigits(r.ClientUID) {
		r.ClientUID = Invalid
	}
	if r.ClientPID < 0 {
		r.ClientPID = 0
	}
	if r.ClientToken != "" && !ValidToken(r.ClientToken) {
		r.ClientToken = Invalid
	}
	r.Prev = ""
	return nil
}

// cleanList returns list with every element outside the syntax replaced by
// Invalid, in a copy (the caller's list is never changed; a list that is
// all valid is returned as it is), and never nil, so the JSON reads []
// rather than null.
func cleanList(list []string, valid func(string) bool) []string {
	if list == nil {
		return []string{} // a JSON array, never null
	}
	for i, s := range list {
		if !valid(s) {
			// Copied before the first change: the list is the caller's.
			out := slices.Clone(list)
			for j := i; j < len(out); j++ {
				if !valid(out[j]) {
					out[j] = Invalid
				}
			}
			return out
		}
	}
	return list
}

// cleanHost keeps host[:port]: userinfo (user:password@) is dropped, and
// anything that is not a plain host name or address becomes Invalid.
func cleanHost(h string) string {
	if i := strings.LastIndexByte(h, '@'); i >= 0 {
		h = h[i+1:]
	}
	if h == "" {
		return ""
	}
	if len(h) > 300 {
		return Invalid
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(isAlnum(c) || strings.IndexByte(".-_:[]%", c) >= 0) {
			return Invalid
		}
	}
	return h
}

// cleanPath drops a query or fragment the caller passed by mistake and
// bounds the length; the path itself is the client's own, pre-injection.
func cleanPath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	if len(p) > maxPath {
		cut := maxPath
		for cut > 0 && !utf8.RuneStart(p[cut]) {
			cut--
		}
		p = p[:cut]
	}
	return strings.ToValidUTF8(p, "\uFFFD")
}

// cleanSpaceName keeps a workspace or project name in vault's syntax (a
// letter or digit, then up to 63 letters, digits, '.', '_' or '-'); ""
// stays "" and anything else becomes Invalid.
func cleanSpaceName(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 64 || !isAlnum(s[0]) {
		return Invalid
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte("._-", s[i]) < 0 {
			return Invalid
		}
	}
	return s
}

// validSecretName is vault's name syntax: a letter or '_' followed by up to
// 127 letters, digits or '_'.
func validSecretName(s string) bool {
	if len(s) == 0 || len(s) > 128 || !(isLetter(s[0]) || s[0] == '_') {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !(isAlnum(s[i]) || s[i] == '_') {
			return false
		}
	}
	return true
}

// validID accepts what the broker generates (hex) and similar short ids;
// Verify quotes ids in its details, so they must stay harmless.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(isAlnum(s[i]) || s[i] == '-' || s[i] == '_') {
			return false
		}
	}
	return true
}

// validMethod accepts an RFC 9110 token of at most 32 bytes.
func validMethod(s string) bool {
	if len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte("!#$%&'*+-.^_`|~", s[i]) < 0 {
			return false
		}
	}
	return true
}

// validCommand accepts a plain file name of at most 64 bytes: letters,
// digits and ._+- only, not starting with '.' or '-'.
func validCommand(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte("._+-", s[i]) < 0 {
			return false
		}
	}
	return true
}

// ValidToken accepts snake_case names: reasons such as not_allowlisted,
// and broker token names.
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 || !(s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || isDigit(c) || c == '_') {
			return false
		}
	}
	return true
}

// hostMatches reports whether a record's host matches a filter: exactly
// (case-insensitively), or by name when the record carries a port and the
// filter does not.
func hostMatches(recordHost, filter string) bool {
	if strings.EqualFold(recordHost, filter) {
		return true
	}
	name, _, err := net.SplitHostPort(recordHost)
	if err != nil {
		return false
	}
	filter = strings.TrimSuffix(strings.TrimPrefix(filter, "["), "]")
	return strings.EqualFold(name, filter)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool  { return isLetter(c) || isDigit(c) }

// Client identifies the process a broker daemon served: the kernel's uid
// and pid of the connecting process, never anything the process said,
// and the name of the per-agent broker token it presented, if any.
type Client struct {
	UID   uint32 `json:"uid"`
	PID   int32  `json:"pid,omitempty"`
	Token string `json:"token,omitempty"`
}

type clientKey struct{}

// WithClient returns ctx carrying the client every record made under it
// names.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// StampClient names, in r, the client ctx carries (see WithClient).
func StampClient(ctx context.Context, r *Record) {
	if c := ClientFrom(ctx); c != nil {
		r.ClientUID = strconv.FormatUint(uint64(c.UID), 10)
		r.ClientPID = int(c.PID)
		r.ClientToken = c.Token
	}
}

func allDigits(s string) bool {
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// ClientFrom returns the client ctx carries, or nil.
func ClientFrom(ctx context.Context) *Client {
	if c, ok := ctx.Value(clientKey{}).(Client); ok {
		return &c
	}
	return nil
}
