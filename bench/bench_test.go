package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// short is the measured time of the tests' runs.
const short = 300 * time.Millisecond

// checkRow fails t unless r is a clean row labelled label.
func checkRow(t *testing.T, r Result, label string) {
	t.Helper()
	if r.Label != label {
		t.Errorf("Label = %q, want %q", r.Label, label)
	}
	if r.Requests == 0 {
		t.Errorf("%s: Requests = 0, want some", label)
	}
	if r.Errors != 0 {
		t.Errorf("%s: Errors = %d, want 0", label, r.Errors)
	}
	if r.Elapsed <= 0 || r.RPS <= 0 {
		t.Errorf("%s: Elapsed = %s, RPS = %f, want both positive", label, r.Elapsed, r.RPS)
	}
	if !(0 < r.P50 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("%s: percentiles p50=%s p90=%s p99=%s max=%s, want 0 < p50 <= p90 <= p99 <= max",
			label, r.P50, r.P90, r.P99, r.Max)
	}
}

func TestRunReadsSetupSessions(t *testing.T) {
	for _, method := range []string{"session.get", "session.state"} {
		t.Run(method, func(t *testing.T) {
			f, srv := newFake(t)
			var out bytes.Buffer
			cfg := Config{URL: srv.URL, Method: method, Concurrency: 8, Duration: short, Merchant: fakeMerchant, Setup: 50}
			res, err := Run(context.Background(), cfg, &out)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res) != 1 {
				t.Fatalf("got %d rows, want 1", len(res))
			}
			checkRow(t, res[0], "sessiond")
			if got, want := res[0].Requests, f.count(method); got != want {
				t.Errorf("Requests = %d, server counted %d", got, want)
			}
			if got, want := f.count("session.create_deposit"), 50; got != want {
				t.Errorf("setup created %d sessions, want %d", got, want)
			}
			if got := f.count("merchant.authorize"); got != 1 {
				t.Errorf("merchant.authorize called %d times, want 1", got)
			}
			if !strings.Contains(out.String(), "setup: 50 sessions") {
				t.Errorf("output has no setup line:\n%s", out.String())
			}
		})
	}
}

func TestRunClientTransition(t *testing.T) {
	f, srv := newFake(t)
	// Ten sessions make 80 moves: far fewer than the run makes, so batches
	// are created as the run goes.
	cfg := Config{URL: srv.URL, Method: "client.transition", Concurrency: 6, Duration: short, Merchant: fakeMerchant, Setup: 10}
	res, err := Run(context.Background(), cfg, new(bytes.Buffer))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	checkRow(t, res[0], "sessiond")
	if got, want := res[0].Requests, f.count("client.transition"); got != want {
		t.Errorf("Requests = %d, server counted %d", got, want)
	}
	if got := f.count("session.create_deposit"); got <= 12 {
		t.Errorf("created %d sessions, want more than the first batch of 12", got)
	}
	if f.completed() == 0 {
		t.Errorf("no session reached STATE_COMPLETED")
	}
	// The run must end at its deadline plus the grace for requests in
	// flight; the margin is for a busy machine under -race, not a speed
	// claim: this catches a run that does not stop.
	if limit := short + grace + 30*time.Second; res[0].Elapsed > limit {
		t.Errorf("Elapsed = %s, want at most %s", res[0].Elapsed, limit)
	}
}

