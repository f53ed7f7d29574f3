package commands

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Text output on a terminal: counts with the right plural, lists laid out
// in columns, and colour for the few lines a person must not miss (errors,
// warnings, denials). JSON never passes through here.

// plural returns "1 workspace", "2 workspaces", "0 entries": the counted
// nouns of text output are regular English ones.
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	switch {
	case strings.HasSuffix(word, "y") && len(word) > 1 && !strings.ContainsRune("aeiou", rune(word[len(word)-2])):
		word = word[:len(word)-1] + "ies"
	case strings.HasSuffix(word, "s"), strings.HasSuffix(word, "x"), strings.HasSuffix(word, "ch"), strings.HasSuffix(word, "sh"):
		word += "es"
	default:
		word += "s"
	}
	return strconv.Itoa(n) + " " + word
}

// listWords joins words for a sentence ("a, b, c"), or returns none when
// there are none: Go's %v of a slice ("[a b]") is not for people.
func listWords(words []string, none string) string {
	if len(words) == 0 {
		return none
	}
	return strings.Join(words, ", ")
}

// Colours says which of a command's streams may carry colour.
type Colours struct {
	Out, Err bool
}

// DecideColours is the one colour decision: a stream is coloured when it
// is a terminal, never when NO_COLOR is set to anything, and always when
// CLICOLOR_FORCE is set to anything but 0 (NO_COLOR still wins: a person
// who turned colour off meant it).
func DecideColours(stdoutTTY, stderrTTY bool, getenv func(string) string) Colours {
	if getenv("NO_COLOR") != "" {
		return Colours{}
	}
	if f := getenv("CLICOLOR_FORCE"); f != "" && f != "0" {
		return Colours{Out: true, Err: true}
	}
	return Colours{Out: stdoutTTY, Err: stderrTTY}
}

// SGR styles: bold red for errors and denials, bold yellow for warnings.
const (
	styleError = "1;31"
	styleWarn  = "1;33"
)

// paint wraps s in style when on; s must already be terminal-safe.
func paint(on bool, style, s string) string {
	if !on {
		return s
	}
	return "\x1b[" + style + "m" + s + "\x1b[0m"
}

// writeStyled writes s to w in style when w is a colouring termWriter, and
// plainly otherwise. Only the style codes bypass the terminal filter; s
// itself goes through it like every other byte a renderer writes.
func writeStyled(w io.Writer, style, s string) error {
	t, ok := w.(*termWriter)
	if !ok || !t.colour {
		_, err := io.WriteString(w, s)
		return err
	}
	if err := t.raw("\x1b[" + style + "m"); err != nil {
		return err
	}
	if _, err := io.WriteString(t, s); err != nil {
		return err
	}
	return t.raw("\x1b[0m")
}

// newTable returns a tabwriter for a list with a header row: two spaces
// between columns keep a row of short fields inside 80 columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeTableLines writes a flushed table to w line by line, without the
// padding an empty last column leaves, styling the lines style picks (by
// index, header included). tabwriter counts escape codes as width, so
// colour is added after the columns are laid out.
func writeTableLines(w io.Writer, table []byte, style func(line int) string) error {
	for i, line := range bytes.Split(bytes.TrimSuffix(table, []byte("\n")), []byte("\n")) {
		line = bytes.TrimRight(line, " ")
		var err error
		if s := style(i); s != "" {
			err = writeStyled(w, s, string(line))
		} else {
			_, err = w.Write(line)
		}
		if err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

// raw writes style codes past the filter, after escaping any unfinished
// UTF-8 sequence a renderer left, so the codes never split a rune.
func (t *termWriter) raw(codes string) error {
	if err := t.Close(); err != nil {
		return err
	}
	_, err := t.w.Write([]byte(codes))
	return err
}

// currentMark flags the current workspace or project in a list.
func currentMark(current bool) string {
	if current {
		return "*"
	}
	return ""
}
