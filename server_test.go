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

// TestTrustedProxies: X-Forwarded-For is believed only from a trusted
// proxy, read from the right so a client cannot put itself in front; the
// session's ip and the access log carry the client's address.
func TestTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name    string
		trusted string
		want    string
	}{
		{"trusted", "127.0.0.0/8", "203.0.113.7"},
		{"untrusted", "", "127.0.0.1"},
		{"other proxy trusted", "10.0.0.0/8", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := startMain(t, filepath.Join(t.TempDir(), "sessiond.db"), func(c *server.Config) {
				withMerchant("pk_px", "sk_px", "")(c)
				c.TrustedProxies, _ = server.ParsePrefixes(tt.trusted)
			})
			token := authorize(t, p.url, "pk_px", "sk_px")
			var s struct{ ID, Token string }
			mustCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "5", "country_id": "se"}, &s)
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"client.get","params":{"token":%q}}`, s.Token)
			req, _ := http.NewRequest(http.MethodPost, p.url+"/rpc", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", "198.51.100.9, 203.0.113.7") // the first is the client's own claim
			req.Header.Set("X-Forwarded-Proto", "https")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()

			// Touches may be recorded a moment later: wait for the ip.
			deadline := time.Now().Add(10 * time.Second)
			var got struct {
				IP *string `json:"ip"`
			}
			for {
				mustCall(t, p.url, token, "session.get", map[string]string{"id": s.ID}, &got)
				if got.IP != nil && *got.IP != "" || time.Now().After(deadline) {
					break
				}
			}
			if got.IP == nil || *got.IP != tt.want {
				t.Errorf("stored ip %v, want %s", got.IP, tt.want)
			}
			if !strings.Contains(p.logs.String(), `"client_ip":"`+tt.want+`"`) {
				t.Errorf("access log lacks client_ip %s:\n%s", tt.want, p.logs.String())
			}
			if strings.Contains(p.logs.String(), "198.51.100.9") {
				t.Errorf("the client's own X-Forwarded-For claim was believed")
			}
		})
	}
}