func TestRunFixedParams(t *testing.T) {
	tests := []struct {
		method string
		params string
	}{
		{"session.create_deposit", ""},
		{"echo", `{"x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			f, srv := newFake(t)
			cfg := Config{URL: srv.URL, Method: tt.method, Params: json.RawMessage(tt.params), Concurrency: 4, Duration: short, Merchant: fakeMerchant}
			res, err := Run(context.Background(), cfg, new(bytes.Buffer))
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			checkRow(t, res[0], "sessiond")
			if got, want := res[0].Requests, f.count(tt.method); got != want {
				t.Errorf("Requests = %d, server counted %d", got, want)
			}
		})
	}
}

func TestRunBaseline(t *testing.T) {
	for _, method := range []string{"session.get", "client.transition"} {
		t.Run(method, func(t *testing.T) {
			f, srv := newFake(t)
			var out bytes.Buffer
			cfg := Config{URL: srv.URL, Method: method, Concurrency: 4, Duration: short, Merchant: fakeMerchant, Setup: 20, Baseline: true}
			res, err := Run(context.Background(), cfg, &out)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res) != 2 {
				t.Fatalf("got %d rows, want 2", len(res))
			}
			t.Logf("output:\n%s", out.String())
			checkRow(t, res[0], "sessiond")
			checkRow(t, res[1], "baseline")
			if got, want := res[0].Requests, f.count(method); got != want {
				t.Errorf("Requests = %d, server counted %d", got, want)
			}
			for _, want := range []string{"\nsessiond ", "\nbaseline ", "ratio sessiond/baseline: throughput "} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestRunReport(t *testing.T) {
	_, srv := newFake(t)
	var out bytes.Buffer
	cfg := Config{URL: srv.URL, Concurrency: 2, Duration: short, Merchant: fakeMerchant, Setup: 5}
	if _, err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatalf("Run: %v", err)
	}
	lines := strings.Split(out.String(), "\n")
	var header, row string
	for i, l := range lines {
		if strings.HasPrefix(l, "label ") && i+1 < len(lines) {
			header, row = l, lines[i+1]
		}
	}
	if got := strings.Fields(header); strings.Join(got, " ") != "label requests errors req/s p50 p90 p99 max" {
		t.Fatalf("header = %q\noutput:\n%s", header, out.String())
	}
	if len(row) != len(header) && len([]rune(row)) != len([]rune(header)) {
		t.Errorf("row %q is not as wide as header %q", row, header)
	}
	if got := len(strings.Fields(row)); got != 8 {
		t.Errorf("row %q has %d columns, want 8", row, got)
	}
}

func TestRunHeap(t *testing.T) {
	tests := []struct {
		name, metrics, want string
	}{
		{"absent", "", "heap: n/a (no /metrics)\n"},
		{"present", "# HELP go_memstats_heap_inuse_bytes x\n# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 1.048576e+07\n",
			"heap in use (go_memstats_heap_inuse_bytes): before 10.0 MiB, after 10.0 MiB\n"},
		{"other metrics only", "go_goroutines 7\n", "heap: n/a (no /metrics)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, srv := newFake(t)
			f.metrics = tt.metrics
			var out bytes.Buffer
			cfg := Config{URL: srv.URL, Method: "rpc.discover", Concurrency: 2, Duration: 50 * time.Millisecond}
			if _, err := Run(context.Background(), cfg, &out); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out.String())
			}
		})
	}
}

func TestRunProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 20 * time.Millisecond
	_, srv := newFake(t)
	var progress bytes.Buffer
	cfg := Config{URL: srv.URL, Concurrency: 4, Duration: short, Merchant: fakeMerchant, Setup: 10, Progress: &progress}
	if _, err := Run(context.Background(), cfg, new(bytes.Buffer)); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, want := range []string{"setup: 10 sessions in ", "sessiond: ", " requests, ", " req/s\n"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
}

func TestRunStopsWhenContextDone(t *testing.T) {
	f, srv := newFake(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onCall = func(method string, n int) {
		if method == "session.get" && n == 200 {
			cancel()
		}
	}
	cfg := Config{URL: srv.URL, Concurrency: 4, Duration: time.Hour, Merchant: fakeMerchant, Setup: 10, Baseline: true}
	res, err := Run(ctx, cfg, new(bytes.Buffer))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(res) != 1 {
		t.Errorf("got %d rows, want 1 (no baseline after cancel)", len(res))
	}
	if r := res[0]; r.Requests < 190 || r.Errors != 0 || r.Elapsed >= time.Hour {
		t.Errorf("got %d requests, %d errors in %s; want about 200, 0, well under an hour", r.Requests, r.Errors, r.Elapsed)
	}
}

func TestRunConfigErrors(t *testing.T) {
	_, srv := newFake(t)
	tests := []struct {
		name string
		cfg  Config
		want string // the error, or a part of it
	}{
		{"no url", Config{Merchant: fakeMerchant}, "bench: --url is required"},
		{"bad url", Config{URL: "127.0.0.1:8080", Merchant: fakeMerchant}, "bench: --url"},
		{"negative concurrency", Config{URL: srv.URL, Concurrency: -1, Merchant: fakeMerchant}, "bench: -c must be at least 1"},
		{"negative duration", Config{URL: srv.URL, Duration: -time.Second, Merchant: fakeMerchant}, "bench: -d must be positive"},
		{"negative setup", Config{URL: srv.URL, Setup: -1, Merchant: fakeMerchant}, "bench: setup must be at least 1"},
		{"merchant without colon", Config{URL: srv.URL, Merchant: "pk_test"}, "bench: --merchant must be PUBLIC_KEY:SECRET"},
		{"merchant without key", Config{URL: srv.URL, Merchant: ":sk_test"}, "bench: --merchant must be PUBLIC_KEY:SECRET"},
		{"merchant without secret", Config{URL: srv.URL, Merchant: "pk_test:"}, "bench: --merchant must be PUBLIC_KEY:SECRET"},
		{"no merchant", Config{URL: srv.URL}, "bench: --merchant PUBLIC_KEY:SECRET is required for session.get"},
		{"params not an object", Config{URL: srv.URL, Method: "echo", Params: json.RawMessage(`[1]`), Merchant: fakeMerchant}, "bench: params must be a JSON object"},
		{"params not json", Config{URL: srv.URL, Method: "echo", Params: json.RawMessage(`{`), Merchant: fakeMerchant}, "bench: params must be a JSON object"},
		{"wrong secret", Config{URL: srv.URL, Merchant: "pk_test:wrong"}, `bench: merchant.authorize: -32001 Unauthorized: "invalid credentials"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Duration = cmpOr(tt.cfg.Duration, short)
			var out bytes.Buffer
			res, err := Run(context.Background(), tt.cfg, &out)
			if err == nil {
				t.Fatalf("Run = %v, nil; want error %q", res, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q on error, want nothing", out.String())
			}
		})
	}
}

// cmpOr returns a unless it is zero, else b.
func cmpOr(a, b time.Duration) time.Duration {
	if a != 0 {
		return a
	}
	return b
}

func TestRunUnreachable(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close()
	_, err := Run(context.Background(), Config{URL: url, Method: "rpc.discover", Duration: short}, new(bytes.Buffer))
	if err == nil || !strings.HasPrefix(err.Error(), "bench: server unreachable: ") {
		t.Errorf("error = %v, want bench: server unreachable: …", err)
	}
}

func TestRunCountsErrors(t *testing.T) {
	f, srv := newFake(t)
	var out bytes.Buffer
	// The fake does not know this method: every request is an error.
	cfg := Config{URL: srv.URL, Method: "no.such", Concurrency: 2, Duration: 100 * time.Millisecond, Merchant: fakeMerchant}
	res, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r := res[0]; r.Requests == 0 || r.Errors != r.Requests || r.Requests != f.count("no.such") {
		t.Errorf("Requests = %d, Errors = %d, server counted %d; want all counted requests to be errors",
			r.Requests, r.Errors, f.count("no.such"))
	}
	if want := `sessiond: first error: -32601 MethodNotFound: "Method not found."`; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]time.Duration, 100)
	for i := range sorted {
		sorted[i] = time.Duration(i + 1)
	}
	tests := []struct {
		samples []time.Duration
		p       int
		want    time.Duration
	}{
		{sorted, 50, 50},
		{sorted, 90, 90},
		{sorted, 99, 99},
		{sorted, 100, 100},
		{sorted[:1], 50, 1},
		{sorted[:1], 99, 1},
		{sorted[:3], 50, 2},
		{sorted[:3], 99, 3},
		{nil, 50, 0},
	}
	for _, tt := range tests {
		if got := percentile(tt.samples, tt.p); got != tt.want {
			t.Errorf("percentile(%d samples, %d) = %d, want %d", len(tt.samples), tt.p, got, tt.want)
		}
	}
}

