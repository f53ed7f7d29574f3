package commands

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/alecthomas/kong"
)

// maxInput bounds --input: it holds flags, not bulk data.
const maxInput = 1 << 20

// ParseInput parses the --input document: exactly one JSON object whose
// values are strings, numbers, booleans or arrays of those.
func ParseInput(data []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, errcode.Errorf(errcode.Usage, "--input is not a JSON object: %v", jsonErrorText(err))
	}
	if obj == nil {
		return nil, errcode.New(errcode.Usage, "--input must be a JSON object, not null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errcode.New(errcode.Usage, "--input has data after the JSON object")
	}
	return obj, nil
}

// jsonErrorText keeps the position of a JSON syntax error but not the
// offending text, which could be part of a value.
func jsonErrorText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "top level must be an object"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return "invalid JSON"
}

// findInput returns the value of --input (and whether it was given),
// looking only before a "--" terminator.
func findInput(args []string) (string, bool, error) {
	for i, a := range args {
		switch {
		case a == "--":
			return "", false, nil
		case a == "--input":
			if i+1 >= len(args) {
				return "", false, errcode.New(errcode.Usage, "--input needs a FILE or -")
			}
			return args[i+1], true, nil
		case strings.HasPrefix(a, "--input="):
			return strings.TrimPrefix(a, "--input="), true, nil
		}
	}
	return "", false, nil
}

// applyInput turns an --input JSON object into command-line arguments for
// the selected command, so that kong validates them exactly like typed
// flags. Arguments given on the command line win over the JSON object.
func applyInput(parser *kong.Kong, args []string, env *Env) ([]string, error) {
	src, ok, err := findInput(args)
	if err != nil || !ok {
		return args, err
	}
	if env.daemon {
		// The client expands --input before it sends the command line; a
		// path here would be read as the daemon's user.
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--input reached the broker unexpanded"), "run the command with agentsecrets itself, which reads --input on your side")
	}
	var data []byte
	if src == "-" {
		data, err = io.ReadAll(io.LimitReader(env.IO.In, maxInput+1))
	} else {
		data, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, errcode.WithHint(userFileError("--input", src, err), "pass a readable JSON file, or - for stdin")
	}
	if len(data) > maxInput {
		return nil, errcode.New(errcode.TooLarge, "--input is larger than 1 MiB")
	}
	obj, err := ParseInput(data)
	if err != nil {
		return nil, errcode.WithHint(err, "see the expected shape with `agentsecrets schema COMMAND`")
	}
	for _, a := range args {
		if a == "--" {
			return nil, errcode.New(errcode.Usage, "--input cannot be combined with a -- argument list")
		}
	}
	kctx, err := kong.Trace(parser, args)
	if err != nil || kctx.Error != nil {
		if err == nil {
			err = kctx.Error
		}
		return nil, usageError(err, args, parser)
	}
	node := kctx.Selected()
	if node == nil {
		return nil, errcode.WithHint(errcode.New(errcode.Usage, "--input needs a command"), "run `agentsecrets COMMAND --input FILE`")
	}
	return inputArgs(node, kctx, args, obj, src == "-")
}

func inputArgs(node *kong.Node, kctx *kong.Context, args []string, obj map[string]json.RawMessage, fromStdin bool) ([]string, error) {
	cmd := commandWords(node.Path())
	flags := map[string]*kong.Flag{}
	for _, f := range node.Flags {
		flags[inputKey(f.Name)] = f
	}
	positionals := map[string]int{}
	for i, p := range node.Positional {
		positionals[inputKey(p.Name)] = i
	}
	givenFlags := map[string]bool{}
	givenPositionals := 0
	for _, p := range kctx.Path {
		if p.Flag != nil {
			givenFlags[p.Flag.Name] = true
		}
		if p.Positional != nil {
			givenPositionals++
		}
	}
	var extraFlags []string
	posValues := make([][]string, len(node.Positional))
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		raw := obj[key]
		if f, ok := flags[key]; ok {
			if givenFlags[f.Name] {
				continue
			}
			if fromStdin && f.Name == "from-stdin" {
				return nil, errcode.New(errcode.Usage, "--input - and --from-stdin both want stdin")
			}
			vals, err := inputValues(key, raw, f.Target.Type())
			if err != nil {
				return nil, err
			}
			if f.Target.Kind() == reflect.Bool {
				extraFlags = append(extraFlags, "--"+f.Name+"="+vals[0])
				continue
			}
			for _, v := range vals {
				extraFlags = append(extraFlags, "--"+f.Name+"="+v)
			}
			continue
		}
		if i, ok := positionals[key]; ok {
			if i < givenPositionals {
				continue
			}
			vals, err := inputValues(key, raw, node.Positional[i].Target.Type())
			if err != nil {
				return nil, err
			}
			posValues[i] = vals
			continue
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--input: %q is not an input of %s (valid: %s)", printableKey(key), cmd, strings.Join(validKeys(flags, positionals), ", ")),
			"run `agentsecrets schema "+cmd+"`")
	}
	out := append(append([]string{}, args...), extraFlags...)
	var pos []string
	for i, vals := range posValues {
		if vals == nil && i >= givenPositionals {
			break // a gap: kong reports the missing positional
		}
		pos = append(pos, vals...)
	}
	if len(pos) > 0 {
		out = append(append(out, "--"), pos...)
	}
	return out, nil
}

func inputKey(name string) string { return strings.ReplaceAll(name, "-", "_") }

// printableKey echoes a key only if it is shaped like an input name: a
// value pasted as a key must not come back in the error.
func printableKey(k string) string {
	if len(k) == 0 || len(k) > 32 {
		return fmt.Sprintf("<%d-byte key>", len(k))
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Sprintf("<%d-byte key>", len(k))
		}
	}
	return k
}

func validKeys(flags map[string]*kong.Flag, positionals map[string]int) []string {
	var out []string
	for k := range flags {
		out = append(out, k)
	}
	for k := range positionals {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// inputValues converts one JSON value to the string form kong parses,
// checking it against the Go type of the flag or argument.
func inputValues(key string, raw json.RawMessage, t reflect.Type) ([]string, error) {
	bad := func(want string) ([]string, error) {
		return nil, errcode.WithHint(errcode.Errorf(errcode.Usage, "--input: %q must be %s", printableKey(key), want), "run `agentsecrets schema COMMAND` for the input schema")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return bad("valid JSON")
	}
	scalar := func(v any, k reflect.Kind) (string, bool) {
		switch x := v.(type) {
		case string:
			return x, k == reflect.String
		case bool:
			return strconv.FormatBool(x), k == reflect.Bool
		case json.Number:
			if _, err := x.Int64(); err != nil {
				return "", false
			}
			return x.String(), k >= reflect.Int && k <= reflect.Uint64
		}
		return "", false
	}
	if t.Kind() == reflect.Slice {
		arr, ok := v.([]any)
		if !ok {
			// A single value is accepted where a list is expected.
			arr = []any{v}
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, ok := scalar(e, t.Elem().Kind())
			if !ok {
				return bad("an array of " + t.Elem().Kind().String())
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, ok := scalar(v, t.Kind())
	if !ok {
		want := t.Kind().String()
		if t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64 {
			want = "an integer"
		}
		return bad("a " + want)
	}
	return []string{s}, nil
}
