package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/errcode"
	"github.com/agentsecrets/agentsecrets/internal/filelock"
)

// writeN appends n records through w from goroutines goroutines, each with
// its own id prefix.
func writeN(t testing.TB, w *Writer, prefix string, goroutines, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range n {
				if err := w.Append(context.Background(), rec(fmt.Sprintf("%s%d-", prefix, g), i)); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// checkAll verifies the log in dir and that it holds each id in want once.
func checkAll(t *testing.T, dir string, want []string) *Verification {
	t.Helper()
	l := Open(dir, Options{})
	v := mustVerify(t, l)
	if !v.OK || v.Records != len(want) {
		t.Fatalf("Verify = %+v, problem %+v; want OK with %d records", v, v.Problem, len(want))
	}
	all, err := l.Read(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range all {
		seen[r.ID]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Fatalf("record %s present %d times, want once", id, seen[id])
		}
	}
	return v
}

func idsOf(prefix string, goroutines, n int) []string {
	var out []string
	for g := range goroutines {
		for i := range n {
			out = append(out, fmt.Sprintf("%s%d-%06d", prefix, g, i))
		}
	}
	return out
}

func TestWriterShutdownFlush(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: 32 << 10})
	w := l.NewWriter()
	writeN(t, w, "w", 8, 300)
	// Nothing waits for the queue here: Close alone must write all of it.
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := idsOf("w", 8, 300)
	if v := checkAll(t, dir, want); len(v.Files) < 2 {
		t.Errorf("no rotation happened (%v)", v.Files)
	}
	if l.kept != nil {
		t.Error("Close left the files open")
	}
	// A record that arrives after Close (a request still finishing) is
	// written directly, never dropped.
	late := rec("late", 0)
	if err := w.Append(context.Background(), late); err != nil {
		t.Fatalf("Append after Close: %v", err)
	}
	checkAll(t, dir, append(want, late.ID))
}

func TestWriterAppendCompletesRecord(t *testing.T) {
	dir := t.TempDir()
	w := Open(dir, Options{Now: clock()}).NewWriter()
	defer w.Close()
	r := &Record{FrontEnd: FrontEndProxy, Decision: DecisionAllowed, Host: "user:" + canary + "@api.example.com"}
	if err := w.Append(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.Time.IsZero() || r.Host != "api.example.com" {
		t.Fatalf("Append did not complete and normalise the caller's record: %+v", r)
	}
	if err := w.Append(context.Background(), &Record{FrontEnd: "nope", Decision: DecisionAllowed}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("Append of a record without a front end = %v, want ErrInvalidRecord", err)
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, activeName))
	if bytes.Contains(data, []byte(canary)) || !bytes.Contains(data, []byte(r.ID)) {
		t.Fatalf("log holds %s", data)
	}
}

