// Package bench is the load generator behind `sessiond bench`. It sends
// JSON-RPC 2.0 requests of one method to a sessiond server (POST /rpc) from
// a fixed number of workers over keep-alive HTTP connections for a fixed
// time, and reports requests/s and exact latency percentiles. It can run the
// identical load against an in-process minimal JSON-RPC handler, the
// baseline that is the ceiling for any endpoint on the machine, and print
// how far sessiond is from it. It uses the standard library only and speaks
// to the server over the wire contract (API.md), never through sessiond's
// own packages.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultMethod      = "session.get"
	DefaultConcurrency = 64
	DefaultDuration    = 10 * time.Second
	DefaultSetup       = 1000
)

// Config says what to load and how hard. The zero value of Method,
// Concurrency, Duration and Setup means its default; a negative value is an
// error.
type Config struct {
	// URL is the server's base URL, such as http://127.0.0.1:8080;
	// requests go to URL+"/rpc" and the heap figure comes from URL+"/metrics".
	URL string
	// Method is the JSON-RPC method to load (DefaultMethod when empty).
	Method string
	// Params are the params of every request for a method that needs no
	// setup; nil means {} (or, for create methods and merchant.authorize,
	// params that work: see Run). Methods with setup ignore Params.
	Params json.RawMessage
	// Concurrency is the number of workers, each with its own keep-alive
	// connection (DefaultConcurrency when 0).
	Concurrency int
	// Duration is the measured time (DefaultDuration when 0). Setup is not
	// counted in it.
	Duration time.Duration
	// Merchant is "PUBLIC_KEY:SECRET", traded through merchant.authorize
	// for the bearer token of merchant methods and of setup. It is required
	// unless the method is a client.* method without setup, rpc.discover
	// or merchant.token.
	Merchant string
	// Baseline also runs the identical load against an in-process minimal
	// JSON-RPC handler and prints the ratios sessiond/baseline.
	Baseline bool
	// Setup is how many sessions to create before the clock starts for
	// methods that need sessions (DefaultSetup when 0); see Run.
	Setup int
	// Progress, when not nil, gets a progress line once a second while a
	// run or its setup is going.
	Progress io.Writer
}

// Result is the outcome of one measured run.
type Result struct {
	// Label names the target: "sessiond" or "baseline".
	Label string
	// Requests is the number of requests answered (or failed) in the
	// measured time, Errors those of them that failed: a transport error,
	// an HTTP status other than 200, a body that is not a JSON-RPC response
	// with the request's id, or a JSON-RPC error.
	Requests, Errors int
	// Elapsed is the measured time: from the first request of the run to
	// the answer of the last, without setup.
	Elapsed time.Duration
	// RPS is Requests per second of Elapsed.
	RPS float64
	// P50, P90, P99 and Max are latency percentiles (nearest rank over
	// every request counted in Requests, failed ones included).
	P50, P90, P99, Max time.Duration
}

// Labels of the two targets.
const (
	labelSessiond = "sessiond"
	labelBaseline = "baseline"
)

// depositParams are the params of every session that setup creates, and
// the default params of session.create_deposit.
const depositParams = `{"amount":"10.00","country_id":"se","merchant_reference":"bench"}`

// progressEvery is the interval of progress lines; tests shorten it.
var progressEvery = time.Second

// grace is how long requests still in flight when the time is up may take
// before they are abandoned and counted as errors.
const grace = 5 * time.Second

