package audit

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// appendLine appends r as one JSON line ending in "\n" to dst.
//
// The chain hashes these bytes and Verify re-hashes the lines as they are
// on disk, so the output must stay exactly what encoding/json's Encoder
// (SetEscapeHTML(false), then its "\n") produced for Record when the
// oldest logs still in use were written: same field order, same omitempty
// rules, same string escaping, same float and time formatting. It is
// written by hand because reflection was most of the cost of a record in
// the proxy's audit writer. TestAppendLineMatchesEncodingJSON and
// FuzzAppendLine hold it to encoding/json, and a field added to Record
// without a line here fails them.
//
// Like encoding/json it does not escape <, > and &, so `proxy logs` shows
// paths as they were; it does escape newlines and U+2028/U+2029, so a
// record is always one line. The errors are encoding/json's: a time that
// RFC 3339 cannot express and a NaN or infinite duration (normalise
// replaces both, so only a bug reaches them).
func appendLine(dst []byte, r *Record) ([]byte, error) {
	b := append(dst, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"time":"`...)
	b, err := r.Time.AppendText(b)
	if err != nil {
		return dst, errcode.Errorf(errcode.Internal, "encode audit record: %w", err)
	}
	b = append(b, `","front_end":`...)
	b = appendString(b, r.FrontEnd)
	b = appendOptString(b, `,"method":`, r.Method)
	b = appendOptString(b, `,"host":`, r.Host)
	b = appendOptString(b, `,"path":`, r.Path)
	b = appendOptString(b, `,"workspace":`, r.Workspace)
	b = appendOptString(b, `,"project":`, r.Project)
	b = append(b, `,"secrets":`...)
	b = appendStrings(b, r.Secrets)
	b = append(b, `,"styles":`...)
	b = appendStrings(b, r.Styles)
	b = appendOptInt(b, `,"status":`, r.Status)
	b = append(b, `,"duration_ms":`...)
	if b, err = appendFloat(b, r.DurationMS); err != nil {
		return dst, errcode.Errorf(errcode.Internal, "encode audit record: %w", err)
	}
	b = append(b, `,"decision":`...)
	b = appendString(b, r.Decision)
	b = appendOptString(b, `,"reason":`, r.Reason)
	b = appendOptString(b, `,"code":`, r.Code)
	b = appendOptString(b, `,"command":`, r.Command)
	b = appendOptInt(b, `,"exit_code":`, r.ExitCode)
	b = appendOptString(b, `,"client_uid":`, r.ClientUID)
	b = appendOptInt(b, `,"client_pid":`, r.ClientPID)
	b = appendOptString(b, `,"client_token":`, r.ClientToken)
	b = append(b, `,"prev":`...)
	b = appendString(b, r.Prev)
	return append(b, "}\n"...), nil
}

// appendOptString is an omitempty string field: key (with its leading
// comma and colon) and value, or nothing for "".
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendOptInt is an omitempty int field.
func appendOptInt(b []byte, key string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(n), 10)
}

// appendStrings encodes a list as encoding/json does: null for a nil
// slice, [] for an empty one.
func appendStrings(b []byte, list []string) []byte {
	if list == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// errFloat is encoding/json's refusal of NaN and ±Inf.
type errFloat float64

func (e errFloat) Error() string {
	return "json: unsupported value: " + strconv.FormatFloat(float64(e), 'g', -1, 64)
}

// appendFloat formats f as encoding/json does (ES6 number formatting:
// plain digits, exponent form below 1e-6 and from 1e21 on, without a
// leading zero in the exponent).
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, errFloat(f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does without HTML escaping: "
// and \ escaped, control characters as \b \f \n \r \t or \u00XX, invalid
// UTF-8 as \ufffd, U+2028 and U+2029 as \u2028 and \u2029, everything
// else (DEL and <, > and & included) as it is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
