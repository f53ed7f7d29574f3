package audit

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// jsonLine is how records were encoded before appendLine: encoding/json's
// Encoder without HTML escaping, which ends the value with "\n". Old logs
// hold these bytes, so appendLine must reproduce them exactly.
func jsonLine(r *Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sameAsJSON fails t unless appendLine encodes r exactly as encoding/json
// does, or both refuse it.
func sameAsJSON(t *testing.T, r *Record) {
	t.Helper()
	want, wantErr := jsonLine(r)
	prefix := []byte("kept:")
	got, err := appendLine(bytes.Clone(prefix), r)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("appendLine(%+v) error %v, encoding/json error %v", r, err, wantErr)
	}
	if err != nil {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("appendLine failed but changed its buffer: %q", got)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("appendLine lost the bytes before it: %q", got)
	}
	if got = got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("appendLine(%+v)\n got %s\nwant %s", r, got, want)
	}
}

func TestAppendLineMatchesEncodingJSON(t *testing.T) {
	full := func(edit func(*Record)) *Record {
		r := &Record{
			ID: "0123456789abcdef", Time: time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.UTC),
			FrontEnd: FrontEndProxy, Method: "GET", Host: "api.example.com:443", Path: "/v1/things",
			Workspace: "team", Project: "app", Secrets: []string{"A", "B_2"}, Styles: []string{StyleBearer},
			Status: 200, DurationMS: 12.5, Decision: DecisionAllowed, Reason: "credential_echo",
			Code: "internal", Command: "node", ExitCode: 3, ClientUID: "1000", ClientPID: 4242,
			ClientToken: "ci_bot", Prev: strings.Repeat("ab", 32),
		}
		edit(r)
		return r
	}
	tests := map[string]*Record{
		"zero record":        {},
		"every field":        full(func(*Record) {}),
		"nil lists":          full(func(r *Record) { r.Secrets, r.Styles = nil, nil }),
		"empty lists":        full(func(r *Record) { r.Secrets, r.Styles = []string{}, []string{} }),
		"empty strings":      full(func(r *Record) { r.Method, r.Host, r.Path, r.Reason, r.Code, r.Prev = "", "", "", "", "", "" }),
		"zero time":          full(func(r *Record) { r.Time = time.Time{} }),
		"whole second":       full(func(r *Record) { r.Time = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"nanoseconds":        full(func(r *Record) { r.Time = time.Date(2026, 1, 1, 0, 0, 0, 1, time.UTC) }),
		"year 9999":          full(func(r *Record) { r.Time = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) }),
		"year 10000":         full(func(r *Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"year -1":            full(func(r *Record) { r.Time = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }),
		"offset zone":        full(func(r *Record) { r.Time = r.Time.In(time.FixedZone("x", -(5*3600 + 30*60))) }),
		"offset seconds":     full(func(r *Record) { r.Time = r.Time.In(time.FixedZone("x", 3600+7)) }),
		"offset 24h":         full(func(r *Record) { r.Time = r.Time.In(time.FixedZone("x", 24*3600)) }),
		"monotonic reading":  full(func(r *Record) { r.Time = time.Now() }),
		"negative ints":      full(func(r *Record) { r.Status, r.ExitCode, r.ClientPID = -1, -255, math.MinInt }),
		"max int":            full(func(r *Record) { r.ClientPID = math.MaxInt }),
		"duration zero":      full(func(r *Record) { r.DurationMS = 0 }),
		"duration -0":        full(func(r *Record) { r.DurationMS = math.Copysign(0, -1) }),
		"duration tiny":      full(func(r *Record) { r.DurationMS = 1e-7 }),
		"duration 1e-6":      full(func(r *Record) { r.DurationMS = 1e-6 }),
		"duration under":     full(func(r *Record) { r.DurationMS = 9.99999e-7 }),
		"duration huge":      full(func(r *Record) { r.DurationMS = 1e21 }),
		"duration below e21": full(func(r *Record) { r.DurationMS = 999999999999999900000 }),
		"duration e100":      full(func(r *Record) { r.DurationMS = -1.5e-100 }),
		"duration max":       full(func(r *Record) { r.DurationMS = math.MaxFloat64 }),
		"duration smallest":  full(func(r *Record) { r.DurationMS = math.SmallestNonzeroFloat64 }),
		"duration NaN":       full(func(r *Record) { r.DurationMS = math.NaN() }),
		"duration +Inf":      full(func(r *Record) { r.DurationMS = math.Inf(1) }),
		"duration -Inf":      full(func(r *Record) { r.DurationMS = math.Inf(-1) }),
		"html characters":    full(func(r *Record) { r.Path = "/a<b>&c</script>" }),
		"quote and slash":    full(func(r *Record) { r.Path = `/"q"\back/slash` }),
		"every control byte": full(func(r *Record) { r.Path = string(controlBytes()) }),
		"DEL":                full(func(r *Record) { r.Host = "a\x7fb" }),
		"unicode":            full(func(r *Record) { r.Path = "/héllo/日本/🔑" }),
		"line separators":    full(func(r *Record) { r.Path = "/a\u2028b\u2029c\u2027\u202a" }),
		"invalid utf-8":      full(func(r *Record) { r.Path = "/a\xffb\xc3(\xe2\x82\xf0\x9f\x94" }),
		"surrogate bytes":    full(func(r *Record) { r.Path = "\xed\xa0\x80" }),
		"replacement char":   full(func(r *Record) { r.Path = "\ufffd" }),
		"odd list items":     full(func(r *Record) { r.Secrets = []string{"", "\n", "<&>", "\u2028"} }),
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) { sameAsJSON(t, r) })
	}
}

