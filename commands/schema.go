package commands

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/alecthomas/kong"
	"github.com/invopop/jsonschema"
)

// SchemaCmd prints the input and output JSON Schemas of commands.
type SchemaCmd struct {
	Command []string `arg:"" optional:"" help:"Command, e.g. 'secrets list' (default: every command)." json:"command,omitempty"`
}

// CommandSchema pairs a command with its schemas.
type CommandSchema struct {
	Command string          `json:"command"`
	Input   json.RawMessage `json:"input"`
	Output  json.RawMessage `json:"output"`
}

// SchemaResult holds the schemas asked for, and the error envelope every
// command may print instead of its output.
type SchemaResult struct {
	Commands []CommandSchema `json:"commands"`
	Error    json.RawMessage `json:"error"`
}

func (c *SchemaCmd) Run(env *Env) (*SchemaResult, error) {
	all, err := Schemas()
	if err != nil {
		return nil, err
	}
	errSchema, err := ErrorSchema()
	if err != nil {
		return nil, err
	}
	res := &SchemaResult{Commands: []CommandSchema{}, Error: errSchema}
	want := strings.Join(c.Command, " ")
	want = strings.ReplaceAll(want, "_", " ")
	for _, s := range all {
		if want == "" || s.Command == want {
			res.Commands = append(res.Commands, s)
		}
	}
	if want != "" && len(res.Commands) == 0 {
		names := make([]string, 0, len(all))
		for _, s := range all {
			names = append(names, s.Command)
		}
		return nil, errcode.WithHint(errcode.Errorf(errcode.NotFound, "no command %q", want), "commands: "+strings.Join(names, ", "))
	}
	return res, nil
}

// FileName is the base name of a command's schema files in schema/.
func (s CommandSchema) FileName() string { return strings.ReplaceAll(s.Command, " ", "_") }

// Schemas generates the schemas of every command from the structs the
// command uses: the flags struct for input, Run's result type for output.
func Schemas() ([]CommandSchema, error) {
	io, _, _, _ := TestIO()
	exited := -1
	parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
	if err != nil {
		return nil, err
	}
	return commandSchemas(parser, nil)
}

// commandSchemas generates the schemas of the commands in want (all when
// want is nil): building the parser and reflecting are most of the MCP
// server's start-up time, and it needs only its tools' schemas.
func commandSchemas(parser *kong.Kong, want map[string]bool) ([]CommandSchema, error) {
	var out []CommandSchema
	var walk func(n *kong.Node) error
	walk = func(n *kong.Node) error {
		for _, child := range n.Children {
			if err := walk(child); err != nil {
				return err
			}
		}
		if n.Type != kong.CommandNode {
			return nil
		}
		run := n.Target.Addr().MethodByName("Run")
		if !run.IsValid() {
			return nil
		}
		cmd := commandWords(n.Path())
		if want != nil && !want[cmd] {
			return nil
		}
		in, err := inputSchema(n)
		if err != nil {
			return fmt.Errorf("schema %s input: %w", cmd, err)
		}
		outT := run.Type().Out(0)
		outS, err := marshalSchema(reflector(false).ReflectFromType(outT))
		if err != nil {
			return fmt.Errorf("schema %s output: %w", cmd, err)
		}
		out = append(out, CommandSchema{Command: cmd, Input: in, Output: outS})
		return nil
	}
	if err := walk(parser.Model.Node); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Command < out[j].Command })
	return out, nil
}

// ErrorSchema is the schema of {"error":{...}}, with the closed code set.
func ErrorSchema() (json.RawMessage, error) {
	s := reflector(false).Reflect(&ErrorResult{})
	if e, ok := s.Properties.Get("error"); ok {
		if code, ok := e.Properties.Get("code"); ok {
			for _, c := range errcode.Codes() {
				code.Enum = append(code.Enum, c)
			}
		}
	}
	return marshalSchema(s)
}

func reflector(input bool) *jsonschema.Reflector {
	return &jsonschema.Reflector{
		DoNotReference: true,
		ExpandedStruct: true,
		// Inputs: only what kong requires is required. Outputs: every
		// field without omitempty is always present.
		RequiredFromJSONSchemaTags: input,
	}
}

// inputSchema reflects the command struct and decorates it with what kong
// knows: help text, defaults, enums and required positionals.
func inputSchema(n *kong.Node) (json.RawMessage, error) {
	s := reflector(true).ReflectFromType(n.Target.Type())
	props := map[string]*jsonschema.Schema{}
	for p := s.Properties.Oldest(); p != nil; p = p.Next() {
		props[p.Key] = p.Value
	}
	seen := map[string]bool{}
	decorate := func(v *kong.Value, required bool) error {
		key := inputKey(v.Name)
		ps, ok := props[key]
		if !ok {
			return fmt.Errorf("flag or argument %q has no json tag %q", v.Name, key)
		}
		seen[key] = true
		ps.Description = v.Help
		if v.HasDefault && v.Default != "" {
			ps.Default = typedDefault(v)
		}
		if v.Enum != "" && len(ps.Enum) == 0 {
			for _, e := range v.EnumSlice() {
				ps.Enum = append(ps.Enum, e)
			}
		}
		if required {
			s.Required = append(s.Required, key)
		}
		return nil
	}
	for _, f := range n.Flags {
		if err := decorate(f.Value, f.Required); err != nil {
			return nil, err
		}
	}
	for _, p := range n.Positional {
		if err := decorate(p, p.Required); err != nil {
			return nil, err
		}
	}
	for key := range props {
		if !seen[key] {
			return nil, fmt.Errorf("json field %q is neither a flag nor an argument", key)
		}
	}
	s.Description = n.Help
	return marshalSchema(s)
}

func typedDefault(v *kong.Value) any {
	switch v.Target.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32:
		if n, err := strconv.Atoi(v.Default); err == nil {
			return n
		}
	case reflect.Bool:
		return v.Default == "true"
	}
	return v.Default
}

func marshalSchema(s *jsonschema.Schema) (json.RawMessage, error) {
	s.Version = "https://json-schema.org/draft/2020-12/schema"
	// The reflector derives an $id from the Go package path, which is
	// neither stable nor resolvable; the file name identifies a schema.
	s.ID = ""
	return json.MarshalIndent(s, "", "  ")
}

func (r *SchemaResult) WriteText(w io.Writer) error {
	for _, c := range r.Commands {
		fmt.Fprintf(w, "agentsecrets %s\n", c.Command)
	}
	fmt.Fprintln(w, "(use --json for the schemas themselves)")
	return nil
}
