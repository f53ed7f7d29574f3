package mcp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/agentsecrets/agentsecrets/internal/broker"
	"github.com/agentsecrets/agentsecrets/internal/errcode"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// uEscape spells every byte of s as a JSON \u escape, as some servers do
// for characters like '+'.
func uEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		fmt.Fprintf(&b, `\u%04X`, c)
	}
	return b.String()
}

// TestFinalScan: a tool result (or error) that holds a value the call
// registered with Touched, in any form a client would decode it to, is
// withheld and replaced by an internal error; a clean one goes out.
func TestFinalScan(t *testing.T) {
	raw := make([]byte, 24)
	rand.Read(raw)
	canary := "CANARY+" + base64.RawURLEncoding.EncodeToString(raw)
	red := broker.NewRedactor([][]byte{[]byte(canary)})
	shapes := map[string]func() (any, error){
		"raw":            func() (any, error) { return map[string]string{"v": canary}, nil },
		"u-escaped":      func() (any, error) { return json.RawMessage(`{"v":"` + uEscape(canary) + `"}`), nil },
		"JSON in string": func() (any, error) { return map[string]string{"data": `{"v":"` + uEscape(canary) + `"}`}, nil },
		"key":            func() (any, error) { return json.RawMessage(`{"` + uEscape(canary) + `":1}`), nil },
		"base64": func() (any, error) {
			return map[string]string{"v": base64.StdEncoding.EncodeToString([]byte(canary))}, nil
		},
		"error": func() (any, error) { return nil, errcode.Errorf(errcode.Upstream, "upstream said %s", canary) },
		"clean": func() (any, error) { return map[string]string{"v": broker.Marker}, nil },
	}
	obj := json.RawMessage(`{"type":"object","properties":{"shape":{"type":"string"},"touch":{"type":"boolean"}}}`)
	s, err := New("t", "1", "", []Tool{{Name: "t", Input: obj, Handler: func(ctx context.Context, args json.RawMessage) (any, error) {
		var in struct {
			Shape string
			Touch bool
		}
		json.Unmarshal(args, &in)
		if in.Touch {
			Touched(ctx, red.Bytes)
		}
		return shapes[in.Shape]()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cs := connectInMemory(t, s)
	for shape := range shapes {
		t.Run(shape, func(t *testing.T) {
			r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "t", Arguments: map[string]any{"shape": shape, "touch": true}})
			if err != nil {
				t.Fatal(err)
			}
			text := r.Content[0].(*sdk.TextContent).Text
			if shape == "clean" {
				if r.IsError {
					t.Fatalf("a clean result was withheld: %s", text)
				}
				return
			}
			var rep ErrorReport
			json.Unmarshal([]byte(text), &rep)
			if !r.IsError || r.StructuredContent != nil || rep.Error.Code != errcode.Internal {
				t.Fatalf("not withheld: %+v %s", r, text)
			}
			if _, hit := red.Bytes([]byte(text)); hit || strings.Contains(text, canary[7:]) {
				t.Fatalf("the error quotes the value: %s", text)
			}
		})
	}
	// Only a call that touched the value is scanned for it.
	if r, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: "t", Arguments: map[string]any{"shape": "raw"}}); err != nil || r.IsError {
		t.Errorf("untouched call: %v %+v", err, r)
	}
}

// BenchmarkFinalScan: the last scan of a 4 MiB api_call-like result with
// escapes in it (the slow path: every string decoded).
func BenchmarkFinalScan(b *testing.B) {
	red := broker.NewRedactor([][]byte{[]byte("sk_live_0123456789abcdefghijklmn")})
	row := `{"id":12345,"name":"caf\u00e9 \"quoted\"","tags":["a","b\nc"],"n":1.5},`
	doc := []byte(`{"status":200,"body":[` + strings.Repeat(row, (4<<20)/len(row)) + `{}]}`)
	sc := &scans{fs: []Scan{red.Bytes}}
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if sc.hit(doc) {
			b.Fatal("false positive")
		}
	}
}