func controlBytes() []byte {
	var b []byte
	for c := range 0x20 {
		b = append(b, byte(c), 'x')
	}
	return b
}

// TestAppendLineCoversEveryField sets every field of Record, by reflection,
// to a value that is not omitted: a field added to Record and not to
// appendLine fails here rather than dropping out of the log.
func TestAppendLineCoversEveryField(t *testing.T) {
	var r Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("v" + v.Type().Field(i).Name)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.25)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"s" + v.Type().Field(i).Name}))
		case reflect.Struct:
			if f.Type() != reflect.TypeFor[time.Time]() {
				t.Fatalf("field %s: appendLine knows no %s", v.Type().Field(i).Name, f.Type())
			}
			f.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)))
		default:
			t.Fatalf("field %s: appendLine knows no %s", v.Type().Field(i).Name, f.Type())
		}
	}
	sameAsJSON(t, &r)
}

// FuzzAppendLine compares appendLine with encoding/json on records built
// from random strings, numbers and times.
func FuzzAppendLine(f *testing.F) {
	f.Add("id", "/p<>&\u2028", "h\x00\n", "s", true, int64(0), int64(0), 1.5, int64(0), int32(0), 0)
	f.Add("", "\xff\xfe", "", "", false, int64(-62135596800), int64(999999999), 1e-7, int64(-1), int32(3600), 2)
	f.Add("日本", "\ufffd\x7f", "\"\\", "\t", true, int64(253402300800), int64(1), 1e21, int64(1<<40), int32(-86400), 5)
	f.Fuzz(func(t *testing.T, a, b, c, d string, lists bool, sec, nsec int64, dur float64, n int64, zone int32, nItems int) {
		r := &Record{
			ID: a, Time: time.Unix(sec, nsec).In(time.FixedZone("z", int(zone))), FrontEnd: b, Method: c,
			Host: d, Path: a + b, Workspace: c, Project: d + a, Status: int(n), DurationMS: dur, Decision: c + d,
			Reason: b, Code: d, Command: a, ExitCode: int(n >> 3), ClientUID: c, ClientPID: int(-n),
			ClientToken: b + c, Prev: d,
		}
		if zone == 0 {
			r.Time = r.Time.UTC()
		}
		if lists {
			r.Secrets = []string{}
			r.Styles = []string{}
			for i := range nItems % 8 {
				r.Secrets = append(r.Secrets, []string{a, b, c, d}[i%4])
				r.Styles = append(r.Styles, []string{d, c}[i%2])
			}
		}
		sameAsJSON(t, r)
	})
}

// TestCleanList: an invalid name becomes Invalid in a copy, the caller's
// list unchanged; a valid list comes back as it is; nil becomes [], never
// null.
func TestCleanList(t *testing.T) {
	mixed := []string{"STRIPE_KEY", "bad name\n", "OK_2"}
	got := cleanList(mixed, validSecretName)
	if want := []string{"STRIPE_KEY", Invalid, "OK_2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("cleanList(%q) = %q, want %q", mixed, got, want)
	}
	if mixed[1] != "bad name\n" {
		t.Errorf("the caller's list was changed: %q", mixed)
	}
	valid := []string{"A", "B"}
	if got := cleanList(valid, validSecretName); &got[0] != &valid[0] {
		t.Error("a valid list was copied")
	}
	if got := cleanList(nil, validSecretName); got == nil || len(got) != 0 {
		t.Errorf("cleanList(nil) = %#v, want an empty non-nil list", got)
	}
	line, err := appendLine(nil, &Record{ID: strings.Repeat("a", 32), FrontEnd: FrontEndCall, Decision: DecisionAllowed,
		Secrets: cleanList(nil, validSecretName), Styles: cleanList(nil, validSecretName)})
	if err != nil || !bytes.Contains(line, []byte(`"secrets":[]`)) {
		t.Errorf("record line %s, %v: want \"secrets\":[]", line, err)
	}
}
