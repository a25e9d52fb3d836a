// Command sessiond serves payment sessions over JSON-RPC 2.0, mirroring the
// Brite merchant API, with its state in one bbolt file.
//
// This file only wires: flags and environment, the store, the service, the
// workers and the HTTP server, signals and shutdown.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/bench"
	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/metrics"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

const usage = `sessiond serves payment sessions over JSON-RPC 2.0 (Brite's merchant API).

Usage:
  sessiond serve    [flags]                       run the server
  sessiond merchant add NAME [--db PATH]          make a merchant; prints its credentials once
  sessiond merchant list [--db PATH]              list merchants
  sessiond call [--url URL] [--token T] METHOD [PARAMS_JSON]
                                                  make one JSON-RPC call and print the result
  sessiond bench [--url URL] [--method M] [-c 64] [-d 10s] [--merchant PK:SECRET] [--baseline]
                                                  load-test a running server: req/s, p50/p90/p99/max
  sessiond seed [--db PATH] [--sessions N] [--due N] [--merchant PK:SECRET]
                                                  store N deposit sessions at once, for scale tests
  sessiond version                                print the version

Run "sessiond COMMAND --help" for a command's flags. Every flag also reads
SESSIOND_<FLAG> from the environment (SESSIOND_ADDR, SESSIOND_DB, ...).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(rest, stderr)
	case "merchant":
		err = merchant(rest, stdout, stderr)
	case "call":
		err = call(rest, stdout, stderr)
	case "bench":
		err = runBench(rest, stdout, stderr)
	case "seed":
		err = seed(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "sessiond", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "sessiond:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "sessiond:", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// serveConfig is every setting of `sessiond serve`.
type serveConfig struct {
	addr, db, publicURL         string
	merchants                   listFlag
	sessionTTL, sessionWarning  time.Duration
	expiryInterval, tokenTTL    time.Duration
	maxBody                     byteSize
	maxBatch                    int
	maxInflight                 int
	rateLimit                   float64
	sandbox                     bool
	sandboxDelay                time.Duration
	callbackRetry               durationList
	callbackTimeout             time.Duration
	callbackUserAgent           string
	callbackAllowPrivate        bool
	logFormat, logLevel         string
	debugAddr                   string
	shutdownTimeout, lockTimout time.Duration
}

func serveFlags(c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen `address` (port 0 picks a free port)")
	fs.StringVar(&c.db, "db", "./sessiond.db", "database `file` (created if missing)")
	fs.StringVar(&c.publicURL, "public-url", "", "base `URL` of the hosted page in create results (default http://ADDR)")
	fs.Var(&c.merchants, "merchant", "merchant `PUBLIC_KEY:SECRET[:WHSEC]` to create or update (repeatable; env comma-separated)")
	fs.DurationVar(&c.sessionTTL, "session-ttl", session.DefaultSessionTTL, "how long a session lives after it is created")
	fs.DurationVar(&c.sessionWarning, "session-warning", 2*time.Minute, "how long before expiry the hosted page warns")
	fs.DurationVar(&c.expiryInterval, "expiry-interval", time.Second, "how often expired sessions are swept")
	fs.DurationVar(&c.tokenTTL, "token-ttl", session.DefaultTokenTTL, "lifetime of access tokens (refresh tokens: 1h more)")
	c.maxBody = 1 << 20
	fs.Var(&c.maxBody, "max-body", "largest request `size` (e.g. 1MiB, 512KiB)")
	fs.IntVar(&c.maxBatch, "max-batch", 100, "most entries in a JSON-RPC batch")
	fs.IntVar(&c.maxInflight, "max-inflight", 512, "most requests served at once; past it a request waits 100ms, then gets -32029 (0: no cap)")
	fs.Float64Var(&c.rateLimit, "rate-limit", 0, "most calls per second per merchant, -32029 past it (0: off)")
	c.callbackRetry = durationList{10 * time.Minute, 30 * time.Minute, 60 * time.Minute}
	fs.Var(&c.callbackRetry, "callback-retry", "`offsets` from a callback's first attempt at which failures are retried (comma-separated)")
	fs.DurationVar(&c.callbackTimeout, "callback-timeout", 10*time.Second, "how long a callback receiver has to answer 2xx")
	fs.StringVar(&c.callbackUserAgent, "callback-user-agent", "Brite Callback", "User-Agent of callbacks")
	fs.BoolVar(&c.callbackAllowPrivate, "callback-allow-private", false, "let callbacks reach loopback, private, link-local and CGNAT addresses (test harnesses)")
	fs.BoolVar(&c.sandbox, "sandbox", false, "sandbox mode: magic merchant references drive sessions, transactions settle, sandbox.* methods")
	fs.DurationVar(&c.sandboxDelay, "sandbox-delay", 2*time.Second, "time between the sandbox's steps")
	fs.StringVar(&c.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this `address` (keep it private; off by default)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	fs.DurationVar(&c.lockTimout, "lock-timeout", 2*time.Second, "how long to wait for a database locked by another process")
	return fs
}

func serve(args []string, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c)
	if _, err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log, err := newLogger(c.logFormat, c.logLevel, stderr)
	if err != nil {
		return err
	}
	// The live heap is small (the data lives in bbolt's mmap), so the
	// default GOGC=100 collects very often under load; 400 gains 10-17%
	// throughput in `sessiond bench` for a heap of a few tens of MiB.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}

	// Stop on SIGINT/SIGTERM from here on, so a signal during start-up is
	// a clean stop too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	// Committed changes fan out from the store's committer, in commit
	// order, to the observers: metrics, the WebSocket hub, the callback
	// dispatcher and the sandbox. The list is complete before anything
	// writes or any worker starts.
	met := metrics.New()
	var observers []func(*session.Change)
	db, err := store.Open(c.db, store.Options{LockTimeout: c.lockTimout, OnCommit: met.ObserveCommit, OnSave: func(ch *session.Change) {
		for _, o := range observers {
			o(ch)
		}
	}})
	if err != nil {
		return err
	}
	defer db.Close()

	svc := session.NewService(db)
	svc.SessionTTL, svc.TokenTTL = c.sessionTTL, c.tokenTTL
	hub := rpc.NewHub()
	dispatcher := callbacks.New(db, callbacks.Config{
		Retry:        c.callbackRetry,
		Timeout:      c.callbackTimeout,
		UserAgent:    c.callbackUserAgent,
		AllowPrivate: c.callbackAllowPrivate,
		Log:          log,
		OnAttempt:    met.ObserveCallback,
	})
	observers = append(observers, met.ObserveChange, hub.Publish, func(ch *session.Change) {
		if len(ch.Deliveries) > 0 {
			dispatcher.Notify()
		}
	})
	var sandbox *session.Sandbox
	if c.sandbox {
		sandbox = session.NewSandbox(svc, c.sandboxDelay, func(err error) {
			log.Error().Err(err).Msg("sandbox step")
		})
		observers = append(observers, sandbox.Observe)
	}

	// Workers run until stop, which returns once they have; the database
	// closes after that.
	workers, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		svc.RunExpiry(workers, c.expiryInterval, func(err error) {
			log.Error().Err(err).Msg("expiry sweep")
		})
	}()
	go func() {
		defer wg.Done()
		dispatcher.Run(workers)
	}()
	stop := func() {
		stopWorkers()
		if sandbox != nil {
			sandbox.Close()
		}
		wg.Wait()
	}

	if err := ensureMerchants(workers, svc, c.merchants, log); err != nil {
		stop()
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		stop()
		return fmt.Errorf("listen: %w", err)
	}
	if c.publicURL == "" {
		c.publicURL = "http://" + ln.Addr().String()
	}
	srv := rpc.New(svc, rpc.Config{
		PublicURL:      c.publicURL,
		MaxBody:        int64(c.maxBody),
		MaxBatch:       c.maxBatch,
		SessionWarning: c.sessionWarning,
		Hub:            hub,
		Sandbox:        c.sandbox,
		Observer:       met,
		MaxInflight:    c.maxInflight,
		RateLimit:      c.rateLimit,
	}, log)
	met.Gauge("sessiond_websocket_connections", "Open WebSocket connections.", func() float64 { return float64(hub.Connections()) })
	met.Outbox(func() (int, time.Time) {
		n, oldest, err := db.OutboxStats(context.Background())
		if err != nil {
			log.Error().Err(err).Msg("outbox stats")
		}
		return n, oldest
	})
	srv.Mount("GET /metrics", met.Handler())
	srv.Mount("/client/", web.Handler(func(ctx context.Context, token string) (web.Page, bool, error) {
		v, err := svc.SessionOfToken(ctx, token)
		if errors.Is(err, session.ErrNotFound) {
			return web.Page{}, false, nil
		}
		if err != nil {
			return web.Page{}, false, err
		}
		return web.Page{RedirectURI: v.Params.RedirectURI}, true, nil
	}))
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	hs.RegisterOnShutdown(hub.Close) // Shutdown does not wait for hijacked sockets

	if c.debugAddr != "" {
		go func() {
			// net/http/pprof registers itself on the default mux, which
			// nothing else here uses.
			log.Warn().Err(http.ListenAndServe(c.debugAddr, nil)).Msg("debug listener stopped")
		}()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	srv.SetReady(true)
	log.Info().Str("addr", ln.Addr().String()).Str("db", c.db).Str("version", versionString()).Msg("listening")

	select {
	case s := <-sig:
		log.Info().Str("signal", s.String()).Msg("shutting down")
	case err := <-serveErr:
		stop()
		return fmt.Errorf("serve: %w", err)
	}
	srv.SetReady(false)
	shutdown, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		log.Warn().Err(err).Msg("in-flight requests cut off")
	}
	stop()
	if err := db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// ensureMerchants creates or updates the merchants of --merchant, or, on a
// database with none, a merchant named "default". Credentials the server
// generates are logged once, here.
func ensureMerchants(ctx context.Context, svc *session.Service, specs []string, log zerolog.Logger) error {
	for _, spec := range specs {
		parts := strings.Split(spec, ":")
		if len(parts) < 2 || len(parts) > 3 {
			return usageError{"--merchant must be PUBLIC_KEY:SECRET[:CALLBACK_SECRET]"}
		}
		cr := session.Credentials{PublicKey: parts[0], Secret: parts[1]}
		if len(parts) == 3 {
			cr.CallbackSecret = parts[2]
		}
		given := cr.CallbackSecret != ""
		m, cr, created, err := svc.EnsureMerchant(ctx, cr)
		if err != nil {
			return fmt.Errorf("merchant %s: %w", parts[0], err)
		}
		e := log.Info().Str("merchant_id", m.ID).Str("public_key", m.PublicKey).Bool("created", created)
		if created && !given {
			e = e.Str("callback_secret", cr.CallbackSecret)
		}
		e.Msg("merchant")
	}
	if len(specs) > 0 {
		return nil
	}
	ms, err := svc.Merchants(ctx)
	if err != nil || len(ms) > 0 {
		return err
	}
	m, cr, err := svc.AddMerchant(ctx, "default", session.Credentials{})
	if err != nil {
		return fmt.Errorf("default merchant: %w", err)
	}
	log.Warn().Str("merchant_id", m.ID).Str("public_key", cr.PublicKey).Str("secret", cr.Secret).
		Str("callback_secret", cr.CallbackSecret).Msg("no merchants: created merchant \"default\"; these credentials are shown only now")
	return nil
}

func newLogger(format, level string, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Logger{}, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, usageError{fmt.Sprintf("--log-format %q: want json or console", format)}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func merchant(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"merchant: want add NAME or list"}
	}
	fs := flag.NewFlagSet("merchant "+args[0], flag.ContinueOnError)
	dbPath := fs.String("db", "./sessiond.db", "database `file`")
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	open := func() (*store.DB, error) {
		db, err := store.Open(*dbPath, store.Options{LockTimeout: time.Second})
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%s is in use by a running server; stop it first", *dbPath)
		}
		return db, err
	}
	ctx := context.Background()
	switch args[0] {
	case "add":
		if len(pos) != 1 {
			return usageError{"merchant add: want exactly one NAME"}
		}
		db, err := open()
		if err != nil {
			return err
		}
		defer db.Close()
		_, cr, err := session.NewService(db).AddMerchant(ctx, pos[0], session.Credentials{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "merchant_id      %s\npublic_key       %s\nsecret           %s\ncallback_secret  %s\n",
			cr.MerchantID, cr.PublicKey, cr.Secret, cr.CallbackSecret)
		fmt.Fprintln(stderr, "The secret is shown only now; it is stored hashed.")
		return db.Close()
	case "list":
		if len(pos) != 0 {
			return usageError{"merchant list takes no arguments"}
		}
		db, err := open()
		if err != nil {
			return err
		}
		defer db.Close()
		ms, err := session.NewService(db).Merchants(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MERCHANT_ID\tNAME\tPUBLIC_KEY\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Name, m.PublicKey, m.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usageError{fmt.Sprintf("merchant: unknown subcommand %q (want add or list)", args[0])}
}

func call(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080", "server base `URL`")
	token := fs.String("token", "", "merchant access `token` (Authorization: Bearer)")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{"call: want METHOD [PARAMS_JSON]"}
	}
	params := json.RawMessage("{}")
	if len(pos) == 2 {
		params = json.RawMessage(pos[1])
		if !json.Valid(params) {
			return usageError{"call: PARAMS_JSON is not valid JSON"}
		}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": pos[0], "params": params})
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(*url, "/")+"/rpc", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := (&http.Client{Timeout: *timeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return fmt.Errorf("call: HTTP %s: unreadable answer: %w", resp.Status, err)
	}
	if out.Error != nil {
		return fmt.Errorf("call: error %d %s: %s", out.Error.Code, out.Error.Message, out.Error.Data)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out.Result, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err = pretty.WriteTo(stdout)
	return err
}

func seed(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	dbPath := fs.String("db", "./sessiond.db", "database `file`")
	n := fs.Int("sessions", 1_000_000, "deposit sessions to store")
	due := fs.Int("due", 0, "how many of them are already past their deadline")
	merchantSpec := fs.String("merchant", "pk_seed:sk_seed", "`PUBLIC_KEY:SECRET` of the merchant that owns them (created if missing)")
	prefix := fs.String("prefix", "seed-", "merchant_reference prefix; the i-th session gets PREFIXi")
	if _, err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	pk, secret, ok := strings.Cut(*merchantSpec, ":")
	if !ok || *n < 1 || *due < 0 || *due > *n {
		return usageError{"seed: want --merchant PUBLIC_KEY:SECRET, --sessions ≥ 1 and 0 ≤ --due ≤ --sessions"}
	}
	db, err := store.Open(*dbPath, store.Options{LockTimeout: time.Second})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running server; stop it first", *dbPath)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	svc := session.NewService(db)
	ctx := context.Background()
	m, _, _, err := svc.EnsureMerchant(ctx, session.Credentials{PublicKey: pk, Secret: secret})
	if err != nil {
		return err
	}
	start := time.Now()
	err = svc.Seed(ctx, m, *n, *due, 10_000, *prefix, func(done int) {
		fmt.Fprintf(stderr, "\rseed: %d/%d sessions (%.0f/s)", done, *n, float64(done)/time.Since(start).Seconds())
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	info, err := os.Stat(*dbPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %d sessions (%d past their deadline) for merchant %s in %s; %s is %d bytes\n",
		*n, *due, pk, time.Since(start).Round(time.Millisecond), *dbPath, info.Size())
	return nil
}

func runBench(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cfg bench.Config
	var params string
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "server base `URL`")
	fs.StringVar(&cfg.Method, "method", bench.DefaultMethod, "JSON-RPC `method` to load")
	fs.StringVar(&params, "params", "", "params `JSON` of each request, for methods that need no setup")
	fs.IntVar(&cfg.Concurrency, "c", bench.DefaultConcurrency, "concurrent keep-alive connections")
	fs.DurationVar(&cfg.Duration, "d", bench.DefaultDuration, "how long to measure")
	fs.StringVar(&cfg.Merchant, "merchant", "", "merchant `PUBLIC_KEY:SECRET` to authorize with")
	fs.BoolVar(&cfg.Baseline, "baseline", false, "also run the same load against a minimal in-process JSON-RPC handler and print the ratio")
	fs.IntVar(&cfg.Setup, "setup", bench.DefaultSetup, "sessions to create first for session.get, session.state, client.transition")
	if _, err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if params != "" {
		if !json.Valid([]byte(params)) {
			return usageError{"bench: --params is not valid JSON"}
		}
		cfg.Params = json.RawMessage(params)
	}
	cfg.Progress = stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := bench.Run(ctx, cfg, stdout)
	return err
}

// parseFlags parses args with flags and positional arguments in any
// order, then fills every flag not given from SESSIOND_<FLAG>. It returns
// the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Name == "merchant" {
			env = "SESSIOND_MERCHANTS"
		}
		v, ok := os.LookupEnv(env)
		if set[f.Name] || !ok || err != nil {
			return
		}
		values := []string{v}
		if f.Name == "merchant" {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if e := fs.Set(f.Name, strings.TrimSpace(v)); e != nil {
				err = usageError{fmt.Sprintf("%s=%q: %v", env, v, e)}
			}
		}
	})
	return pos, err
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// durationList is a flag of comma-separated durations.
type durationList []time.Duration

func (l *durationList) String() string {
	var parts []string
	for _, d := range *l {
		parts = append(parts, d.String())
	}
	return strings.Join(parts, ",")
}

func (l *durationList) Set(v string) error {
	var out durationList
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration", part)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return errors.New("offsets must grow")
		}
		out = append(out, d)
	}
	*l = out
	return nil
}

// byteSize is a size flag that takes 1048576, 1MiB, 512KiB or 1MB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(v string) error {
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return errors.New("want a positive size such as 1MiB")
	}
	*b = byteSize(n * mult)
	return nil
}
