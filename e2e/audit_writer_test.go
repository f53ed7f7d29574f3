package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestProxyAuditUnderLoad: a running proxy audits through its batching
// writer while `call` processes append to the same log. During the load
// `audit verify` in another process sees an intact chain; after SIGINT
// every request has its record, the chain verifies, and no value reached
// any file.
func TestProxyAuditUnderLoad(t *testing.T) {
	const requests, calls = 300, 6
	key := newCanary(t, "audit", "")
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request, body string) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	v := brokerVault(t, map[string]string{"KEY": string(key)}, up)

	cmd, addr, token := launchProxy(t, v.Env(), v.Dir)

	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}
	var wg sync.WaitGroup
	next := make(chan int, requests)
	for i := range requests {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				req, _ := http.NewRequest("GET", "http://"+addr+"/proxy", nil)
				req.Header.Set("X-AS-Session-Token", token)
				req.Header.Set("X-AS-Target-URL", fmt.Sprintf("%s/r/%d", up.URL, i))
				req.Header.Set("X-AS-Inject-Bearer", "KEY")
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("request %d: status %d", i, resp.StatusCode)
				}
			}
		})
	}
	for i := range calls {
		wg.Go(func() {
			v.Run("call", "--url", fmt.Sprintf("%s/c/%d", up.URL, i), "--bearer", "KEY").OK(t)
			if ver := v.Run("audit", "verify").OK(t).JSON(t); ver["ok"] != true {
				t.Errorf("audit verify while the proxy writes: %v", ver)
			}
		})
	}
	wg.Wait()

	// Graceful shutdown writes whatever the writer still holds.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("proxy exit: %v", err)
	}
	ver := v.Run("audit", "verify").OK(t).JSON(t)
	if ver["ok"] != true || ver["records"] != float64(requests+calls) {
		t.Fatalf("audit verify after stop = %v, want ok with %d records", ver, requests+calls)
	}
	var logs struct {
		Records []struct {
			FrontEnd string `json:"front_end"`
			Path     string `json:"path"`
			Decision string `json:"decision"`
		} `json:"records"`
	}
	if err := json.Unmarshal(v.Run("proxy", "logs", "--last", "0").OK(t).Stdout, &logs); err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{}
	for _, r := range logs.Records {
		if r.Decision != "allowed" {
			t.Errorf("record %+v", r)
		}
		paths[r.FrontEnd+" "+r.Path] = true
	}
	for i := range requests {
		if !paths[fmt.Sprintf("proxy /r/%d", i)] {
			t.Errorf("no record of proxied request %d", i)
		}
	}
	for i := range calls {
		if !paths[fmt.Sprintf("call /c/%d", i)] {
			t.Errorf("no record of call %d", i)
		}
	}
	filepath.WalkDir(v.Home, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "vault.enc" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		assertNoLeak(t, path, data, [][]byte{key})
		return nil
	})
}
