package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
)

// canary stands for a secret value: no test input that carries it may
// leave it in a file, a detail or an error.
const canary = "sk_live_CANARY_7f3a9c2e41b8d6"

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock returns a Now that advances one second per call, safely across
// goroutines.
func clock() func() time.Time {
	var n atomic.Int64
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Second) }
}

// rec is a typical record; i makes its id and path unique.
func rec(prefix string, i int) *Record {
	return &Record{
		ID:         fmt.Sprintf("%s%06d", prefix, i),
		FrontEnd:   FrontEndCall,
		Method:     "GET",
		Host:       "api.example.com",
		Path:       fmt.Sprintf("/v1/items/%d", i),
		Secrets:    []string{"STRIPE_KEY"},
		Styles:     []string{StyleBearer},
		Status:     200,
		DurationMS: 12.5,
		Decision:   DecisionAllowed,
	}
}

func appendN(t testing.TB, l *Log, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := l.Append(context.Background(), rec(prefix, i)); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines // each with its newline, except a torn last one
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func hashOf(line []byte) string {
	sum := sha256.Sum256(bytes.TrimSuffix(line, []byte("\n")))
	return hex.EncodeToString(sum[:])
}

func mustVerify(t *testing.T, l *Log) *Verification {
	t.Helper()
	v, err := l.Verify()
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return v
}

func ids(recs []Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func TestChainAcrossRotation(t *testing.T) {
	const n = 10000
	const maxSize = 64 << 10
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: maxSize, Now: clock()})
	want := make([]string, 0, n)
	for i := range n {
		r := rec("r", i)
		if i%1000 == 500 {
			// Longer than tailChunk: the next append must find its start
			// several chunks back.
			for j := range 300 {
				r.Secrets = append(r.Secrets, fmt.Sprintf("SECRET_%03d", j))
			}
		}
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		want = append(want, r.ID)
	}

	v := mustVerify(t, l)
	if !v.OK || v.Problem != nil || v.Records != n {
		t.Fatalf("Verify = %+v (problem %+v), want OK with %d records", v, v.Problem, n)
	}
	if len(v.Files) < 20 {
		t.Fatalf("only %d files; want many rotations", len(v.Files))
	}
	for i, name := range v.Files {
		wantName := rotatedName(i + 1)
		if i == len(v.Files)-1 {
			wantName = activeName
		}
		if name != wantName {
			t.Fatalf("Files[%d] = %q, want %q", i, name, wantName)
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, above MaxFileSize %d", name, st.Size(), maxSize)
		}
	}
	last := readLines(t, filepath.Join(dir, activeName))
	if v.Head != hashOf(last[len(last)-1]) {
		t.Errorf("Head = %s, want the hash of the newest line", v.Head)
	}
	first := readLines(t, filepath.Join(dir, rotatedName(1)))
	var r0 Record
	if err := json.Unmarshal(first[0], &r0); err != nil || r0.Prev != "" {
		t.Fatalf("first record prev = %q (%v), want empty", r0.Prev, err)
	}

	all, err := l.Read(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(all), want) {
		t.Fatalf("Read returned %d records, not the %d appended in order", len(all), n)
	}
	tail, err := l.Read(Filter{Last: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(tail), want[n-3:]) {
		t.Fatalf("Read(Last: 3) = %v, want %v", ids(tail), want[n-3:])
	}
}

// tamperLog builds a log of 60-odd records over several files and checks the
// shape the tamper cases rely on.
func tamperLog(t *testing.T) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: 2500, Now: clock()})
	appendN(t, l, "r", 60)
	// Top up until the active file has a few lines too.
	for i := 60; len(readLines(t, filepath.Join(dir, activeName))) < 5; i++ {
		if err := l.Append(context.Background(), rec("r", i)); err != nil {
			t.Fatal(err)
		}
	}
	nums, err := l.rotatedNumbers()
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) < 4 {
		t.Fatalf("tamper log has %d rotated files, want at least 4", len(nums))
	}
	for _, name := range []string{rotatedName(1), rotatedName(2), rotatedName(3), activeName} {
		if n := len(readLines(t, filepath.Join(dir, name))); n < 5 {
			t.Fatalf("%s has %d lines, want at least 5", name, n)
		}
	}
	if v := mustVerify(t, l); !v.OK {
		t.Fatalf("untouched log does not verify: %+v", v.Problem)
	}
	return l, dir
}

// edit applies fn to the lines of one file.
func edit(t *testing.T, dir, name string, fn func([][]byte) [][]byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	writeLines(t, path, fn(readLines(t, path)))
}

func replaceIn(line []byte, old, new string) []byte {
	return bytes.Replace(line, []byte(old), []byte(new), 1)
}

