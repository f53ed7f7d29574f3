//go:build unix

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkRecordLine is the per-record encoding and hashing the writer
// does, with the encoder it replaced (encoding/json) as the baseline in the
// same run.
func BenchmarkRecordLine(b *testing.B) {
	r := rec("r", 1)
	if err := r.normalise(time.Now); err != nil {
		b.Fatal(err)
	}
	r.Prev = lineHash([]byte("previous"))
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			line, err := jsonLine(r)
			if err != nil {
				b.Fatal(err)
			}
			sum := sha256.Sum256(line[:len(line)-1])
			_ = hex.EncodeToString(sum[:])
		}
	})
	b.Run("appendLine", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = appendLine(buf[:0], r); err != nil {
				b.Fatal(err)
			}
			_ = lineHash(buf[:len(buf)-1])
		}
	})
}

// BenchmarkWriterBatch is the writer's cost per record when its batches
// hold size records: Append size records, then Flush (which writes them as
// one batch, without a linger). size=1 is every batch at low load, and
// under load before batches lingered; lingering makes batches of about the
// records that arrive in lingerDelay.
func BenchmarkWriterBatch(b *testing.B) {
	for _, size := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			w := Open(b.TempDir(), Options{}).NewWriter()
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Append(ctx, rec("r", i)); err != nil {
					b.Fatal(err)
				}
				if i++; i%size == 0 {
					if err := w.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkWriterLoad appends records from 4 goroutines, each doing a
// fixed amount of other work (hashing 64 KiB, standing in for a request)
// before every record, and reports the process's CPU time per record
// (user+system, from getrusage, so the writer goroutine's work and its
// syscalls are included). "work-only" does the work and no Append: the
// writer's cost per record is a variant's cpu-ns/op minus work-only's.
// linger=0 is the writer as it was before batches lingered: a batch as
// soon as the previous one is written.
func BenchmarkWriterLoad(b *testing.B) {
	work := make([]byte, 64<<10)
	run := func(b *testing.B, w *Writer) {
		ctx := context.Background()
		const clients = 4
		b.ReportAllocs()
		before := cpuTime(b)
		b.ResetTimer()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for i := c; i < b.N; i += clients {
					sha256.Sum256(work)
					if w == nil {
						continue
					}
					if err := w.Append(ctx, rec("r", i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if w != nil {
			if err := w.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/op")
		if w != nil {
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("work-only", func(b *testing.B) { run(b, nil) })
	for _, linger := range []time.Duration{0, lingerDelay} {
		b.Run(fmt.Sprintf("linger=%v", linger), func(b *testing.B) {
			run(b, Open(b.TempDir(), Options{}).newWriter(linger))
		})
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
