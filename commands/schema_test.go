package commands

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

var updateSchema = flag.Bool("update-schema", false, "rewrite schema/ from the code (make schema)")

const schemaDir = "../schema"

// TestSchemaFiles fails when schema/ drifts from the structs the commands
// use; `make schema` rewrites it.
func TestSchemaFiles(t *testing.T) {
	all, err := Schemas()
	if err != nil {
		t.Fatal(err)
	}
	errSchema, err := ErrorSchema()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"error.json": append(errSchema, '\n')}
	for _, s := range all {
		want[s.FileName()+".input.json"] = append(append([]byte{}, s.Input...), '\n')
		want[s.FileName()+".output.json"] = append(append([]byte{}, s.Output...), '\n')
	}
	checkSchemaDir(t, schemaDir, want)
}

// checkSchemaDir compares dir's *.json with want, or rewrites dir from
// want under -update-schema (make schema).
func checkSchemaDir(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	label := strings.TrimPrefix(dir, "../")
	if *updateSchema {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		for _, p := range old {
			if _, ok := want[filepath.Base(p)]; !ok {
				os.Remove(p)
			}
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	have, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range have {
		if _, ok := want[filepath.Base(p)]; !ok {
			t.Errorf("%s/%s belongs to nothing that has a schema; run `make schema`", label, filepath.Base(p))
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s/%s missing; run `make schema`", label, name)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s/%s is stale; run `make schema`", label, name)
		}
	}
}

// TestEveryCommandHasTheContract walks the grammar: every leaf command has
// Run(*Env) (*Result, error), and every flag and argument has a json name
// matching its flag name, so --input and the schema agree with the CLI.
func TestEveryCommandHasTheContract(t *testing.T) {
	io, _, _, _ := TestIO()
	exited := -1
	parser, err := newParser(&CLI{}, &Env{IO: io}, &exited)
	if err != nil {
		t.Fatal(err)
	}
	errType := reflect.TypeOf((*error)(nil)).Elem()
	var leaves []string
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, c := range n.Children {
			walk(c)
		}
		if n.Type != kong.CommandNode || len(n.Children) > 0 {
			return
		}
		name := commandWords(n.Path())
		leaves = append(leaves, name)
		run := n.Target.Addr().MethodByName("Run")
		if !run.IsValid() {
			t.Errorf("%s: no Run method", name)
			return
		}
		rt := run.Type()
		if rt.NumIn() != 1 || rt.In(0) != reflect.TypeOf(&Env{}) || rt.NumOut() != 2 ||
			rt.Out(0).Kind() != reflect.Pointer || rt.Out(0).Elem().Kind() != reflect.Struct || rt.Out(1) != errType {
			t.Errorf("%s: Run has signature %s, want func(*Env) (*Result, error)", name, rt)
		}
		for _, f := range n.Flags {
			checkJSONTag(t, name, f.Value)
		}
		for _, p := range n.Positional {
			checkJSONTag(t, name, p)
		}
	}
	walk(parser.Model.Node)
	sort.Strings(leaves)
	for _, want := range []string{"init", "status", "doctor", "workspace create", "workspace list", "workspace switch",
		"workspace allowlist add", "workspace allowlist remove", "workspace allowlist list", "workspace allowlist log", "project create",
		"project list", "project use", "project delete", "secrets set", "secrets generate", "secrets list",
		"secrets delete", "secrets import", "secrets bind", "secrets unbind", "schema"} {
		if sort.SearchStrings(leaves, want) == len(leaves) || leaves[sort.SearchStrings(leaves, want)] != want {
			t.Errorf("command %q is missing", want)
		}
	}
	for _, forbidden := range []string{"secrets get", "secrets reveal", "secrets export", "secrets show"} {
		for _, l := range leaves {
			if l == forbidden {
				t.Errorf("command %q must not exist: no command prints a value", forbidden)
			}
		}
	}
}

func checkJSONTag(t *testing.T, cmd string, v *kong.Value) {
	t.Helper()
	want := inputKey(v.Name)
	if tag := v.Tag.Get("json"); strings.Split(tag, ",")[0] != want {
		t.Errorf("%s: flag/arg %q has json tag %q, want %q", cmd, v.Name, tag, want)
	}
}

func TestSchemaCommand(t *testing.T) {
	env, out := testEnv(t)
	if code := Main([]string{"schema", "secrets", "list", "--json"}, env); code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var res SchemaResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Commands) != 1 || res.Commands[0].Command != "secrets list" {
		t.Fatalf("got %+v", res.Commands)
	}
	var output map[string]any
	if err := json.Unmarshal(res.Commands[0].Output, &output); err != nil {
		t.Fatal(err)
	}
	props := output["properties"].(map[string]any)
	secrets := props["secrets"].(map[string]any)
	if secrets["type"] != "array" {
		t.Fatalf("secrets is %v, want a plain array", secrets["type"])
	}
	item := secrets["items"].(map[string]any)["properties"].(map[string]any)
	for _, f := range []string{"name", "version", "updated_at", "bindings"} {
		if _, ok := item[f]; !ok {
			t.Errorf("secrets[] lacks %q", f)
		}
	}
}