func TestVerifyDetectsTampering(t *testing.T) {
	type where struct {
		file string
		line int // -1: the last line of file
	}
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		kind   string // "" means the tampering is beyond a chain: Verify passes
		at     where
	}{
		{
			name: "edited middle record",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte {
					ls[2] = replaceIn(ls[2], `"/v1/items/`, `"/v1/itemz/`)
					return ls
				})
			},
			kind: KindBrokenLink, at: where{rotatedName(2), 4},
		},
		{
			name: "edited status keeps valid JSON",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, activeName, func(ls [][]byte) [][]byte {
					ls[1] = replaceIn(ls[1], `"status":200`, `"status":201`)
					return ls
				})
			},
			kind: KindBrokenLink, at: where{activeName, 3},
		},
		{
			name: "edited last record of a rotated file",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte {
					ls[len(ls)-1] = replaceIn(ls[len(ls)-1], `"decision":"allowed"`, `"decision":"blocked"`)
					return ls
				})
			},
			kind: KindBrokenLink, at: where{rotatedName(3), 1},
		},
		{
			name: "deleted record",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte { return slices.Delete(ls, 2, 3) })
			},
			kind: KindBrokenLink, at: where{rotatedName(2), 3},
		},
		{
			name: "deleted very first record",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(1), func(ls [][]byte) [][]byte { return ls[1:] })
			},
			kind: KindBrokenLink, at: where{rotatedName(1), 1},
		},
		{
			name: "swapped pair",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(1), func(ls [][]byte) [][]byte {
					ls[1], ls[2] = ls[2], ls[1]
					return ls
				})
			},
			kind: KindBrokenLink, at: where{rotatedName(1), 2},
		},
		{
			name: "duplicated record",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(3), func(ls [][]byte) [][]byte { return slices.Insert(ls, 2, ls[1]) })
			},
			kind: KindBrokenLink, at: where{rotatedName(3), 3},
		},
		{
			name: "inserted forged record that links correctly backwards",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(3), func(ls [][]byte) [][]byte {
					forged := rec("forged", 1)
					forged.Time = base
					forged.Prev = hashOf(ls[1])
					line, err := json.Marshal(forged)
					if err != nil {
						t.Fatal(err)
					}
					return slices.Insert(ls, 2, append(line, '\n'))
				})
			},
			kind: KindBrokenLink, at: where{rotatedName(3), 4},
		},
		{
			name: "torn last line",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, activeName, func(ls [][]byte) [][]byte {
					last := ls[len(ls)-1]
					ls[len(ls)-1] = last[:len(last)/2]
					return ls
				})
			},
			kind: KindTorn, at: where{activeName, -1},
		},
		{
			name: "torn last line of a rotated file",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte {
					last := ls[len(ls)-1]
					ls[len(ls)-1] = last[:40]
					return ls
				})
			},
			kind: KindTorn, at: where{rotatedName(2), -1},
		},
		{
			name: "deleted rotated file",
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, rotatedName(2))); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindMissingFile, at: where{rotatedName(2), 0},
		},
		{
			name: "deleted oldest file",
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, rotatedName(1))); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindMissingFile, at: where{rotatedName(1), 0},
		},
		{
			name: "deleted newest rotated file",
			tamper: func(t *testing.T, dir string) {
				nums, _ := Open(dir, Options{}).rotatedNumbers()
				if err := os.Remove(filepath.Join(dir, rotatedName(nums[len(nums)-1]))); err != nil {
					t.Fatal(err)
				}
			},
			kind: KindBrokenLink, at: where{activeName, 1},
		},
		{
			name: "line that is not JSON",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(1), func(ls [][]byte) [][]byte {
					ls[3] = []byte("Authorization: Bearer " + canary + "\n")
					return ls
				})
			},
			kind: KindMalformed, at: where{rotatedName(1), 4},
		},
		{
			name: "empty line",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(1), func(ls [][]byte) [][]byte { return slices.Insert(ls, 2, []byte("\n")) })
			},
			kind: KindMalformed, at: where{rotatedName(1), 3},
		},
		{
			name: "record without an id",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte {
					ls[1] = regexp.MustCompile(`"id":"[^"]*",`).ReplaceAll(ls[1], nil)
					return ls
				})
			},
			kind: KindMalformed, at: where{rotatedName(2), 2},
		},
		{
			name: "record without prev",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(1), func(ls [][]byte) [][]byte {
					ls[0] = replaceIn(ls[0], `,"prev":""`, ``)
					return ls
				})
			},
			kind: KindMalformed, at: where{rotatedName(1), 1},
		},
		{
			name: "time that is not a time",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, rotatedName(2), func(ls [][]byte) [][]byte {
					ls[1] = regexp.MustCompile(`"time":"[^"]*"`).ReplaceAll(ls[1], []byte(`"time":"`+canary+`"`))
					return ls
				})
			},
			kind: KindMalformed, at: where{rotatedName(2), 2},
		},
		{
			name: "edited newest record: the limit of a chain without an anchor",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, activeName, func(ls [][]byte) [][]byte {
					ls[len(ls)-1] = replaceIn(ls[len(ls)-1], `"decision":"allowed"`, `"decision":"blocked"`)
					return ls
				})
			},
		},
		{
			name: "removed newest record: the limit of a chain without an anchor",
			tamper: func(t *testing.T, dir string) {
				edit(t, dir, activeName, func(ls [][]byte) [][]byte { return ls[:len(ls)-1] })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, dir := tamperLog(t)
			headBefore := mustVerify(t, l).Head
			tt.tamper(t, dir)
			v := mustVerify(t, l)

			if tt.kind == "" {
				if !v.OK {
					t.Fatalf("Verify found %+v; this tampering is documented as undetectable", v.Problem)
				}
				if v.Head == headBefore {
					t.Fatal("Head unchanged: an anchor kept elsewhere could not catch this")
				}
				return
			}
			if v.OK || v.Problem == nil {
				t.Fatalf("Verify = OK, want %s at %s:%d", tt.kind, tt.at.file, tt.at.line)
			}
			wantLine := tt.at.line
			if wantLine == -1 {
				wantLine = len(readLines(t, filepath.Join(dir, tt.at.file)))
			}
			p := v.Problem
			if p.Kind != tt.kind || p.File != tt.at.file || p.Line != wantLine {
				t.Fatalf("Problem = %s at %s:%d (%s), want %s at %s:%d", p.Kind, p.File, p.Line, p.Detail, tt.kind, tt.at.file, wantLine)
			}
			if p.Detail == "" {
				t.Error("empty Detail")
			}
			for _, content := range []string{canary, "api.example.com", "/v1/items", "STRIPE_KEY", "Bearer"} {
				if strings.Contains(p.Detail, content) {
					t.Errorf("Detail quotes record content %q: %s", content, p.Detail)
				}
			}
			t.Logf("%s: %s", p.Kind, p.Detail)
		})
	}
}

