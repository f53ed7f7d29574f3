package commands

import (
	"io"
	"testing"
)

// BenchmarkParserCall is the grammar a one-shot `call` builds and parses
// on every start.
func BenchmarkParserCall(b *testing.B) {
	args := []string{"call", "--url", "https://api.example.com/v1/balance", "--bearer", "STRIPE_KEY"}
	env := &Env{IO: &IO{Out: io.Discard, Err: io.Discard}}
	b.ReportAllocs()
	for b.Loop() {
		cli := &CLI{}
		exited := -1
		p, err := newParserFor(cli, env, &exited, args)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Parse(args); err != nil {
			b.Fatal(err)
		}
	}
}
