package commands

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/vault"
	"github.com/tidwall/gjson"
)

// Output formats after "auto" is decided.
const (
	formatJSON = "json"
	formatText = "text"
)

// TextWriter is implemented by results that have a readable text form.
// Text writers only format what is in the result; they never touch the
// vault or the network.
type TextWriter interface {
	WriteText(w io.Writer) error
}

// Warner is implemented by results that carry warnings for a human.
type Warner interface {
	WarningList() []string
}

// Notes is embedded by results that may warn.
type Notes struct {
	Warnings []string `json:"warnings,omitempty"`
}

// WarningList implements Warner.
func (n Notes) WarningList() []string { return n.Warnings }

func (n *Notes) warn(format string, args ...any) {
	n.Warnings = append(n.Warnings, fmt.Sprintf(format, args...))
}

// formatEnv names the variable that sets the default format, for a
// person who wants text (or JSON) without typing --format every time.
const formatEnv = "AGENTSECRETS_FORMAT"

// resolveFormat decides the output format: --json or --format json|text,
// else AGENTSECRETS_FORMAT, else JSON unless stdout is a terminal. The
// returned format is usable even with the error (an invalid variable), so
// that error is reported too.
func resolveFormat(g *Globals, env *Env) (string, error) {
	switch {
	case g.JSON || g.Format == formatJSON:
		return formatJSON, nil
	case g.Format == formatText:
		return formatText, nil
	}
	auto := formatJSON
	if env.IO.StdoutTTY {
		auto = formatText
	}
	// The value is not echoed: a variable is where a value could have been
	// pasted by mistake.
	switch v := env.Getenv(formatEnv); v {
	case "", "auto":
		return auto, nil
	case formatJSON, formatText:
		return v, nil
	default:
		return auto, errcode.WithHint(errcode.New(errcode.Usage, formatEnv+" must be json, text or auto"),
			"run `export "+formatEnv+"=json` (or text), or `unset "+formatEnv+"`")
	}
}

// prescanFormat guesses the format before parsing, so that a parse error is
// reported in the format the caller asked for.
func prescanFormat(args []string, env *Env) string {
	g := Globals{Format: "auto"}
	for i, a := range args {
		if a == "--" {
			break
		}
		switch {
		case a == "--json":
			g.JSON = true
		case a == "--format" && i+1 < len(args):
			g.Format = args[i+1]
		case strings.HasPrefix(a, "--format="):
			g.Format = strings.TrimPrefix(a, "--format=")
		}
	}
	format, _ := resolveFormat(&g, env)
	return format
}

// jsonAppender is implemented by results large enough that reflection-based
// encoding shows up next to process start (secrets list over a big
// project). Its output must equal encoding/json's; a test checks.
type jsonAppender interface {
	AppendJSON(dst []byte) []byte
}

func encodeJSON(v any, indent bool) ([]byte, error) {
	if a, ok := v.(jsonAppender); ok && !indent {
		return append(a.AppendJSON(make([]byte, 0, 4096)), '\n'), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return nil, errcode.Errorf(errcode.Internal, "encode result: %w", err)
	}
	return buf.Bytes(), nil
}

// quietResult is a result not to print: the command's stdout was a
// protocol stream (mcp serve over stdio).
type quietResult interface{ quiet() bool }

// render writes one result in the chosen format. raw prints a selected
// string without JSON quoting (--raw).
func render(io *IO, format, selectPath string, raw bool, result any) error {
	if q, ok := result.(quietResult); ok && q.quiet() {
		return nil
	}
	if selectPath != "" {
		return renderSelect(io, format, selectPath, raw, result)
	}
	if format == formatText {
		// Warnings print here and only here: no text renderer repeats them.
		if w, ok := result.(Warner); ok {
			for _, msg := range w.WarningList() {
				fmt.Fprintln(io.Err, paint(io.Colour.Err, styleWarn, "warning:")+" "+termEscape(msg))
			}
		}
		tw := &termWriter{w: io.Out, colour: io.Colour.Out}
		if t, ok := result.(TextWriter); ok {
			termSafeResult(result)
			if err := t.WriteText(tw); err != nil {
				return err
			}
			return tw.Close()
		}
		// JSON escapes C0 controls but writes C1 controls and bidi runes
		// raw; the filter escapes those.
		b, err := encodeJSON(result, true)
		if err != nil {
			return err
		}
		if _, err = tw.Write(b); err != nil {
			return err
		}
		return tw.Close()
	}
	b, err := encodeJSON(result, false)
	if err != nil {
		return err
	}
	_, err = io.Out.Write(b)
	return err
}