func TestTornLineStaysReported(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{Now: clock()})
	appendN(t, l, "a", 5)
	path := filepath.Join(dir, activeName)
	lines := readLines(t, path)
	torn := lines[4][:len(lines[4])/2]
	lines[4] = torn
	writeLines(t, path, lines)

	// Crash-then-restart: more appends, some in a new process's Log.
	appendN(t, l, "b", 2)
	appendN(t, Open(dir, Options{Now: clock()}), "c", 2)

	after := readLines(t, path)
	if len(after) != 9 || !bytes.Equal(after[4], append(torn, '\n')) {
		t.Fatalf("torn line not kept and terminated in place: %q", after[4])
	}
	var next Record
	if err := json.Unmarshal(after[5], &next); err != nil {
		t.Fatal(err)
	}
	if next.Prev != hashOf(torn) {
		t.Fatalf("record after the torn line links to %s, want the hash of the torn bytes %s", next.Prev, hashOf(torn))
	}
	v := mustVerify(t, l)
	if v.OK || v.Problem.Kind != KindTorn || v.Problem.File != activeName || v.Problem.Line != 5 || v.Records != 4 {
		t.Fatalf("Verify = %+v %+v, want torn at audit.log:5 after 4 records", v, v.Problem)
	}
	all, err := l.Read(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, []string{"a000000", "a000001", "a000002", "a000003", "b000000", "b000001", "c000000", "c000001"}) {
		t.Fatalf("Read = %v, want every whole record, the torn one skipped", got)
	}
}

func TestTornLineAtRotation(t *testing.T) {
	dir := t.TempDir()
	appendN(t, Open(dir, Options{Now: clock()}), "a", 3)
	path := filepath.Join(dir, activeName)
	lines := readLines(t, path)
	lines[len(lines)-1] = lines[len(lines)-1][:30]
	writeLines(t, path, lines)
	// The next record no longer fits: the torn line is ended and rotated.
	st, _ := os.Stat(path)
	l := Open(dir, Options{MaxFileSize: st.Size() + 10, Now: clock()})
	appendN(t, l, "b", 5)
	rotated := readLines(t, filepath.Join(dir, rotatedName(1)))
	if len(rotated) != len(lines) || !bytes.HasSuffix(rotated[len(rotated)-1], []byte("\n")) {
		t.Fatalf("rotated file: %d lines, want %d with the torn one terminated", len(rotated), len(lines))
	}
	v := mustVerify(t, l)
	if v.OK || v.Problem.Kind != KindTorn || v.Problem.File != rotatedName(1) || v.Problem.Line != len(lines) {
		t.Fatalf("Verify = %+v, want torn at the end of audit.log.1", v.Problem)
	}
}

