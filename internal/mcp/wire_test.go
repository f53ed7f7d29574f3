package mcp

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// checkInvariants is what every answer of checkMessage must satisfy: a
// blank message gets nothing; anything else exactly one of a canonical
// message the SDK decodes (the SDK ends the session on any it cannot) or
// a JSON-RPC error response; and checking the canonical form again gives
// it back unchanged.
func checkInvariants(t *testing.T, msg []byte) (canon, reply []byte) {
	t.Helper()
	canon, reply = checkMessage(msg)
	if len(bytes.TrimSpace(msg)) == 0 {
		if canon != nil || reply != nil {
			t.Fatalf("blank %.200q: canon %.200q reply %.200q", msg, canon, reply)
		}
		return
	}
	if (canon == nil) == (reply == nil) {
		t.Fatalf("%.200q: canon %.200q reply %.200q: want exactly one", msg, canon, reply)
	}
	if reply != nil {
		var r struct {
			JSONRPC string          `json:"jsonrpc"`
			Error   *rpcErrorObject `json:"error"`
		}
		var keys map[string]json.RawMessage
		json.Unmarshal(reply, &keys)
		if _, hasID := keys["id"]; json.Unmarshal(reply, &r) != nil || r.JSONRPC != "2.0" || !hasID || len(keys) != 3 || r.Error == nil ||
			(r.Error.Code != codeParseError && r.Error.Code != codeInvalidRequest) || bytes.ContainsAny(reply, "\r\n") {
			t.Fatalf("%.200q: bad reply %.200q", msg, reply)
		}
		return
	}
	if bytes.ContainsAny(canon, "\r\n") || !json.Valid(canon) || depth(canon) > MaxDepth {
		t.Fatalf("%.200q: canon %.200q is not one valid JSON line", msg, canon)
	}
	if _, err := jsonrpc.DecodeMessage(canon); err != nil {
		t.Fatalf("%.200q: the SDK cannot decode canon %.200q: %v", msg, canon, err)
	}
	if again, r := checkMessage(canon); !bytes.Equal(again, canon) || r != nil {
		t.Fatalf("%.200q: canon %.200q checks as %.200q / %.200q", msg, canon, again, r)
	}
	return
}

func TestCheckMessage(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, c := range []struct {
		name, in string
		code     int // 0: valid
		id       string
	}{
		{"request", `{"jsonrpc":"2.0","id":1,"method":"ping"}`, 0, ""},
		{"string id", `{"jsonrpc":"2.0","id":"a\u00e9","method":"ping","params":{}}`, 0, ""},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, 0, ""},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"x"}`, 0, ""},
		{"response", `{"jsonrpc":"2.0","id":3,"result":{"a":1}}`, 0, ""},
		{"error response", `{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"m"}}`, 0, ""},
		{"array params", `{"jsonrpc":"2.0","id":1,"method":"m","params":[1]}`, 0, ""},
		{"64 deep", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":` + nest(62) + `}}`, 0, ""},
		{"65 deep", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":` + nest(63) + `}}`, codeInvalidRequest, "null"},
		{"garbage", `hello`, codeParseError, "null"},
		{"half", `{"jsonrpc":"2.0","id":1`, codeParseError, "null"},
		{"binary", "\x00\xff", codeParseError, "null"},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\"}", codeParseError, "null"},
		{"batch", `[{"jsonrpc":"2.0","id":1,"method":"ping"}]`, codeInvalidRequest, "null"},
		{"scalar", `1`, codeInvalidRequest, "null"},
		{"bad version", `{"jsonrpc":"2","id":"x","method":"ping"}`, codeInvalidRequest, `"x"`},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, codeInvalidRequest, "null"},
		{"fraction id", `{"jsonrpc":"2.0","id":2.5,"method":"ping"}`, codeInvalidRequest, "null"},
		{"exponent id", `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, codeInvalidRequest, "null"},
		{"id past 2^53", `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, codeInvalidRequest, "null"},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":1}`, codeInvalidRequest, "1"},
		{"params scalar", `{"jsonrpc":"2.0","id":1,"method":"m","params":true}`, codeInvalidRequest, "1"},
		{"response no id", `{"jsonrpc":"2.0","result":1}`, codeInvalidRequest, "null"},
		{"response neither", `{"jsonrpc":"2.0","id":1}`, codeInvalidRequest, "1"},
		{"error without code", `{"jsonrpc":"2.0","id":1,"error":{"message":"m"}}`, codeInvalidRequest, "1"},
		{"upper-case keys", `{"JSONRPC":"2.0","ID":1,"METHOD":"ping"}`, codeInvalidRequest, "null"},
		{"too large", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"` + strings.Repeat("a", MaxMessage) + `"}}`, codeInvalidRequest, "null"},
	} {
		t.Run(c.name, func(t *testing.T) {
			canon, reply := checkInvariants(t, []byte(c.in))
			if c.code == 0 {
				if canon == nil {
					t.Fatalf("refused: %.200s", reply)
				}
				return
			}
			var r rpcReply
			if err := json.Unmarshal(reply, &r); err != nil || r.Error.Code != c.code || string(r.ID) != c.id {
				t.Fatalf("reply %.200s, want code %d id %s", reply, c.code, c.id)
			}
		})
	}
}

// TestFilterLines: every line gets its answer in order, a line past
// MaxMessage is dropped without stopping the stream, and the last line
// needs no newline.
func TestFilterLines(t *testing.T) {
	in := strings.Join([]string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`garbage`,
		``,
		`{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"` + strings.Repeat("x", MaxMessage) + `"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"ping"}`,
	}, "\n")
	var sdk, out bytes.Buffer
	if err := filterLines(strings.NewReader(in), &sdk, &out); err != nil {
		t.Fatal(err)
	}
	if want := `{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n" + `{"jsonrpc":"2.0","id":3,"method":"ping"}` + "\n"; sdk.String() != want {
		t.Errorf("to the SDK: %.200q, want %.200q", sdk.String(), want)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "-32700") || !strings.Contains(lines[1], "-32600") {
		t.Errorf("answers: %.200q", out.String())
	}
}

func FuzzCheckMessage(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"api_call","arguments":{"url":"http://a"}}}`,
		`{"jsonrpc":"2.0","id":3,"result":{}}`,
		`{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"m","data":[1]}}`,
		`{"jsonrpc":"2.0","id":"\ud800","method":"m"}`,
		`{"jsonrpc":"2.0","id":-0,"method":"m","params":{"a":"\u0000"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`{"jsonrpc":"2.0","id":1,"id":2,"method":"a","method":"b"}`,
		"\xef\xbb\xbf{}",
		`{"jsonrpc":"2.0","method":"m","params":{"a":1e999}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkInvariants(t, msg)
	})
}