// Run loads cfg.URL with cfg.Method from cfg.Concurrency workers for
// cfg.Duration and writes a table of the results to out: one row for
// sessiond and, with cfg.Baseline, one for the baseline and the ratios
// sessiond/baseline of throughput and p99, then the server's heap in use
// before and after (go_memstats_heap_inuse_bytes from /metrics, when it has
// one). It returns the rows.
//
// What a request carries depends on the method:
//   - session.get, session.state: {"id"} of one of cfg.Setup deposit
//     sessions created up front, in turn.
//   - client.get, session.get_by_token: {"token"} of such sessions, in turn.
//   - client.transition: moves a session one step along the deposit path
//     0→1→2→3→4→5→8→9→12 (the move to 1 names a bank). Sessions wait in a
//     shared queue, so no two workers move one session at once. The run
//     starts with max(cfg.Setup, 2×Concurrency) sessions; when they have
//     all reached 12 the clock stops, more are created, sized from the rate
//     measured so far to last the rest of the time (×1.25, at most 100000
//     a batch), and the clock starts again. Setup is thus never measured,
//     at the price of a short ramp-down at the end of each batch; the
//     baseline runs the same way with made-up tokens.
//   - session.create_deposit, session.create_withdrawal, session.create:
//     cfg.Params, by default a 10.00 SEK deposit (withdrawal); the other
//     create methods get params valid for their type.
//   - merchant.authorize: cfg.Params, by default the credentials of
//     cfg.Merchant.
//   - any other method: cfg.Params, by default {}.
//
// Setup runs cfg.Concurrency creates at a time. Every request but
// client.* ones carries the merchant's bearer token. Latencies are all kept
// and sorted, so the percentiles are exact.
//
// Run fails on a bad cfg, an unreachable server, a failed
// merchant.authorize (quoting the server's message) or a failed setup. When
// ctx is done during the measured run, Run stops early, skips the baseline
// and reports what it measured.
func Run(ctx context.Context, cfg Config, out io.Writer) ([]Result, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, client: newClient(cfg.Concurrency)}
	defer b.client.CloseIdleConnections()

	before, err := b.heap(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: server unreachable: %w", err)
	}
	if cfg.Merchant != "" {
		if err := b.authorize(ctx); err != nil {
			return nil, err
		}
	}
	l, err := b.newLoad()
	if err != nil {
		return nil, err
	}
	auth := ""
	if !strings.HasPrefix(cfg.Method, "client.") {
		auth = b.bearer
	}
	sd := &target{label: labelSessiond, url: cfg.URL + "/rpc", client: b.client, auth: auth, prefix: requestPrefix(cfg.Method)}
	res, err := b.measure(ctx, sd, l)
	if err != nil {
		return nil, err
	}
	results := []Result{res.Result}
	samples := []string{res.firstErr}

	// The server's heap is read even when ctx is done, so that an
	// interrupted run still reports it.
	afterCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	after, _ := b.heap(afterCtx)
	cancel()

	if cfg.Baseline && ctx.Err() == nil {
		base, err := b.baseline(ctx, auth, l.forBaseline())
		if err != nil {
			return nil, err
		}
		results = append(results, base.Result)
		samples = append(samples, base.firstErr)
	}
	if err := b.report(out, results, samples, before, after); err != nil {
		return nil, err
	}
	return results, nil
}

