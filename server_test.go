package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/bench"
	"github.com/sessiond/sessiond/server"
)

// inproc is a server.Main started in this process, exactly as
// `sessiond serve` starts it, on a free loopback port.
type inproc struct {
	*server.Main
	url  string
	logs *lockedBuffer
	stop func() error
}

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startMain opens and runs a server.Main with serve's defaults, changed by
// edit, on db. stop ends Run and returns its error; the test's cleanup
// stops it if the test did not.
func startMain(t *testing.T, db string, edit func(*server.Config)) *inproc {
	t.Helper()
	logs := &lockedBuffer{}
	c := server.DefaultConfig()
	c.Addr, c.DB, c.Log = "127.0.0.1:0", db, zerolog.New(logs)
	if edit != nil {
		edit(&c)
	}
	m := server.New(c)
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Open(ctx); err != nil {
		cancel()
		t.Fatalf("Open: %v\n%s", err, logs)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	var runErr error
	p := &inproc{Main: m, url: m.URL(), logs: logs, stop: func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return p
}

// TestBenchOnServer runs the load generator against the real server
// started as serve starts it: every request it counts is one the server
// answered successfully, as /metrics counts them.
func TestBenchOnServer(t *testing.T) {
	for _, method := range []string{"session.get", "client.transition"} {
		t.Run(method, func(t *testing.T) {
			p := startMain(t, filepath.Join(t.TempDir(), "sessiond.db"), withMerchant("pk_b", "sk_b", ""))
			cfg := bench.Config{URL: p.url, Method: method, Concurrency: 4, Duration: 300 * time.Millisecond, Merchant: "pk_b:sk_b", Setup: 20}
			res, err := bench.Run(context.Background(), cfg, io.Discard)
			if err != nil {
				t.Fatalf("bench.Run: %v", err)
			}
			if len(res) != 1 || res[0].Requests == 0 || res[0].Errors != 0 {
				t.Fatalf("bench result %+v, want requests and no errors", res)
			}
			want := fmt.Sprintf(`sessiond_rpc_requests_total{code="0",method=%q} %d`, method, res[0].Requests)
			if got := scrape(t, p.url); !strings.Contains(got, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		})
	}
}

// scrape returns the /metrics text.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