func TestHelperProcess(t *testing.T) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") != "1" {
		t.Skip("helper process for TestConcurrentAppends")
	}
	n, _ := strconv.Atoi(os.Getenv("AUDIT_HELPER_N"))
	maxSize, _ := strconv.ParseInt(os.Getenv("AUDIT_HELPER_MAX"), 10, 64)
	l := Open(os.Getenv("AUDIT_HELPER_DIR"), Options{MaxFileSize: maxSize})
	prefix := os.Getenv("AUDIT_HELPER_PREFIX")
	for i := range n {
		if err := l.Append(context.Background(), rec(prefix, i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	os.Exit(0)
}

func TestConcurrentAppends(t *testing.T) {
	const perWriter = 250
	const maxSize = 16 << 10 // rotations race with appends too
	tests := []struct {
		name       string
		goroutines int
		processes  int
	}{
		{"goroutines", 8, 0},
		{"processes", 0, 4},
		{"goroutines and processes", 8, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var cmds []*exec.Cmd
			var stderrs []*bytes.Buffer
			for p := range tt.processes {
				cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				cmd.Env = append(os.Environ(),
					"GO_WANT_HELPER_PROCESS=1",
					"AUDIT_HELPER_DIR="+dir,
					fmt.Sprintf("AUDIT_HELPER_PREFIX=p%d-", p),
					fmt.Sprintf("AUDIT_HELPER_N=%d", perWriter),
					fmt.Sprintf("AUDIT_HELPER_MAX=%d", maxSize))
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds = append(cmds, cmd)
				stderrs = append(stderrs, &stderr)
			}
			l := Open(dir, Options{MaxFileSize: maxSize})
			var wg sync.WaitGroup
			errs := make(chan error, tt.goroutines)
			for g := range tt.goroutines {
				wg.Go(func() {
					for i := range perWriter {
						if err := l.Append(context.Background(), rec(fmt.Sprintf("g%d-", g), i)); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("Append: %v", err)
			}
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("helper process %d: %v: %s", i, err, stderrs[i])
				}
			}

			want := (tt.goroutines + tt.processes) * perWriter
			v := mustVerify(t, l)
			if !v.OK || v.Records != want {
				t.Fatalf("Verify = %+v, problem %+v; want OK with %d records", v, v.Problem, want)
			}
			if len(v.Files) < 2 {
				t.Errorf("no rotation happened (%v)", v.Files)
			}
			all, err := l.Read(Filter{})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, r := range all {
				seen[r.ID]++
			}
			for w := range tt.goroutines + tt.processes {
				prefix := fmt.Sprintf("g%d-", w)
				if w >= tt.goroutines {
					prefix = fmt.Sprintf("p%d-", w-tt.goroutines)
				}
				for i := range perWriter {
					if id := fmt.Sprintf("%s%06d", prefix, i); seen[id] != 1 {
						t.Fatalf("record %s present %d times, want once", id, seen[id])
					}
				}
			}
			if len(all) != want {
				t.Fatalf("Read returned %d records, want %d", len(all), want)
			}
		})
	}
}

// TestRecordHoldsNoValue keeps Record unable to carry a secret value. A
// []byte, map, interface, json.RawMessage or nested struct could hold a
// header map, a body or a raw value without anyone noticing in review; a
// plain string, []string or number is visible, named, and normalised by
// Append to its syntax. time.Time is the one struct allowed: it encodes to a
// timestamp and nothing else. Named types are refused too: their methods
// (MarshalJSON) could write anything. Adding a field means adding it here,
// which is the review this test asks for.
func TestRecordHoldsNoValue(t *testing.T) {
	allowed := map[reflect.Type]bool{
		reflect.TypeFor[string]():    true,
		reflect.TypeFor[[]string]():  true,
		reflect.TypeFor[int]():       true,
		reflect.TypeFor[float64]():   true,
		reflect.TypeFor[time.Time](): true,
	}
	wantFields := []string{"ID", "Time", "FrontEnd", "Method", "Host", "Path", "Workspace", "Project", "Secrets", "Styles",
		"Status", "DurationMS", "Decision", "Reason", "Code", "Command", "ExitCode", "ClientUID", "ClientPID", "ClientToken", "Prev"}
	rt := reflect.TypeFor[Record]()
	var got []string
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	for f := range rt.Fields() {
		got = append(got, f.Name)
		if !allowed[f.Type] {
			t.Errorf("Record.%s has type %s; only string, []string, int, float64 and time.Time cannot smuggle a value", f.Name, f.Type)
		}
		if f.Anonymous || !f.IsExported() {
			t.Errorf("Record.%s is embedded or unexported", f.Name)
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !snake.MatchString(name) {
			t.Errorf("Record.%s has json name %q, want snake_case", f.Name, name)
		}
	}
	if !slices.Equal(got, wantFields) {
		t.Errorf("Record fields = %v, want %v: review a new field against the no-value rule, then list it here", got, wantFields)
	}
	if reflect.PointerTo(rt).NumMethod() != 0 {
		t.Errorf("Record has methods; a MarshalJSON could write fields the struct does not show")
	}
}

func TestAppendNormalises(t *testing.T) {
	tests := []struct {
		name  string
		in    func(r *Record)
		check func(t *testing.T, r Record, raw string)
	}{
		{
			name: "defaults",
			in: func(r *Record) {
				r.ID, r.Time, r.Secrets, r.Styles = "", time.Time{}, nil, nil
			},
			check: func(t *testing.T, r Record, raw string) {
				if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(r.ID) {
					t.Errorf("ID = %q, want 16 random bytes in hex", r.ID)
				}
				if !r.Time.Equal(base.Add(time.Second)) || r.Time.Location() != time.UTC {
					t.Errorf("Time = %v, want Now in UTC", r.Time)
				}
				if !strings.Contains(raw, `"secrets":[]`) || !strings.Contains(raw, `"styles":[]`) {
					t.Errorf("nil slices not written as []: %s", raw)
				}
				if !strings.Contains(raw, `"prev":""`) {
					t.Errorf("first record has no empty prev: %s", raw)
				}
			},
		},
		{
			name: "workspace and project kept in name syntax, anything else invalid",
			in: func(r *Record) {
				r.Workspace, r.Project = "acme-prod.eu_1", "sk_live_"+strings.Repeat("x", 70)
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Workspace != "acme-prod.eu_1" || r.Project != Invalid {
					t.Errorf("workspace %q, project %q", r.Workspace, r.Project)
				}
			},
		},
		{
			name: "workspace with a control byte, empty project",
			in: func(r *Record) {
				r.Workspace, r.Project = "acme\x1b[31m", ""
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Workspace != Invalid || r.Project != "" || strings.Contains(raw, `"project"`) {
					t.Errorf("workspace %q, project %q: %s", r.Workspace, r.Project, raw)
				}
			},
		},
		{
			name: "time converted to UTC",
			in: func(r *Record) {
				r.Time = time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
			},
			check: func(t *testing.T, r Record, raw string) {
				if !strings.Contains(raw, `"time":"2026-01-02T02:04:05.000000006Z"`) {
					t.Errorf("time not in UTC: %s", raw)
				}
			},
		},
		{
			name: "command is a bare file name, exit code bounded",
			in: func(r *Record) {
				r.FrontEnd, r.Command, r.ExitCode = FrontEndEnv, "/usr/bin/env "+canary, 300
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Command != Invalid || r.ExitCode != 255 {
					t.Errorf("Command = %q, ExitCode = %d; want %q, 255", r.Command, r.ExitCode, Invalid)
				}
			},
		},
		{
			name: "plain command names kept",
			in: func(r *Record) {
				r.FrontEnd, r.Command, r.ExitCode = FrontEndEnv, "python3.12", 130
			},
			check: func(t *testing.T, r Record, raw string) {
				if !strings.Contains(raw, `"front_end":"env"`) || !strings.Contains(raw, `"command":"python3.12","exit_code":130`) {
					t.Errorf("env record: %s", raw)
				}
			},
		},
		{
			name: "query and fragment never stored",
			in: func(r *Record) {
				r.Path = "/v1/charges?api_key=" + canary + "#frag"
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Path != "/v1/charges" {
					t.Errorf("Path = %q, want /v1/charges", r.Path)
				}
			},
		},
		{
			name: "userinfo dropped from host",
			in: func(r *Record) {
				r.Host = "user:" + canary + "@api.example.com:8443"
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Host != "api.example.com:8443" {
					t.Errorf("Host = %q", r.Host)
				}
			},
		},
		{
			name: "fields outside their syntax become Invalid",
			in: func(r *Record) {
				r.Secrets = []string{"GOOD_NAME", canary + "-x", "1BAD", ""}
				r.Styles = []string{StyleQuery, "cookie=" + canary}
				r.Method = "GET " + canary
				r.Host = "evil.example/" + canary
				r.Reason = "Reason: " + canary
				r.Code = "not-a-code " + canary
				r.ID = canary + "!"
			},
			check: func(t *testing.T, r Record, raw string) {
				if !slices.Equal(r.Secrets, []string{"GOOD_NAME", Invalid, Invalid, Invalid}) {
					t.Errorf("Secrets = %q", r.Secrets)
				}
				if !slices.Equal(r.Styles, []string{StyleQuery, Invalid}) {
					t.Errorf("Styles = %q", r.Styles)
				}
				if r.Method != Invalid || r.Host != Invalid || r.Reason != Invalid || r.Code != Invalid {
					t.Errorf("Method, Host, Reason, Code = %q, %q, %q, %q", r.Method, r.Host, r.Reason, r.Code)
				}
				if len(r.ID) != 32 {
					t.Errorf("invalid ID kept: %q", r.ID)
				}
			},
		},
		{
			name: "valid fields kept",
			in: func(r *Record) {
				r.Host = "[::1]:8080"
				r.Method = "PATCH"
				r.Reason = "ssrf_private_address"
				r.Code = string(errcode.Denied)
				r.Decision = DecisionBlocked
				r.Path = "/a b/<script>&é"
				r.Styles = []string{StyleBearer, StyleBasic, StyleHeader, StyleQuery, StyleBody, StyleForm}
				r.Secrets = []string{"_A", "x1_y"}
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.Host != "[::1]:8080" || r.Method != "PATCH" || r.Reason != "ssrf_private_address" || r.Code != "denied" {
					t.Errorf("valid field changed: %+v", r)
				}
				if !strings.Contains(raw, `"path":"/a b/<script>&é"`) {
					t.Errorf("path HTML-escaped or changed: %s", raw)
				}
				if !slices.Equal(r.Secrets, []string{"_A", "x1_y"}) || len(r.Styles) != 6 {
					t.Errorf("names or styles changed: %v %v", r.Secrets, r.Styles)
				}
			},
		},
		{
			name: "numbers json cannot encode",
			in: func(r *Record) {
				r.DurationMS = math.NaN()
				r.Status = -1
			},
			check: func(t *testing.T, r Record, raw string) {
				if r.DurationMS != 0 || r.Status != 0 {
					t.Errorf("DurationMS, Status = %v, %v", r.DurationMS, r.Status)
				}
			},
		},
		{
			name: "newline in a path stays one line",
			in: func(r *Record) {
				r.Path = "/a\nb\u2028c"
			},
			check: func(t *testing.T, r Record, raw string) {
				if strings.Count(raw, "\n") != 1 || r.Path != "/a\nb\u2028c" {
					t.Errorf("record not one line: %q", raw)
				}
			},
		},
		{
			name: "long path cut on a rune boundary",
			in: func(r *Record) {
				r.Path = "/" + strings.Repeat("é", 3000)
			},
			check: func(t *testing.T, r Record, raw string) {
				if len(r.Path) > maxPath || !strings.HasPrefix(r.Path, "/éé") || strings.ContainsRune(r.Path, '\uFFFD') {
					t.Errorf("Path cut badly: %d bytes", len(r.Path))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := Open(dir, Options{Now: clock()})
			r := rec("r", 1)
			tt.in(r)
			if err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, activeName))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(raw, []byte(canary)) {
				t.Fatalf("canary written to the log: %s", raw)
			}
			got, err := l.Read(Filter{})
			if err != nil || len(got) != 1 {
				t.Fatalf("Read = %v, %v", got, err)
			}
			if !reflect.DeepEqual(got[0], *r) {
				t.Errorf("Read %+v, but Append left the caller %+v", got[0], *r)
			}
			tt.check(t, got[0], string(raw))
			if v := mustVerify(t, l); !v.OK {
				t.Errorf("Verify: %+v", v.Problem)
			}
		})
	}
}

func TestAppendRejectsBugs(t *testing.T) {
	tests := []struct {
		name string
		in   func(r *Record)
	}{
		{"no front end", func(r *Record) { r.FrontEnd = "" }},
		{"unknown front end", func(r *Record) { r.FrontEnd = canary }},
		{"no decision", func(r *Record) { r.Decision = "" }},
		{"unknown decision", func(r *Record) { r.Decision = "maybe " + canary }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := Open(dir, Options{})
			r := rec("r", 1)
			tt.in(r)
			err := l.Append(context.Background(), r)
			if !errors.Is(err, ErrInvalidRecord) || errcode.Classify(err).Code != errcode.Internal {
				t.Fatalf("Append = %v, want ErrInvalidRecord (internal)", err)
			}
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("error quotes the field: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, activeName)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a rejected record created the log: %v", err)
			}
		})
	}
}

