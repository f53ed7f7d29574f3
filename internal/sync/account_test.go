package sync_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	agentsync "github.com/agentsecrets/agentsecrets/internal/sync"
)

func TestAccountKeyRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{0xA5, 0x01, 0xFE, 0x7C}, 8)
	s := agentsync.FormatAccountKey(key)
	if !strings.HasPrefix(s, "AS1-") {
		t.Fatalf("form %q", s)
	}
	// People retype: lower case, spaces instead of dashes, look-alike
	// digits, surrounding whitespace.
	typed := []string{
		s,
		strings.ToLower(s),
		"  " + strings.ReplaceAll(s, "-", " ") + "\n",
		strings.NewReplacer("O", "0", "I", "1", "B", "8").Replace(s),
	}
	for _, in := range typed {
		got, err := agentsync.ParseAccountKey(in)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestAccountKeyRefusals: every mistyped or foreign input is refused with
// a usage error that does not quote the input.
func TestAccountKeyRefusals(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	good := agentsync.FormatAccountKey(key)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'C'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := map[string]string{
		"one character mistyped":  flip(good, 10),
		"last character mistyped": flip(good, len(good)-1),
		"a group missing":         good[:len(good)-5],
		"no prefix":               strings.TrimPrefix(good, "AS1-"),
		"not base32":              "AS1-!!!!-????",
		"empty":                   "",
		"a password instead":      "correct horse battery staple",
	}
	for name, in := range cases {
		_, err := agentsync.ParseAccountKey(in)
		rep := errcode.Classify(err)
		if err == nil || rep.Code != errcode.Usage || rep.Hint == "" {
			t.Errorf("%s: %+v", name, rep)
			continue
		}
		if len(in) > 8 && strings.Contains(rep.Message+rep.Hint, in[4:12]) {
			t.Errorf("%s: the error quotes the input", name)
		}
	}
}

func TestKitParse(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	kit := agentsync.Kit{Email: "ada@example.com", Server: "https://sync.example.com", Key: key, CreatedAt: time.Unix(0, 0)}
	for name, data := range map[string]string{
		"kit":      kit.Text(),
		"kit CRLF": strings.ReplaceAll(kit.Text(), "\n", "\r\n"),
	} {
		got, err := agentsync.ParseKit([]byte(data))
		if err != nil || !bytes.Equal(got.Key, key) || got.Email != kit.Email || got.Server != kit.Server {
			t.Errorf("%s: %+v %v", name, got, err)
		}
	}
	bare, err := agentsync.ParseKit([]byte(agentsync.FormatAccountKey(key) + "\n"))
	if err != nil || !bytes.Equal(bare.Key, key) || bare.Email != "" {
		t.Fatalf("bare key: %v", err)
	}
	if _, err := agentsync.ParseKit([]byte(strings.Replace(kit.Text(), "Account key:", "Key:", 1))); err == nil {
		t.Fatal("a kit without its key line was accepted")
	}
}

func TestCheckPassword(t *testing.T) {
	cases := []struct {
		pw string
		ok bool
	}{
		{"correct horse battery", true},
		{"Tr0ub4dor&3xyz", true},
		{"tiny1", false},
		{"aaaaaaaaaaaaaaaa", false},
		{"abababababababab", false},
		{"my adalovelace pw", false}, // contains the email's local part
		{"\xff\xfe invalid utf8 pw", false},
	}
	for _, c := range cases {
		err := agentsync.CheckPassword([]byte(c.pw), "adalovelace@example.com")
		if (err == nil) != c.ok {
			t.Errorf("%q: %v", c.pw, err)
		}
		if err != nil && strings.Contains(errcode.Classify(err).Message, c.pw) {
			t.Errorf("%q: the error quotes the password", c.pw)
		}
	}
}