// renderSelect prints the part of the JSON result selectPath names. A
// string is quoted JSON when piped and plain text on a terminal; --raw makes
// it plain everywhere, and prints an array one element per line, as jq -r
// does. Plain text for a terminal goes through the terminal filter: gjson
// unescapes what JSON kept escaped (\u001b, \u002B).
func renderSelect(io *IO, format, selectPath string, raw bool, result any) error {
	b, err := encodeJSON(result, false)
	if err != nil {
		return err
	}
	r := gjson.GetBytes(b, selectPath)
	if !r.Exists() {
		return errcode.WithHint(errcode.New(errcode.Usage, "--select matches nothing in the result"),
			"top-level fields are: "+strings.Join(topLevelFields(b), ", "))
	}
	out := io.Out
	var tw *termWriter
	if format == formatText {
		tw = &termWriter{w: io.Out}
		out = tw
	}
	switch {
	case raw && r.IsArray():
		for _, e := range r.Array() {
			if _, err := fmt.Fprintln(out, plain(e)); err != nil {
				return err
			}
		}
	case raw || format == formatText:
		if _, err := fmt.Fprintln(out, plain(r)); err != nil {
			return err
		}
	default:
		if _, err := fmt.Fprintln(out, r.Raw); err != nil {
			return err
		}
	}
	if tw != nil {
		return tw.Close()
	}
	return nil
}

// plain is a selected value as --raw prints it: a string's text, anything
// else its JSON.
func plain(r gjson.Result) string {
	if r.Type == gjson.String {
		return r.String()
	}
	return r.Raw
}

func topLevelFields(raw []byte) []string {
	var fields []string
	gjson.ParseBytes(raw).ForEach(func(k, _ gjson.Result) bool {
		fields = append(fields, k.String())
		return true
	})
	sort.Strings(fields)
	return fields
}

// ErrorResult is the JSON shape of every failure (one definition for every
// front end: errcode.Envelope).
type ErrorResult = errcode.Envelope

// reportError prints err as {"error":{...}} on stdout in JSON mode, or as
// "agentsecrets: error: ..." plus a hint on stderr in text mode, and returns
// the code's exit status.
func reportError(env *Env, format string, err error, args []string) int {
	rep := errcode.Classify(err)
	rep.Message = scrubArgs(rep.Message, args)
	rep.Hint = scrubArgs(rep.Hint, args)
	if env.guardOutput([]byte(rep.Message), []byte(rep.Hint)) {
		rep = errcode.Classify(errOutputLeak)
	}
	if format == formatText {
		fmt.Fprintf(env.IO.Err, "agentsecrets: %s %s\n", paint(env.IO.Colour.Err, styleError, "error:"), termEscape(rep.Message))
		if rep.Hint != "" {
			fmt.Fprintf(env.IO.Err, "hint: %s\n", termEscape(rep.Hint))
		}
	} else if b, encErr := encodeJSON(ErrorResult{Error: rep}, false); encErr == nil {
		env.IO.Out.Write(b)
	}
	return errcode.Lookup(rep.Code).Exit
}

// scrubArgs removes the right-hand side of NAME=VALUE arguments from a
// message: that is how a value enters argv (secrets set NAME=VALUE), and no
// error may echo it.
//
// The value of an injection flag (`call --header X-Api-Key=STRIPE_KEY`) is
// FIELD=SECRET_NAME, not NAME=VALUE: its right-hand side is a name the hint
// must show, as it does for `--bearer STRIPE_KEY`. It is kept only when it
// is a valid secret name; anything else may be a pasted value.
func scrubArgs(msg string, args []string) string {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if i > 0 && pairFlags[args[i-1]] {
			if _, name, ok := strings.Cut(a, "="); ok && vault.CheckSecretName(name) == nil {
				continue
			}
		}
		if i := strings.IndexByte(a, '='); i > 0 && i < len(a)-1 {
			msg = strings.ReplaceAll(msg, a[i+1:], "<redacted>")
		}
	}
	return msg
}

// pairFlags are call's injection flags whose value is FIELD=SECRET_NAME
// (see CallCmd.injections).
var pairFlags = map[string]bool{"--header": true, "--query": true, "--body-field": true, "--form-field": true}

// scrubTokens removes every argument token from a parser message except
// those that cannot be a value: words of the grammar, flags, and a
// positional word within a typo of a command word (`secrts`), which is what
// a person mistypes and needs to see. kong quotes offending arguments
// verbatim ("unexpected argument ..."), and a value typed in the wrong
// place must not come back in the error.
func scrubTokens(msg string, args []string, grammar map[string]bool) string {
	var commands []string
	for w := range grammar {
		if !strings.HasPrefix(w, "-") {
			commands = append(commands, w)
		}
	}
	for _, a := range args {
		tok := a
		if strings.HasPrefix(a, "-") {
			i := strings.IndexByte(a, '=')
			if i < 0 {
				continue
			}
			tok = a[i+1:]
		} else if len(vault.Suggest(tok, commands)) > 0 {
			continue
		}
		if len(tok) < 4 || grammar[tok] {
			continue
		}
		// kong quotes with %q, so the escaped form must go too.
		q := strconv.Quote(tok)
		msg = strings.ReplaceAll(msg, q[1:len(q)-1], "<redacted>")
		msg = strings.ReplaceAll(msg, tok, "<redacted>")
	}
	return msg
}
