package secret

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// revealer is the one accessor that yields a Value's bytes.
const revealer = "Reveal"

// revealAllowed lists, relative to the module root, where Reveal may be
// used: whole packages (a directory, not its subdirectories) that store or
// send values, and single files of the release path, which hand values to a
// child process (env) or to OpenClaw (openclaw resolve) by design. Test
// files are not checked: they compare what was stored with what was meant.
var revealAllowed = struct{ dirs, files []string }{
	dirs: []string{
		"internal/secret", // defines it
		"internal/vault",  // stores values and checks them by fingerprint
		"internal/broker", // injects values and builds their redactors
		"internal/sync",   // seals values into envelopes and private keys into wraps
	},
	files: []string{
		"commands/envcmd.go",        // env -- CMD: values become the child's environment
		"commands/openclaw.go",      // openclaw resolve: values go to OpenClaw
		"commands/brokermigrate.go", // broker migrate: values go to the broker daemon, over its socket
	},
}

// revealFindings returns "file:line" for every use of Reveal in src (a call
// or a method value alike) when rel, the file's slash path relative to the
// module root, may not use it. It matches the selector by name, without type
// information: Reveal is deliberately a name nothing else uses.
func revealFindings(rel string, src []byte) ([]string, error) {
	if strings.HasSuffix(rel, "_test.go") || revealMayUse(rel) {
		return nil, nil
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, err
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == revealer {
			p := fset.Position(sel.Sel.Pos())
			out = append(out, p.Filename+":"+strconv.Itoa(p.Line))
		}
		return true
	})
	return out, nil
}

func revealMayUse(rel string) bool {
	for _, f := range revealAllowed.files {
		if rel == f {
			return true
		}
	}
	dir := path.Dir(rel)
	for _, d := range revealAllowed.dirs {
		if dir == d {
			return true
		}
	}
	return false
}

// moduleRoot is the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// TestRevealOnlyWhereAllowed walks every .go file of the module and fails on
// any use of Reveal outside the packages and files that hand values on.
func TestRevealOnlyWhereAllowed(t *testing.T) {
	root := moduleRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Hidden directories (.git) and testdata hold no module code.
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		found, err := revealFindings(filepath.ToSlash(rel), src)
		if err != nil {
			return err
		}
		for _, f := range found {
			t.Errorf("%s: %s.%s outside the vault, the broker and the release path: hand the secret.Value on instead", f, "Value", revealer)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("walked only %d .go files from %s: the walk is broken", files, root)
	}
}

// TestRevealFindingsFire proves the check finds what it must and nothing
// else, on small sources placed in allowed and forbidden files.
func TestRevealFindingsFire(t *testing.T) {
	const call = `package p
func f(v interface{ Reveal() []byte }) []byte { return v.Reveal() }
`
	const methodValue = `package p
func f(v interface{ Reveal() []byte }) func() []byte { return v.Reveal }
`
	const chained = `package p
func f(r interface{ Value(int) interface{ Reveal() []byte } }) int { return len(r.Value(1).Reveal()) }
`
	const clean = `package p
// Reveal in a comment, and a string "v.Reveal()", are not uses.
func f(v interface{ Wipe() }) string { v.Wipe(); return "v.Reveal()" }
`
	cases := []struct {
		rel, src string
		want     int
	}{
		{"commands/call.go", call, 1},
		{"commands/call.go", methodValue, 1},
		{"commands/mcp.go", chained, 1},
		{"internal/proxy/proxy.go", call, 1},
		{"internal/audit/audit.go", call, 1},
		{"main.go", call, 1},
		{"internal/vault/sub/x.go", call, 1},      // a subdirectory is another package
		{"internal/vaultx/x.go", call, 1},         // a prefix is not the package
		{"commands/envcmd_extra.go", call, 1},     // files are named exactly
		{"internal/vault/store.go", call, 0},      // allowed package
		{"internal/broker/broker.go", chained, 0}, // allowed package
		{"internal/secret/secret.go", call, 0},
		{"commands/envcmd.go", call, 0}, // the release path
		{"commands/openclaw.go", methodValue, 0},
		{"commands/call_test.go", call, 0}, // tests compare values
		{"commands/call.go", clean, 0},
	}
	for _, c := range cases {
		got, err := revealFindings(c.rel, []byte(c.src))
		if err != nil {
			t.Fatalf("%s: %v", c.rel, err)
		}
		if len(got) != c.want {
			t.Errorf("%s: %d findings %v, want %d", c.rel, len(got), got, c.want)
		}
		for _, f := range got {
			if !strings.HasPrefix(f, c.rel+":2") {
				t.Errorf("%s: finding %q does not name the file and line", c.rel, f)
			}
		}
	}
}