// normalize returns c with its defaults filled in, or the first thing wrong
// with it.
func (c Config) normalize() (Config, error) {
	if strings.TrimSpace(c.URL) == "" {
		return c, errors.New("bench: --url is required")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, fmt.Errorf("bench: --url %q must look like http://host:port", c.URL)
	}
	c.URL = strings.TrimRight(c.URL, "/")
	if c.Method == "" {
		c.Method = DefaultMethod
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 1 {
		return c, fmt.Errorf("bench: -c must be at least 1, got %d", c.Concurrency)
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Duration <= 0 {
		return c, fmt.Errorf("bench: -d must be positive, got %s", c.Duration)
	}
	if c.Setup == 0 {
		c.Setup = DefaultSetup
	}
	if c.Setup < 1 {
		return c, fmt.Errorf("bench: setup must be at least 1 session, got %d", c.Setup)
	}
	if c.Merchant != "" {
		if _, _, ok := splitMerchant(c.Merchant); !ok {
			return c, errors.New("bench: --merchant must be PUBLIC_KEY:SECRET")
		}
	}
	if p := strings.TrimSpace(string(c.Params)); p != "" {
		if !strings.HasPrefix(p, "{") || !json.Valid(c.Params) {
			return c, errors.New("bench: params must be a JSON object")
		}
	} else {
		c.Params = nil
	}
	if c.Merchant == "" && c.needsMerchant() {
		return c, fmt.Errorf("bench: --merchant PUBLIC_KEY:SECRET is required for %s", c.Method)
	}
	return c, nil
}

// needsMerchant reports whether c's method or its setup needs a bearer
// token or the merchant's credentials.
func (c Config) needsMerchant() bool {
	switch {
	case setupKey(c.Method) != "" || c.Method == "client.transition":
		return true
	case c.Method == "merchant.authorize":
		return c.Params == nil
	case strings.HasPrefix(c.Method, "client."), c.Method == "rpc.discover", c.Method == "merchant.token":
		return false
	}
	return true
}

// splitMerchant splits "PUBLIC_KEY:SECRET"; ok is false unless both are
// there and non-empty.
func splitMerchant(s string) (publicKey, secret string, ok bool) {
	publicKey, secret, ok = strings.Cut(s, ":")
	if !ok || publicKey == "" || secret == "" || strings.Contains(secret, ":") {
		return "", "", false
	}
	return publicKey, secret, true
}

// bench is one call of Run.
type bench struct {
	cfg    Config
	client *http.Client
	bearer string // "Bearer <access_token>", or "" without a merchant

	setupSessions int           // sessions created by setup
	setupBatches  int           // calls of create
	setupTime     time.Duration // time spent in create
	tokenLen      int           // length of a real session token
}

// authorize trades the merchant's credentials for a bearer token.
func (b *bench) authorize(ctx context.Context) error {
	pk, secret, _ := splitMerchant(b.cfg.Merchant)
	params, err := json.Marshal(map[string]string{"public_key": pk, "secret": secret})
	if err != nil {
		return fmt.Errorf("bench: merchant.authorize: %w", err)
	}
	var res struct {
		AccessToken string `json:"access_token"`
	}
	t := &target{url: b.cfg.URL + "/rpc", client: b.client}
	if err := t.callResult(ctx, "merchant.authorize", params, &res); err != nil {
		return fmt.Errorf("bench: merchant.authorize: %w", err)
	}
	if res.AccessToken == "" {
		return errors.New("bench: merchant.authorize: no access_token in the result")
	}
	b.bearer = "Bearer " + res.AccessToken
	return nil
}

// baseline runs l against an in-process minimal JSON-RPC handler with a
// client like sessiond's, and auth on every request as for sessiond.
func (b *bench) baseline(ctx context.Context, auth string, l load) (measured, error) {
	srv := httptest.NewServer(http.HandlerFunc(baselineHandler))
	client := newClient(b.cfg.Concurrency)
	t := &target{label: labelBaseline, url: srv.URL + "/rpc", client: client, auth: auth, prefix: requestPrefix(b.cfg.Method)}
	res, err := b.measure(ctx, t, l)
	client.CloseIdleConnections()
	srv.Close()
	return res, err
}

// baselineHandler decodes a JSON-RPC request object and answers it with
// {"ok":true}: the least any JSON-RPC endpoint does.
func baselineHandler(w http.ResponseWriter, r *http.Request) {
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	type errorObject struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	var resp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *errorObject    `json:"error,omitempty"`
	}
	resp.JSONRPC = "2.0"
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		resp.Error = &errorObject{Code: -32700, Message: "Parse error."}
	} else {
		resp.ID = req.ID
		resp.Result = map[string]bool{"ok": true}
	}
	w.Header().Set("Content-Type", "application/json")
	// A failed write means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(&resp)
}

// Baseline returns the minimal JSON-RPC handler that --baseline measures,
// to be served on its own for another load generator (wrk) to measure the
// same ceiling.
func Baseline() http.Handler { return http.HandlerFunc(baselineHandler) }

// MakeSessions creates n deposit sessions on cfg.URL as cfg.Merchant, with
// cfg.Concurrency calls at a time, and writes a line per session to out:
// its id and its token, separated by a space. The first line is the
// merchant's bearer token, "bearer <access_token>", so that a script can
// load merchant methods with it.
func MakeSessions(ctx context.Context, cfg Config, n int, out io.Writer) error {
	cfg.Setup = max(n, 1)
	if cfg.Merchant == "" {
		return errors.New("bench: --merchant PUBLIC_KEY:SECRET is required to make sessions")
	}
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("bench: sessions to make must be at least 1, got %d", n)
	}
	b := &bench{cfg: cfg, client: newClient(cfg.Concurrency)}
	defer b.client.CloseIdleConnections()
	if err := b.authorize(ctx); err != nil {
		return err
	}
	made, err := b.create(ctx, n)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "bearer %s\n", strings.TrimPrefix(b.bearer, "Bearer "))
	for _, s := range made {
		fmt.Fprintf(w, "%s %s\n", s.ID, s.Token)
	}
	return w.Flush()
}