// TestWriterDoesNotWaitForTheLock: while another process holds the lock,
// Append still returns at once, and the queued records follow in order
// once the lock is free.
func TestWriterDoesNotWaitForTheLock(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{})
	appendN(t, l, "before", 3)
	w := l.NewWriter()
	defer w.Close()
	held := make(chan struct{})
	release := make(chan struct{})
	go filelock.With(context.Background(), filepath.Join(dir, lockName), func() error {
		close(held)
		<-release
		return nil
	})
	<-held
	start := time.Now()
	for i := range 200 {
		if err := w.Append(context.Background(), rec("q", i)); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("200 Appends took %v while another process held the lock", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Flush(ctx); errcode.Classify(err).Code != errcode.Timeout {
		t.Fatalf("Flush while the lock is held = %v, want a timeout", err)
	}
	close(release)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	all, err := l.Read(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(all)
	if len(got) != 203 || got[2] != "before000002" || got[3] != "q000000" || got[202] != "q000199" {
		t.Fatalf("records out of order: %v ... %v", got[:5], got[len(got)-2:])
	}
	checkAll(t, dir, got)
}

// TestWriterQueueFull: once maxQueue records wait, Append writes its record
// itself, which waits for the lock like Log.Append and honours ctx.
func TestWriterQueueFull(t *testing.T) {
	dir := t.TempDir()
	w := Open(dir, Options{}).NewWriter()
	release := make(chan struct{})
	held := make(chan struct{})
	go filelock.With(context.Background(), filepath.Join(dir, lockName), func() error {
		close(held)
		<-release
		return nil
	})
	<-held
	// The queue counts a batch until it is written, so exactly maxQueue
	// fit however much the writer took before it blocked on the lock.
	var want []string
	for i := range maxQueue {
		r := rec("q", i)
		if err := w.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	// Waiting out ctx for the lock: the log cannot take the record, which
	// front ends report as unavailable.
	if err := w.Append(ctx, rec("full", 0)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, filelock.ErrLocked) && !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Append with a full queue = %v, want it to wait for the lock and time out as unavailable", err)
	}
	close(release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	checkAll(t, dir, want)
}

// TestWriterHelperProcess is the other process of the Writer tests:
// "writer" appends through a Writer until killed; "verify" checks the
// chain over and over while other processes write.
func TestWriterHelperProcess(t *testing.T) {
	mode := os.Getenv("AUDIT_WRITER_HELPER")
	if mode == "" {
		t.Skip("helper process for the Writer tests")
	}
	dir := os.Getenv("AUDIT_HELPER_DIR")
	switch mode {
	case "writer":
		w := Open(dir, Options{MaxFileSize: 1 << 20}).NewWriter()
		for g := range 4 {
			go func() {
				for i := 0; ; i++ {
					w.Append(context.Background(), rec(fmt.Sprintf("k%d-", g), i))
				}
			}()
		}
		select {}
	case "verify":
		l := Open(dir, Options{})
		checks := 0
		for end := time.Now().Add(time.Second); time.Now().Before(end) || checks < 20; checks++ {
			v, err := l.Verify()
			if err != nil || !v.OK {
				fmt.Fprintf(os.Stderr, "check %d: %+v %v\n", checks, v, err)
				os.Exit(1)
			}
			if _, err := l.Read(Filter{Last: 10}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		fmt.Print(checks)
		os.Exit(0)
	}
	t.Fatalf("unknown helper mode %q", mode)
}

func helper(dir string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^(TestHelperProcess|TestWriterHelperProcess)$")
	cmd.Env = append(append(os.Environ(), "AUDIT_HELPER_DIR="+dir), env...)
	return cmd
}

// TestWriterWithOtherProcesses: `call` processes append to the log while a
// long-running Writer holds its files open, rotations included, and
// another process verifies the chain throughout.
func TestWriterWithOtherProcesses(t *testing.T) {
	const n = 300
	const maxSize = 16 << 10
	dir := t.TempDir()
	l := Open(dir, Options{MaxFileSize: maxSize})
	appendN(t, l, "first", 1) // so the verifier never sees a missing directory
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for p := range 3 {
		cmds = append(cmds, helper(dir, "GO_WANT_HELPER_PROCESS=1", fmt.Sprintf("AUDIT_HELPER_PREFIX=p%d-", p),
			fmt.Sprintf("AUDIT_HELPER_N=%d", n), fmt.Sprintf("AUDIT_HELPER_MAX=%d", maxSize)))
	}
	cmds = append(cmds, helper(dir, "AUDIT_WRITER_HELPER=verify"))
	for _, cmd := range cmds {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		outs = append(outs, &out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	w := l.NewWriter()
	writeN(t, w, "w", 4, n)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v: %s", i, err, outs[i])
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := append(idsOf("w", 4, n), "first000000")
	for p := range 3 {
		for i := range n {
			want = append(want, fmt.Sprintf("p%d-%06d", p, i))
		}
	}
	if v := checkAll(t, dir, want); len(v.Files) < 3 {
		t.Errorf("too few rotations to mean anything: %v", v.Files)
	}
	t.Logf("the verifier checked the chain %s times while it grew", outs[3])
}

// TestWriterCrash kills a process in the middle of writing batches: what
// it wrote is a valid chain, except possibly a torn last line, which the
// next writer terminates and chains from, and Verify keeps reporting.
func TestWriterCrash(t *testing.T) {
	dir := t.TempDir()
	cmd := helper(dir, "AUDIT_WRITER_HELPER=writer")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st, err := os.Stat(filepath.Join(dir, activeName)); err == nil && st.Size() > 256<<10 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the writer process wrote nothing")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	l := Open(dir, Options{MaxFileSize: 1 << 20})
	before := mustVerify(t, l)
	if !before.OK && before.Problem.Kind != KindTorn {
		t.Fatalf("after the kill: %+v", before.Problem)
	}
	w := l.NewWriter()
	writeN(t, w, "after", 1, 10)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	v := mustVerify(t, l)
	switch {
	case before.OK && (!v.OK || v.Records != before.Records+10):
		t.Fatalf("after a clean kill and 10 more records: %+v %+v", v, v.Problem)
	case !before.OK && (v.Problem == nil || *v.Problem != *before.Problem):
		t.Fatalf("torn line no longer reported the same way: before %+v, after %+v", before.Problem, v.Problem)
	}
	all, err := l.Read(Filter{Last: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); len(got) != 10 || got[0] != "after0-000000" {
		t.Fatalf("newest records %v", got)
	}
	t.Logf("killed after %d records; torn line: %v", before.Records, !before.OK)
}

// TestWriterTornBatch: a batch that reached the file only in part (the
// machine crashed during its one write) leaves a torn line inside the
// batch; the records before it stay verified, the next writer chains from
// the torn bytes, and Verify points at the line.
func TestWriterTornBatch(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{})
	appendN(t, l, "a", 2)
	w := l.NewWriter()
	// Hold the lock so the five records become one batch.
	release := make(chan struct{})
	held := make(chan struct{})
	go filelock.With(context.Background(), filepath.Join(dir, lockName), func() error {
		close(held)
		<-release
		return nil
	})
	<-held
	writeN(t, w, "b", 1, 5)
	close(release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, activeName)
	lines := readLines(t, path)
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7", len(lines))
	}
	// The write stopped inside the batch's third record.
	cut := bytes.Join(lines[:4], nil)
	cut = append(cut, lines[4][:len(lines[4])/2]...)
	if err := os.WriteFile(path, cut, 0o600); err != nil {
		t.Fatal(err)
	}

	w = Open(dir, Options{}).NewWriter()
	writeN(t, w, "c", 1, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	v := mustVerify(t, l)
	if v.OK || v.Problem.Kind != KindTorn || v.Problem.Line != 5 || v.Records != 4 {
		t.Fatalf("Verify = %+v %+v, want torn at line 5 after 4 records", v, v.Problem)
	}
	after := readLines(t, path)
	var next Record
	if err := json.Unmarshal(after[5], &next); err != nil {
		t.Fatal(err)
	}
	if next.Prev != hashOf(lines[4][:len(lines[4])/2]) {
		t.Fatal("the record after the torn line does not chain from its bytes")
	}
	all, _ := l.Read(Filter{})
	if got := strings.Join(ids(all), " "); got != "a000000 a000001 b0-000000 b0-000001 c0-000000 c0-000001 c0-000002" {
		t.Fatalf("Read = %s", got)
	}
}

// TestWriterRetriesFailedBatch: a batch the file system refuses stays
// queued and is written once the log accepts writes again; at Close,
// records that still cannot be written are counted in the error.
func TestWriterRetriesFailedBatch(t *testing.T) {
	dir := t.TempDir()
	active := filepath.Join(dir, activeName)
	if err := os.Mkdir(active, 0o700); err != nil { // not a file: every open fails
		t.Fatal(err)
	}
	w := Open(dir, Options{}).NewWriter()
	writeN(t, w, "r", 1, 5)
	if err := w.Flush(context.Background()); err == nil || errcode.Classify(err).Code != errcode.Internal {
		t.Fatalf("Flush with an unwritable log = %v, want the write error", err)
	}
	os.Remove(active)
	// The failed batch is retried after retryDelay; a Flush may still see
	// the old error until then.
	flushUntilOK(t, w, "Flush after the log was fixed")
	checkAll(t, dir, idsOf("r", 1, 5))

	// Break it again (the kept descriptor is checked against the path).
	os.Remove(active)
	os.Mkdir(active, 0o700)
	writeN(t, w, "s", 1, 3)
	err := w.Close()
	if !errors.Is(err, ErrAuditWrite) || !strings.Contains(err.Error(), "3 lost") {
		t.Fatalf("Close with an unwritable log = %v, want ErrAuditWrite naming 3 lost records", err)
	}
}

// TestWriterAfterDirectoryRemoved: someone deletes the state directory
// under a running proxy. The kept descriptors point at deleted files; the
// writer notices, recreates the directory and starts a new chain rather
// than writing into files nobody can see or locking a lock nobody shares.
func TestWriterAfterDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	w := Open(dir, Options{}).NewWriter()
	defer w.Close()
	writeN(t, w, "old", 1, 5)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	writeN(t, w, "new", 1, 5)
	flushUntilOK(t, w, "the writer never recovered")
	checkAll(t, dir, idsOf("new", 1, 5))
	// And the lock it now holds is the one other processes take.
	other := Open(dir, Options{})
	appendN(t, other, "other", 3)
	writeN(t, w, "more", 1, 3)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkAll(t, dir, append(append(idsOf("new", 1, 5), "other000000", "other000001", "other000002"), idsOf("more", 1, 3)...))
}

func BenchmarkWriterAppend(b *testing.B) {
	w := Open(b.TempDir(), Options{}).NewWriter()
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := w.Append(ctx, rec("r", i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// TestWriterLockFileReplaced: when audit.lock is deleted and recreated
// under a running Writer, the writer locks the new file, the one other
// processes lock, rather than the deleted one it holds open: at once when
// another process has appended under the new file (the writer sees its
// line), and otherwise once lockRecheck has passed since its last check.
func TestWriterLockFileReplaced(t *testing.T) {
	for _, otherAppends := range []bool{true, false} {
		t.Run(fmt.Sprintf("other process appended %v", otherAppends), func(t *testing.T) {
			dir := t.TempDir()
			w := Open(dir, Options{}).NewWriter()
			defer w.Close()
			writeN(t, w, "a", 1, 3)
			if err := w.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			lock := filepath.Join(dir, lockName)
			if err := os.Remove(lock); err != nil {
				t.Fatal(err)
			}
			want := idsOf("a", 1, 3)
			if otherAppends {
				appendN(t, Open(dir, Options{}), "o", 1) // creates the new lock file
				want = append(want, "o000000")
			} else {
				// Nothing shows the writer that the lock changed; only the
				// periodic check can.
				time.Sleep(lockRecheck)
			}
			held := make(chan struct{})
			release := make(chan struct{})
			go filelock.With(context.Background(), lock, func() error {
				close(held)
				<-release
				return nil
			})
			<-held
			writeN(t, w, "b", 1, 3)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := w.Flush(ctx); errcode.Classify(err).Code != errcode.Timeout {
				t.Fatalf("Flush while another holder has the new lock file = %v, want it to wait", err)
			}
			close(release)
			if err := w.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			checkAll(t, dir, append(want, idsOf("b", 1, 3)...))
		})
	}
}

// TestWriterOtherProcessBetweenBatches: a `call` process appends (and
// rotates the file the Writer keeps open) between two batches of a
// running Writer. The next batch chains from that process's last line,
// into the new active file, under the lock that process took.
func TestWriterOtherProcessBetweenBatches(t *testing.T) {
	const maxSize = 4 << 10 // a dozen records: the other process rotates
	dir := t.TempDir()
	w := Open(dir, Options{MaxFileSize: maxSize}).NewWriter()
	var want []string
	for round := range 4 {
		prefix := fmt.Sprintf("w%d-", round)
		writeN(t, w, prefix, 1, 5)
		want = append(want, idsOf(prefix, 1, 5)...)
		if err := w.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		other := fmt.Sprintf("p%d-", round)
		cmd := helper(dir, "GO_WANT_HELPER_PROCESS=1", "AUDIT_HELPER_PREFIX="+other,
			"AUDIT_HELPER_N=20", fmt.Sprintf("AUDIT_HELPER_MAX=%d", maxSize))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("other process: %v: %s", err, out)
		}
		for i := range 20 {
			want = append(want, fmt.Sprintf("%s%06d", other, i))
		}
	}
	writeN(t, w, "last", 1, 5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if v := checkAll(t, dir, append(want, idsOf("last", 1, 5)...)); len(v.Files) < 5 {
		t.Errorf("too few rotations to mean anything: %v", v.Files)
	}
}

// TestWriterLingers: a batch waits for more records (here: for an hour),
// except that a Flush, a full batch and Close write at once.
func TestWriterLingers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, activeName)
	w := Open(dir, Options{}).newWriter(time.Hour)
	writeN(t, w, "a", 4, 5)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("records written before the linger ended or a Flush: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil { // not an hour
		t.Fatal(err)
	}
	if n := len(readLines(t, path)); n != 20 {
		t.Fatalf("%d lines after Flush, want 20", n)
	}

	writeN(t, w, "full", 1, maxBatch)
	for deadline := time.Now().Add(10 * time.Second); len(readLines(t, path)) < 20+maxBatch; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a full batch waited for the linger")
		}
	}

	writeN(t, w, "c", 1, 3)
	if err := w.Close(); err != nil { // an hour early
		t.Fatal(err)
	}
	checkAll(t, dir, append(append(idsOf("a", 4, 5), idsOf("full", 1, maxBatch)...), idsOf("c", 1, 3)...))
}

// flushUntilOK polls Flush until it succeeds or a deadline passes: a
// failed batch is retried after retryDelay, so the first Flush after a
// repair may still report the old error.
func flushUntilOK(t *testing.T, w *Writer, what string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(retryDelay / 4) {
		if err = w.Flush(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// TestWriterDirectAppendFailureRefusesNext: a record the Writer writes
// directly (queue full, or after Close) and cannot write is reported to
// Ready as well as returned, since a front end appending off the response
// path (the proxy) cannot act on the error; the next request is refused.
func TestWriterDirectAppendFailureRefusesNext(t *testing.T) {
	dir := t.TempDir()
	l := Open(dir, Options{})
	w := l.NewWriter()
	ctx := context.Background()
	if err := w.Append(ctx, rec("a", 0)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	active := filepath.Join(dir, "audit.log")
	if err := os.Rename(active, active+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(active, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := w.Append(ctx, rec("b", 0)); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("direct append to a broken log: %v", err)
	}
	if err := w.Ready(ctx); errcode.Classify(err).Code != errcode.Unavailable {
		t.Fatalf("Ready after a failed direct append: %v", err)
	}
}