func TestReadFilters(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: 700, Now: clock()})
	add := func(id, host string, secrets []string, decision string, at time.Time) {
		t.Helper()
		r := rec("", 0)
		r.ID, r.Host, r.Secrets, r.Decision, r.Time = id, host, secrets, decision, at
		// a, c, e for uid 1001 (b with its pid), d for uid 0: what a broker
		// daemon's log holds.
		ctx := context.Background()
		switch id {
		case "a", "c", "e":
			ctx = WithClient(ctx, Client{UID: 1001, Token: "ci"})
		case "b":
			ctx = WithClient(ctx, Client{UID: 1001, PID: 77})
		case "d":
			ctx = WithClient(ctx, Client{UID: 0})
		}
		StampClient(ctx, r)
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	add("a", "api.stripe.com", []string{"STRIPE_KEY"}, DecisionAllowed, at(0))
	add("b", "api.github.com", []string{"GH_TOKEN"}, DecisionBlocked, at(1))
	add("c", "api.stripe.com:8443", []string{"STRIPE_KEY", "OTHER"}, DecisionRedacted, at(2))
	add("d", "[::1]:8080", []string{"LOCAL"}, DecisionError, at(3))
	add("e", "API.Stripe.com", []string{"OTHER"}, DecisionAllowed, at(4))
	// Lines Read must step over: Verify reports them, Read shows the rest.
	path := filepath.Join(dir, activeName)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("not json\n")
	f.Close()
	add("f", "api.github.com", nil, DecisionAllowed, at(5))
	f, _ = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"torn","time":"2026-`)
	f.Close()
	if nums, _ := l.rotatedNumbers(); len(nums) == 0 {
		t.Fatal("want the records spread over rotated files")
	}

	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"all", Filter{}, []string{"a", "b", "c", "d", "e", "f"}},
		{"last", Filter{Last: 2}, []string{"e", "f"}},
		{"last more than there are", Filter{Last: 100}, []string{"a", "b", "c", "d", "e", "f"}},
		{"secret", Filter{Secret: "STRIPE_KEY"}, []string{"a", "c"}},
		{"secret in any position", Filter{Secret: "OTHER"}, []string{"c", "e"}},
		{"secret nobody used", Filter{Secret: "NOPE"}, []string{}},
		{"host matches any port and case", Filter{Host: "api.stripe.com"}, []string{"a", "c", "e"}},
		{"host with port matches that port only", Filter{Host: "api.stripe.com:8443"}, []string{"c"}},
		{"ipv6 host", Filter{Host: "::1"}, []string{"d"}},
		{"bracketed ipv6 host", Filter{Host: "[::1]"}, []string{"d"}},
		{"decision", Filter{Decision: DecisionAllowed}, []string{"a", "e", "f"}},
		{"since is inclusive", Filter{Since: at(2)}, []string{"c", "d", "e", "f"}},
		{"last applies after the other filters", Filter{Host: "api.stripe.com", Last: 2}, []string{"c", "e"}},
		{"client uid", Filter{ClientUID: "1001"}, []string{"a", "b", "c", "e"}},
		{"client uid 0 is a uid, not none", Filter{ClientUID: "0"}, []string{"d"}},
		{"client uid with other filters", Filter{ClientUID: "1001", Secret: "OTHER"}, []string{"c", "e"}},
		{"all filters", Filter{Secret: "STRIPE_KEY", Host: "api.stripe.com", Decision: DecisionRedacted, Since: at(1), Last: 5}, []string{"c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || !slices.Equal(ids(got), tt.want) {
				t.Fatalf("Read(%+v) = %v, want %v", tt.filter, ids(got), tt.want)
			}
		})
	}
	if _, err := l.Read(Filter{Last: -1}); errcode.Classify(err).Code != errcode.Usage {
		t.Fatalf("Read(Last: -1) = %v, want a usage error", err)
	}
}

