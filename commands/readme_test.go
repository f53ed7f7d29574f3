package commands

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// TestReadmeErrorTable keeps the README's error-code table equal to the one
// table the code uses.
func TestReadmeErrorTable(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range errcode.Specs() {
		row := fmt.Sprintf("| `%s` | %d |", s.Code, s.Exit)
		if !strings.Contains(readme, row) {
			t.Errorf("README lacks the row %q", row)
		}
	}
	// And no row names a code the program does not have.
	known := map[string]bool{}
	for _, c := range errcode.Codes() {
		known[c] = true
	}
	for _, line := range strings.Split(readme, "\n") {
		var code string
		var exit int
		if n, _ := fmt.Sscanf(line, "| `%s | %d |", &code, &exit); n == 2 {
			if code = strings.TrimSuffix(code, "`"); !known[code] {
				t.Errorf("README documents unknown error code %q", code)
			}
		}
	}
}
