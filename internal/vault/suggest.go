package vault

import (
	"sort"
	"strings"
)

// maxSuggestions is how many close names a not_found error offers.
const maxSuggestions = 3

// Suggest returns up to three of candidates closest to name by edit
// distance (case-insensitive, a swap of neighbours counting once), nearest
// first, and only those close enough to be the name the user meant.
// Candidates are names from the index: a suggestion never holds a value.
func Suggest(name string, candidates []string) []string {
	type scored struct {
		name string
		d    int
	}
	lname := strings.ToLower(name)
	limit := suggestLimit(len(name))
	var close []scored
	for _, c := range candidates {
		if c == name {
			continue
		}
		if d := editDistance(lname, strings.ToLower(c)); d <= limit {
			close = append(close, scored{c, d})
		}
	}
	sort.Slice(close, func(i, j int) bool {
		if close[i].d != close[j].d {
			return close[i].d < close[j].d
		}
		return close[i].name < close[j].name
	})
	out := make([]string, 0, min(len(close), maxSuggestions))
	for i := 0; i < len(close) && i < maxSuggestions; i++ {
		out = append(out, close[i].name)
	}
	return out
}

// suggestLimit is the largest edit distance still taken for a typo of a
// name of n bytes: one edit in a short name, up to three in a long one.
func suggestLimit(n int) int {
	switch {
	case n <= 4:
		return 1
	case n <= 10:
		return 2
	default:
		return 3
	}
}

// editDistance is the optimal string alignment distance of a and b: the
// edits of Levenshtein plus a transposition of adjacent bytes.
func editDistance(a, b string) int {
	if len(a) > 128 || len(b) > 128 {
		// Longer than any name: no name is close, and the table stays small.
		return len(a) + len(b)
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// DidYouMean is the opening of a hint naming the candidates close to name
// ("did you mean STRIPE_KEY or STRIPE_KEYS? "), or "" when none is close.
func DidYouMean(name string, candidates []string) string {
	s := Suggest(name, candidates)
	switch len(s) {
	case 0:
		return ""
	case 1:
		return "did you mean " + s[0] + "? "
	}
	return "did you mean " + strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1] + "? "
}

// SecretSuggestion is DidYouMean over the secret names of the selected
// project ("" when the project does not exist).
func (ix *Index) SecretSuggestion(sel Selection, name string) string {
	w, ok := ix.Workspaces[sel.Workspace]
	if !ok {
		return ""
	}
	p, ok := w.Projects[sel.Project]
	if !ok {
		return ""
	}
	return DidYouMean(name, SortedKeys(p.Secrets))
}
