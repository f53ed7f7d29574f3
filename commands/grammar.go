package commands

import (
	"reflect"
	"strings"
	"unicode"

	"github.com/alecthomas/kong"
)

// kong builds its model of the grammar, tags parsed and help interpolated,
// on every start, and for the whole CLI that is most of a command's start-up
// work that is not the Go runtime's. A command line that names its command
// needs only that command's subtree and the global flags, so that is all
// newParserFor builds; of a group of subcommands (`secrets`, `workspace`),
// only the one named, when it is named exactly. Help, unknown words,
// `schema` and `mcp` (which enumerate the grammar) get the whole of it.

// wholeGrammar lists the top-level commands that read the whole model.
func wholeGrammar(name string) bool { return name == "schema" || name == "mcp" }

// flagName is kong's name for a field: its name tag, else the field name
// in kebab case.
func flagName(f reflect.StructField) string {
	if n := f.Tag.Get("name"); n != "" {
		return n
	}
	var b strings.Builder
	for i, r := range f.Name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// globalTakesValue is the set of global flags that take a value, as typed
// ("--format").
func globalTakesValue() map[string]bool {
	globals := reflect.TypeFor[Globals]()
	takesValue := map[string]bool{}
	for i := range globals.NumField() {
		if f := globals.Field(i); f.Type.Kind() != reflect.Bool {
			takesValue["--"+flagName(f)] = true
		}
	}
	return takesValue
}

// commandField finds, in args as typed, the top-level command they name:
// the first word that is not a global flag or a global flag's value. It
// reports ok=false when the whole grammar is needed, and field=-1 with
// ok=true for a bare --version.
func commandField(args []string) (field int, ok bool) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" {
			return 0, false
		}
	}
	at, version, dashed := commandWord(args)
	switch {
	case dashed:
		return 0, false
	case at < 0:
		return -1, version
	}
	cli := reflect.TypeFor[CLI]()
	for j := range cli.NumField() {
		f := cli.Field(j)
		if _, isCmd := f.Tag.Lookup("cmd"); isCmd && flagName(f) == args[at] {
			return j, !wholeGrammar(args[at])
		}
	}
	return 0, false
}

// commandWord finds the word of args that names the command: the first that
// is neither a flag nor a global flag's value. at is its index, -1 when
// there is none; dashed is true when "--" comes first, version when
// --version does.
func commandWord(args []string) (at int, version, dashed bool) {
	takesValue := globalTakesValue()
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return -1, version, true
		case a == "--version":
			version = true
		case takesValue[a]:
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return i, version, false
		}
	}
	return -1, version, false
}

// warmKeychain starts connecting to the keychain (vault.Store.Warm) and
// reading the index (vault.Store.PrefetchIndex) before the command line is
// parsed when it names a command that always reads a value: kong's parse
// then overlaps the connection, the daemon's greeting and the index's
// decode. The Store it opens is the one the command uses (Env.Store
// depends on the environment only). A command line that turns out not to
// parse leaves a connection nobody uses, which ends with the process.
func warmKeychain(args []string, env *Env) {
	if env.daemon || env.side != nil {
		return
	}
	field, ok := commandField(args)
	if !ok || field < 0 {
		return
	}
	if name := flagName(reflect.TypeFor[CLI]().Field(field)); name == "call" || name == "env" {
		if st, err := env.storeToRead(); err == nil {
			st.PrefetchIndex()
		}
	}
}

// newParserFor builds the parser args need: the global flags and the one
// command they name when that is enough, else the whole grammar. Parsing
// with either gives the same result, help text and errors for those args.
func newParserFor(cli *CLI, env *Env, exited *int, args []string) (*kong.Kong, error) {
	field, ok := commandField(args)
	if !ok {
		return newParser(cli, env, exited)
	}
	opts := parserOptions(env, exited)
	if field >= 0 {
		f := reflect.TypeFor[CLI]().Field(field)
		target := reflect.ValueOf(cli).Elem().Field(field).Addr().Interface()
		if sub, ok := subcommandField(f.Type, args); ok {
			// The command that runs is kong's selected node, whatever
			// struct holds it: nothing reads cli's groups.
			only := f.Type.Field(sub)
			target = reflect.New(reflect.StructOf([]reflect.StructField{{Name: only.Name, Type: only.Type, Tag: only.Tag}})).Interface()
		}
		opts = append(opts, kong.DynamicCommand(flagName(f), f.Tag.Get("help"), "", target, string(f.Tag)))
	}
	return kong.New(&cli.Globals, opts...)
}

// subcommandField finds, in args, the subcommand of group (a command whose
// fields are all subcommands) that they name: the first word after the
// group's that is not a global flag or its value. ok is false when group
// is not such a command, or no such word names one of its subcommands
// exactly (a typo's error lists them all, so it needs them all).
func subcommandField(group reflect.Type, args []string) (field int, ok bool) {
	if group.Kind() != reflect.Struct {
		return 0, false
	}
	for i := range group.NumField() {
		if _, isCmd := group.Field(i).Tag.Lookup("cmd"); !isCmd {
			return 0, false
		}
	}
	takesValue := globalTakesValue()
	seenGroup := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return 0, false
		case takesValue[a]:
			i++
		case strings.HasPrefix(a, "-"):
		case !seenGroup:
			seenGroup = true
		default:
			for j := range group.NumField() {
				if flagName(group.Field(j)) == a {
					return j, true
				}
			}
			return 0, false
		}
	}
	return 0, false
}