// TestReadSinceSkipsOldRotatedFiles: with Since, Read returns exactly
// what filtering every record would, records a little out of time order
// (within appendSkew) included, and it does not read a rotated file whose
// last record is older than Since (a record planted there stays unseen),
// so reading the newest records of a long history costs little.
func TestReadSinceSkipsOldRotatedFiles(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: 700, Now: clock()})
	at := func(min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
	var all []*Record
	for i := 0; i < 40; i++ {
		r := rec("r", i)
		// Every other record runs 30 s behind the one before it (90 s earlier
		// than its minute).
		r.Time = at(i).Add(-time.Duration(i%2) * 90 * time.Second)
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	nums, _ := l.rotatedNumbers()
	if len(nums) < 5 {
		t.Fatalf("want many rotated files, have %d", len(nums))
	}
	for _, since := range []time.Time{at(0), at(9), at(10).Add(-20 * time.Second), at(25), at(38), at(39), at(40)} {
		var want []string
		for _, r := range all {
			if !r.Time.Before(since) {
				want = append(want, r.ID)
			}
		}
		got, err := l.Read(Filter{Since: since})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), want) && !(len(want) == 0 && len(got) == 0) {
			t.Fatalf("Read(Since %v) = %v, want %v", since.Sub(base), ids(got), want)
		}
	}
	// A record planted at the start of the oldest file, newer than
	// everything: a full read sees it, a read since the middle of the
	// history does not open that file.
	oldest := filepath.Join(dir, rotatedName(nums[0]))
	b, err := os.ReadFile(oldest)
	if err != nil {
		t.Fatal(err)
	}
	planted := `{"id":"planted","time":"` + at(100).Format(time.RFC3339Nano) + `","front_end":"call","secrets":[],"styles":[],"duration_ms":0,"decision":"allowed","prev":""}` + "\n"
	if err := os.WriteFile(oldest, append([]byte(planted), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Read(Filter{}); !slices.Contains(ids(got), "planted") {
		t.Fatal("the planted record does not parse")
	}
	if got, _ := l.Read(Filter{Since: at(20)}); slices.Contains(ids(got), "planted") {
		t.Fatal("Read since the middle of the history read the oldest file")
	}
}

func TestReadLastBoundsMemoryAndOrder(t *testing.T) {
	l := Open(t.TempDir(), Options{MaxFileSize: 8 << 10, Now: clock()})
	appendN(t, l, "r", 500)
	for _, last := range []int{1, 7, 64, 200, 499, 500} {
		got, err := l.Read(Filter{Last: last})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != last || got[0].ID != fmt.Sprintf("r%06d", 500-last) || got[last-1].ID != "r000499" {
			t.Fatalf("Read(Last: %d) = %d records from %s", last, len(got), got[0].ID)
		}
	}
}

func TestEmptyLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-yet")
	l := Open(dir, Options{})
	got, err := l.Read(Filter{})
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Read = %v, %v; want [] and no error", got, err)
	}
	v := mustVerify(t, l)
	if !v.OK || v.Records != 0 || v.Head != "" || v.Files == nil || len(v.Files) != 0 {
		t.Fatalf("Verify = %+v", v)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading created the directory: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on Windows")
	}
	dir := filepath.Join(t.TempDir(), "state", "audit")
	l := Open(dir, Options{MaxFileSize: 600})
	appendN(t, l, "r", 5)
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) < 3 {
		t.Fatalf("want an active, a rotated and a lock file, got %d entries", len(entries))
	}
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: 1000, Now: clock()})
	big := rec("big", 0)
	for i := range 100 {
		big.Secrets = append(big.Secrets, fmt.Sprintf("NAME_%d", i))
	}
	if err := l.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	if nums, _ := l.rotatedNumbers(); len(nums) != 0 {
		t.Fatal("rotated an empty file")
	}
	appendN(t, l, "small", 1)
	if nums, _ := l.rotatedNumbers(); !slices.Equal(nums, []int{1}) {
		t.Fatalf("rotated files %v after a line larger than MaxFileSize, want [1]", nums)
	}
	// A stray file that is not ours, and a gap, do not change numbering:
	// the next rotation takes the highest number + 1.
	os.WriteFile(filepath.Join(dir, "audit.log.01"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "audit.log.bak"), nil, 0o600)
	appendN(t, l, "more", 8)
	nums, _ := l.rotatedNumbers()
	if len(nums) < 2 || nums[0] != 1 || nums[len(nums)-1] != len(nums) {
		t.Fatalf("rotated files %v, want 1..N", nums)
	}
	// The active file vanishing (a crash right after rotating) keeps the
	// chain: the next record links to the newest rotated file.
	os.Remove(filepath.Join(dir, activeName))
	appendN(t, l, "after", 1)
	if v := mustVerify(t, l); !v.OK {
		t.Fatalf("Verify: %+v", v.Problem)
	}
}

