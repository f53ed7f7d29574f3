package errcode_test

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/policy"
	"github.com/agentsecrets/agentsecrets/internal/vault"
)

// TestAuditOf: every error type that reaches an audit record maps to one
// decision and reason, however it is wrapped. Before AuditOf the broker and
// env had a mapping each, and they disagreed (a wrong admin passphrase was
// "internal" to one and "approval_denied" to the other).
func TestAuditOf(t *testing.T) {
	_, deny := policy.Check(nil, nil, policy.Request{Scheme: "https", Host: "api.example.com", Port: 443, Path: "/", Method: "GET",
		Uses: []policy.Use{{Secret: "KEY", Surface: policy.SurfaceHeader}}})
	blocked := &broker.BlockedError{Host: "169.254.169.254", IP: netip.MustParseAddr("169.254.169.254"), Reason: broker.ReasonMetadata}
	notReleased := policy.CheckRelease(nil, policy.ReleaseEnv, "w", "p", "KEY")
	tests := []struct {
		name    string
		err     error
		code    errcode.Code
		blocked bool
		reason  string
	}{
		{"policy denial", deny, errcode.Denied, true, policy.ReasonNotAllowlisted},
		{"policy denial, wrapped twice", errcode.Errorf(errcode.Denied, "hop 2: %w", fmt.Errorf("redirect: %w", deny)), errcode.Denied, true, policy.ReasonNotAllowlisted},
		{"method override", policy.MethodOverrideError(), errcode.Denied, true, policy.ReasonMethodOverride},
		{"ssrf guard", errcode.WithHint(blocked, "hint"), errcode.Denied, true, broker.ReasonMetadata},
		{"not released", notReleased, errcode.ApprovalRequired, true, policy.ReasonNotReleased},
		{"approval required", policy.ErrApprovalRequired, errcode.ApprovalRequired, true, "approval_required"},
		{"approval denied", errcode.WithHint(policy.ErrApprovalDenied, "retry"), errcode.Denied, true, policy.ReasonApprovalDenied},
		{"value in argv", errcode.WithHint(broker.ErrValueInArgv, "use the variable"), errcode.Denied, true, broker.ReasonValueInArgv},
		{"unknown secret", vault.ErrNotFound, errcode.NotFound, false, "unknown_secret"},
		{"timeout", errcode.New(errcode.Timeout, "slow"), errcode.Timeout, false, "upstream_timeout"},
		{"upstream", errcode.New(errcode.Upstream, "502"), errcode.Upstream, false, "upstream_error"},
		{"too large", broker.ErrResponseTooLarge, errcode.TooLarge, false, "too_large"},
		{"usage", errcode.New(errcode.Usage, "bad"), errcode.Usage, false, "bad_request"},
		{"unavailable", errcode.New(errcode.Unavailable, "locked"), errcode.Unavailable, false, "vault_unavailable"},
		{"denied without a reason", errcode.New(errcode.Denied, "wrong vault passphrase"), errcode.Denied, true, "denied"},
		{"conflict", errcode.New(errcode.Conflict, "changed"), errcode.Conflict, false, "internal"},
		{"uncoded", errors.New("boom"), errcode.Internal, false, "internal"},
		{"joined: the first reason named wins", errors.Join(errcode.New(errcode.Upstream, "x"), deny), errcode.Upstream, false, policy.ReasonNotAllowlisted},
		{"reasoned sentinel under a coded wrapper", errcode.Errorf(errcode.Unavailable, "release: %w", policy.ErrNotReleased), errcode.Unavailable, false, policy.ReasonNotReleased},
	}
	for _, tt := range tests {
		got := errcode.AuditOf(tt.err)
		want := errcode.Outcome{Code: tt.code, Blocked: tt.blocked, Reason: tt.reason}
		if got != want {
			t.Errorf("%s: AuditOf = %+v, want %+v", tt.name, got, want)
		}
	}
	if got := errcode.AuditOf(nil); got != (errcode.Outcome{}) {
		t.Errorf("AuditOf(nil) = %+v", got)
	}
}
