package errcode

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"testing"
)

var allCodes = []Code{
	Internal, Usage, NotFound, Denied, ApprovalRequired, Conflict,
	Unavailable, Upstream, Timeout, TooLarge, Unauthorized, RateLimited, CheckFailed,
}

func TestSpecsTable(t *testing.T) {
	specs := Specs()
	if len(specs) != len(allCodes) {
		t.Fatalf("Specs() has %d entries, want %d", len(specs), len(allCodes))
	}
	seenCode := map[Code]bool{}
	seenExit := map[int]Code{}
	for i, s := range specs {
		t.Run(string(s.Code), func(t *testing.T) {
			if s.Code == "" {
				t.Fatal("empty code")
			}
			if seenCode[s.Code] {
				t.Fatalf("code %q listed twice", s.Code)
			}
			seenCode[s.Code] = true
			if other, dup := seenExit[s.Exit]; dup {
				t.Fatalf("exit %d shared by %q and %q", s.Exit, other, s.Code)
			}
			seenExit[s.Exit] = s.Code
			if s.Exit != i+1 {
				t.Fatalf("exit %d at position %d, want exit statuses 1..N in order", s.Exit, i)
			}
			if s.Description == "" {
				t.Fatal("empty description")
			}
			if s.Hint == "" {
				t.Fatal("empty hint")
			}
			if s.HTTP < 400 || s.HTTP > 599 || http.StatusText(s.HTTP) == "" {
				t.Fatalf("HTTP status %d is not an error status", s.HTTP)
			}
			if Lookup(s.Code) != s {
				t.Fatalf("Lookup(%q) = %+v, want %+v", s.Code, Lookup(s.Code), s)
			}
		})
	}
	for _, c := range allCodes {
		if !seenCode[c] {
			t.Errorf("code %q missing from Specs()", c)
		}
	}
	if specs[0].Code != Internal || specs[0].Exit != 1 {
		t.Errorf("first spec = %+v, want internal with exit 1", specs[0])
	}
}

func TestSpecsReturnsCopy(t *testing.T) {
	s := Specs()
	s[0].Hint = "mutated"
	if Specs()[0].Hint == "mutated" || Lookup(s[0].Code).Hint == "mutated" {
		t.Fatal("Specs() exposes the package table")
	}
}

func TestCodesMatchesSpecs(t *testing.T) {
	var want []string
	for _, s := range Specs() {
		want = append(want, string(s.Code))
	}
	if got := Codes(); !slices.Equal(got, want) {
		t.Fatalf("Codes() = %v, want %v", got, want)
	}
}

func TestLookupUnknown(t *testing.T) {
	if got := Lookup("no_such_code"); got.Code != Internal {
		t.Fatalf("Lookup(unknown) = %q, want internal", got.Code)
	}
}

func TestClassify(t *testing.T) {
	errNotFound := New(NotFound, "secret not found")
	errHinted := &Error{Code: Conflict, Message: "busy", Hint: "own hint"}
	tests := []struct {
		name        string
		err         error
		wantCode    Code
		wantMessage string
		wantHint    string // "" means the table hint of wantCode
	}{
		{
			name:        "plain error",
			err:         errors.New("boom"),
			wantCode:    Internal,
			wantMessage: "boom",
		},
		{
			name:        "sentinel",
			err:         errNotFound,
			wantCode:    NotFound,
			wantMessage: "secret not found",
		},
		{
			name:        "wrapped sentinel",
			err:         fmt.Errorf("ctx: %w", errNotFound),
			wantCode:    NotFound,
			wantMessage: "ctx: secret not found",
		},
		{
			name:        "doubly wrapped sentinel",
			err:         fmt.Errorf("outer: %w", fmt.Errorf("ctx: %w", errNotFound)),
			wantCode:    NotFound,
			wantMessage: "outer: ctx: secret not found",
		},
		{
			name:        "plain error wrapped with %v loses nothing but has no code",
			err:         fmt.Errorf("ctx: %v", errNotFound),
			wantCode:    Internal,
			wantMessage: "ctx: secret not found",
		},
		{
			name:        "own hint",
			err:         fmt.Errorf("ctx: %w", errHinted),
			wantCode:    Conflict,
			wantMessage: "ctx: busy",
			wantHint:    "own hint",
		},
		{
			name:        "WithHint overrides table hint",
			err:         WithHint(fmt.Errorf("ctx: %w", errNotFound), "try this"),
			wantCode:    NotFound,
			wantMessage: "ctx: secret not found",
			wantHint:    "try this",
		},
		{
			name:        "WithHint overrides own hint",
			err:         WithHint(errHinted, "try this"),
			wantCode:    Conflict,
			wantMessage: "busy",
			wantHint:    "try this",
		},
		{
			name:        "WithHint wrapped again",
			err:         fmt.Errorf("outer: %w", WithHint(errNotFound, "try this")),
			wantCode:    NotFound,
			wantMessage: "outer: secret not found",
			wantHint:    "try this",
		},
		{
			name:        "WithHint on plain error",
			err:         WithHint(errors.New("boom"), "try this"),
			wantCode:    Internal,
			wantMessage: "boom",
			wantHint:    "try this",
		},
		{
			name:        "outermost code wins",
			err:         Errorf(Denied, "refused: %w", errNotFound),
			wantCode:    Denied,
			wantMessage: "refused: secret not found",
		},
		{
			name:        "Errorf without %w",
			err:         Errorf(Usage, "bad flag %q", "--x"),
			wantCode:    Usage,
			wantMessage: `bad flag "--x"`,
		},
		{
			name:        "unknown code keeps code, gets internal hint",
			err:         New("weird", "odd"),
			wantCode:    "weird",
			wantMessage: "odd",
			wantHint:    Lookup(Internal).Hint,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			hint := tt.wantHint
			if hint == "" {
				hint = Lookup(tt.wantCode).Hint
			}
			want := Report{Code: tt.wantCode, Message: tt.wantMessage, Hint: hint}
			if got != want {
				t.Fatalf("Classify = %+v, want %+v", got, want)
			}
		})
	}
}