func TestRecordLongerThanReadBuffer(t *testing.T) {
	l := Open(t.TempDir(), Options{Now: clock()})
	long := rec("long", 0)
	for i := range 12000 {
		long.Secrets = append(long.Secrets, fmt.Sprintf("SECRET_NAME_%05d", i))
	}
	appendN(t, l, "a", 2)
	if err := l.Append(context.Background(), long); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, "b", 2)
	if v := mustVerify(t, l); !v.OK || v.Records != 5 {
		t.Fatalf("Verify = %+v %+v", v, v.Problem)
	}
	got, err := l.Read(Filter{Secret: "SECRET_NAME_11999"})
	if err != nil || len(got) != 1 || len(got[0].Secrets) != 12001 {
		t.Fatalf("Read found %d records (%v)", len(got), err)
	}
}

func TestAppendIgnoresCancelWhenFree(t *testing.T) {
	// The context bounds waiting only: a request whose client hung up must
	// still leave its audit record.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := Open(t.TempDir(), Options{})
	if err := l.Append(ctx, rec("r", 1)); err != nil {
		t.Fatalf("Append with a cancelled context and a free lock: %v", err)
	}
}

func TestLastLine(t *testing.T) {
	old := tailChunk
	defer func() { tailChunk = old }()
	tests := []struct {
		file       string
		line       string
		terminated bool
	}{
		{"a\n", "a", true},
		{"a\nbc\n", "bc", true},
		{"a\nbc", "bc", false},
		{"abc", "abc", false},
		{"\n", "", true},
		{"a\n\n", "", true},
		{"x\n" + strings.Repeat("y", 50) + "\n", strings.Repeat("y", 50), true},
		{strings.Repeat("y", 50), strings.Repeat("y", 50), false},
		{"x\n" + strings.Repeat("z", 49), strings.Repeat("z", 49), false},
	}
	for _, chunk := range []int{1, 2, 3, 7, 4096} {
		tailChunk = chunk
		for _, tt := range tests {
			line, terminated, err := lastLine(strings.NewReader(tt.file), int64(len(tt.file)))
			if err != nil || string(line) != tt.line || terminated != tt.terminated {
				t.Errorf("chunk %d, lastLine(%q) = %q, %v, %v; want %q, %v", chunk, tt.file, line, terminated, err, tt.line, tt.terminated)
			}
		}
	}
}

func BenchmarkAppend(b *testing.B) {
	l := Open(b.TempDir(), Options{})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := l.Append(ctx, rec("r", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
