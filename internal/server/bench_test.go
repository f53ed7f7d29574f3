package server

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/agentsecrets/agentsecrets/internal/syncapi"
)

// BenchmarkPull200: about 50 concurrent clients pulling a whole 200-secret
// project (200 envelopes of 1 KiB) over loopback HTTP, on each backend.
// Reports the p99 latency of one pull; scripts/bench runs it for longer.
func BenchmarkPull200(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			ts := startServer(b, be.spec(b), Options{})
			tok, pullURL := seed200(b, ts)
			body := []byte(`{"known":{}}`)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					start := time.Now()
					req, _ := http.NewRequest("POST", pullURL, bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
					mine = append(mine, time.Since(start))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

func seed200(b *testing.B, ts *testServer) (string, string) {
	u := ts.signup(b, "bench@example.com")
	ws := ts.workspace(b, u, "app")
	var changes []syncapi.PushChange
	for i := 0; i < 200; i++ {
		changes = append(changes, syncapi.PushChange{Name: fmt.Sprintf("SECRET_%03d", i), Envelope: randomBytes(b, 1024)})
	}
	call[syncapi.PushResponse](b, "POST", ts.URL+path(syncapi.PathPush, "ws", ws, "project", "app"), u.Session.AccessToken, pushReq(changes...))
	return u.Session.AccessToken, ts.URL + path(syncapi.PathPull, "ws", ws, "project", "app")
}