func TestClassifyNil(t *testing.T) {
	if got := Classify(nil); got != (Report{}) {
		t.Fatalf("Classify(nil) = %+v, want zero Report", got)
	}
	if WithHint(nil, "x") != nil {
		t.Fatal("WithHint(nil) != nil")
	}
}

func TestErrorf(t *testing.T) {
	inner := New(NotFound, "no such file")
	tests := []struct {
		name        string
		err         *Error
		wantMessage string
		wantIs      []error
	}{
		{"single %w", Errorf(Unavailable, "open vault: %w", inner), "open vault: no such file", []error{inner}},
		{"stdlib %w", Errorf(Unavailable, "read: %w", io.ErrUnexpectedEOF), "read: unexpected EOF", []error{io.ErrUnexpectedEOF}},
		{"nested %w", Errorf(Unavailable, "a: %w", fmt.Errorf("b: %w", fs.ErrNotExist)), "a: b: file does not exist", []error{fs.ErrNotExist}},
		{"two %w", Errorf(Unavailable, "%w and %w", inner, io.EOF), "no such file and EOF", []error{inner, io.EOF}},
		{"no %w", Errorf(Unavailable, "n=%d", 3), "n=3", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err.Code != Unavailable {
				t.Fatalf("Code = %q", tt.err.Code)
			}
			if tt.err.Error() != tt.wantMessage {
				t.Fatalf("Error() = %q, want %q", tt.err.Error(), tt.wantMessage)
			}
			for _, target := range tt.wantIs {
				if !errors.Is(tt.err, target) {
					t.Errorf("errors.Is(err, %v) = false", target)
				}
			}
			if tt.wantIs == nil && tt.err.Unwrap() != nil {
				t.Errorf("Unwrap() = %v, want nil", tt.err.Unwrap())
			}
			if c := Classify(tt.err).Code; c != Unavailable {
				t.Errorf("Classify code = %q, want unavailable", c)
			}
		})
	}
}

func TestErrorMessageFallback(t *testing.T) {
	e := &Error{Code: Internal, Err: io.EOF}
	if e.Error() != "EOF" {
		t.Fatalf("Error() = %q, want the wrapped error's text", e.Error())
	}
}

func TestExitCode(t *testing.T) {
	if got := ExitCode(nil); got != 0 {
		t.Fatalf("ExitCode(nil) = %d, want 0", got)
	}
	if got := ExitCode(errors.New("x")); got != 1 {
		t.Fatalf("ExitCode(plain) = %d, want 1", got)
	}
	for _, s := range Specs() {
		t.Run(string(s.Code), func(t *testing.T) {
			errs := []error{
				New(s.Code, "m"),
				fmt.Errorf("ctx: %w", New(s.Code, "m")),
				WithHint(Errorf(s.Code, "m: %w", io.EOF), "h"),
			}
			for _, err := range errs {
				if got := ExitCode(err); got != s.Exit {
					t.Errorf("ExitCode(%v) = %d, want %d", err, got, s.Exit)
				}
			}
		})
	}
}
