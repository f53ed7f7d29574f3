package broker

import "github.com/agentsecrets/agentsecrets/internal/secret"

// NewValueRedactor is NewRedactor for typed values, for code outside the
// broker that must scan for values without holding their bytes (the CLI's
// output guard). Values shorter than minLen are left out: a short value
// occurs by chance in ordinary text. It returns nil when none is left.
func NewValueRedactor(values []secret.Value, minLen int) *Redactor {
	var long [][]byte
	for _, v := range values {
		if b := v.Reveal(); len(b) >= minLen && len(b) > 0 {
			long = append(long, b)
		}
	}
	if len(long) == 0 {
		return nil
	}
	return NewRedactor(long)
}