func TestBaselineHandler(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"jsonrpc":"2.0","id":7,"method":"x","params":{}}`, `{"jsonrpc":"2.0","id":7,"result":{"ok":true}}`},
		{`{"jsonrpc":"2.0","id":"a","method":"x"}`, `{"jsonrpc":"2.0","id":"a","result":{"ok":true}}`},
		{`{`, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error."}}`},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		baselineHandler(rec, httptest.NewRequest("POST", "/rpc", strings.NewReader(tt.body)))
		if got := strings.TrimSpace(rec.Body.String()); got != tt.want {
			t.Errorf("POST %s: got %s, want %s", tt.body, got, tt.want)
		}
	}
}

func TestWalkParams(t *testing.T) {
	w := &walk{token: `"tok"`}
	var got []string
	for w.step < len(depositPath)-1 {
		got = append(got, string(w.params()))
		w.step++
	}
	want := []string{
		`{"token":"tok","state":1,"bank":{"id":"testbank","name":"Test Bank"}}`,
		`{"token":"tok","state":2}`, `{"token":"tok","state":3}`, `{"token":"tok","state":4}`,
		`{"token":"tok","state":5}`, `{"token":"tok","state":8}`, `{"token":"tok","state":9}`,
		`{"token":"tok","state":12}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("moves:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMakeSessions(t *testing.T) {
	f, srv := newFake(t)
	var out bytes.Buffer
	cfg := Config{URL: srv.URL, Concurrency: 4, Merchant: fakeMerchant}
	if err := MakeSessions(context.Background(), cfg, 7, &out); err != nil {
		t.Fatalf("MakeSessions: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if want := "bearer " + strings.TrimPrefix(fakeBearer, "Bearer "); lines[0] != want {
		t.Errorf("first line %q, want %q", lines[0], want)
	}
	if got := len(lines) - 1; got != 7 {
		t.Fatalf("%d session lines, want 7:\n%s", got, out.String())
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		id, token, ok := strings.Cut(l, " ")
		if !ok || !strings.HasPrefix(id, "id-") || !strings.HasPrefix(token, "token-") || seen[id] {
			t.Errorf("session line %q is not a new \"ID TOKEN\"", l)
		}
		seen[id] = true
	}
	if got := f.count("session.create_deposit"); got != 7 {
		t.Errorf("server saw %d creates, want 7", got)
	}

	for _, bad := range []struct {
		cfg  Config
		n    int
		want string
	}{
		{Config{URL: srv.URL}, 3, "--merchant"},
		{cfg, 0, "at least 1"},
	} {
		if err := MakeSessions(context.Background(), bad.cfg, bad.n, io.Discard); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("MakeSessions(%d) = %v, want an error about %s", bad.n, err, bad.want)
		}
	}
}
