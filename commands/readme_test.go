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
	if got := strings.Count(readme, "` | ") - strings.Count(readme, "| `internal` |"); got < len(errcode.Specs())-1 {
		t.Errorf("README error table looks incomplete")
	}
}
