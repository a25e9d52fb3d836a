// Package server wires store, service, callbacks, rpc and HTTP for one
// sessiond process: Open binds the port and then opens the data file, Run
// serves until its context ends, Close shuts everything down in order.
//
// `sessiond serve` is this package plus flags and signals; the end-to-end
// tests start the same Main in-process, so they test what production runs,
// and a Go test-harness package can start it the same way.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/admin"
	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/metrics"
	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/web"
	"golang.org/x/crypto/argon2"
)

// Config is every setting of one server. Start from DefaultConfig.
type Config struct {
	// Addr is the TCP listen address; port 0 picks a free port.
	Addr string
	// DB is the path of the bbolt data file, created if missing.
	DB string
	// PublicURL is the base of the hosted page's URL in create results;
	// "" means http:// and the bound address.
	PublicURL string
	// Merchants are created, or their credentials updated, at Open. With
	// none, an empty data file gets a merchant named "default" whose
	// credentials are logged once.
	Merchants []session.Credentials
	// MerchantsFile, if set, is read at Open (see ReadMerchantsFile) for
	// more Merchants, so that secrets need not be on the command line.
	MerchantsFile string

	SessionTTL     time.Duration // how long a session lives after it is created
	SessionWarning time.Duration // how long before expiry the hosted page warns
	ExpiryInterval time.Duration // how often expired sessions are swept
	// Retain, if set, is how long final sessions are kept after they are
	// created: older ones are deleted with what belongs to them, by a
	// background chore. Zero keeps everything.
	Retain   time.Duration
	TokenTTL time.Duration // lifetime of access tokens

	MaxBody     int64         // largest request body in bytes
	MaxBatch    int           // most entries in a JSON-RPC batch
	MaxInflight int           // most requests served at once (0: no cap)
	RateLimit   float64       // calls per second per merchant (0: off)
	MaxResponse int64         // most bytes of results in one answer (a batch's together)
	BodyTimeout time.Duration // how long a request body may take to arrive

	StrictParams bool // refuse params the API does not list instead of ignoring them

	Sandbox      bool          // magic merchant references drive sessions
	SandboxDelay time.Duration // time between the sandbox's steps

	CallbackRetry        []time.Duration // offsets from the first attempt at which failures are retried
	CallbackTimeout      time.Duration   // how long a receiver has to answer 2xx
	CallbackUserAgent    string          // User-Agent of callbacks
	CallbackAllowPrivate bool            // let callbacks reach loopback and private addresses

	// FrameAncestors are the origins that may embed the hosted page in a
	// frame (see web.ParseOrigins); none by default.
	FrameAncestors []string
	// TLSCert and TLSKey, if set, are the PEM files of the certificate
	// served on Addr; Reload reads them again.
	TLSCert, TLSKey string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed; from anyone else they are dropped.
	TrustedProxies []netip.Prefix

	// DebugAddr, if set, serves Go's pprof profiles on this address.
	DebugAddr string
	// ShutdownTimeout is how long Close waits for in-flight requests.
	ShutdownTimeout time.Duration
	// LockTimeout is how long Open waits for a data file locked by
	// another process.
	LockTimeout time.Duration
	// UnsafeNoFsync commits to the bbolt file without fdatasync (see
	// store.Options.NoSync): for test harnesses, never for real payments.
	UnsafeNoFsync bool

	// AdminSocket, if set, is the path of the Unix socket (mode 0600) on
	// which the admin commands reach this server; "" serves none.
	AdminSocket string

	// ReadyFile, if set, is written with {"url", "pid", "admin_socket"}
	// once the server is ready, and removed when it stops.
	ReadyFile string
	// Stdout, if set, gets the line "sessiond listening on URL" once the
	// server is ready.
	Stdout io.Writer

	// Log receives the server's logs.
	Log zerolog.Logger
	// Version is logged at start.
	Version string
}

// DefaultConfig returns the defaults of `sessiond serve`, logging nowhere.
func DefaultConfig() Config {
	return Config{
		Addr:              "127.0.0.1:8080",
		DB:                "./sessiond.db",
		SessionTTL:        session.DefaultSessionTTL,
		SessionWarning:    2 * time.Minute,
		ExpiryInterval:    time.Second,
		TokenTTL:          session.DefaultTokenTTL,
		MaxBody:           1 << 20,
		MaxBatch:          100,
		MaxInflight:       512,
		MaxResponse:       2 << 20,
		BodyTimeout:       10 * time.Second,
		SandboxDelay:      2 * time.Second,
		CallbackRetry:     []time.Duration{10 * time.Minute, 30 * time.Minute, 60 * time.Minute},
		CallbackTimeout:   10 * time.Second,
		CallbackUserAgent: "Brite Callback",
		ShutdownTimeout:   10 * time.Second,
		LockTimeout:       2 * time.Second,
		Log:               zerolog.Nop(),
	}
}

// Validate checks the settings that can be checked before anything is
// bound or opened. Open calls it first.
func (c *Config) Validate() error {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("--public-url %s: want an absolute http or https URL such as https://pay.example.com", c.PublicURL)
		}
		c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("--addr %s: want HOST:PORT such as 127.0.0.1:8080 or :8080", c.Addr)
	}
	if c.DB == "" {
		return errors.New("--db: want a file path such as ./sessiond.db, or a postgres:// URL")
	}
	if c.UnsafeNoFsync && postgres.IsURL(c.DB) {
		return errors.New("--unsafe-no-fsync: applies to a bbolt data file; on PostgreSQL, set synchronous_commit for the database instead")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: want both PEM files or neither")
	}
	return nil
}

// Main is one running sessiond. Create it with New, call Open, then Run;
// call Close when finished (Run calls it when its context ends).
type Main struct {
	cfg Config
	log zerolog.Logger

	clock   *session.Clock // the sandbox's; advanced by sandbox.advance_time
	ln      net.Listener
	cert    *certificate // nil without TLS
	debugLn net.Listener
	adminLn net.Listener
	admin   *http.Server
	db      backend
	bolt    *store.DB // db, when it is a bbolt file; nil on PostgreSQL
	svc     *session.Service
	rpc     *rpc.Server
	http    *http.Server
	debug   *http.Server
	workers []func(context.Context) // started by Run
	closers []func()                // run by Close after the HTTP server stopped, last first

	workerCtx   context.Context
	stopWorkers context.CancelFunc
	wg          sync.WaitGroup
	dispatcher  *callbacks.Dispatcher

	// readiness is the worker that keeps /readyz true to the store and
	// the callback engine; Close stops it first.
	readyCtx  context.Context
	stopReady context.CancelFunc
	readyDone chan struct{}
	readyRuns bool

	mu        sync.Mutex // orders Run's start against a concurrent Close
	closed    bool
	closeOnce sync.Once
	closeErr  error
}

// New returns a Main for cfg; it does nothing until Open.
func New(cfg Config) *Main {
	m := &Main{cfg: cfg, log: cfg.Log, clock: new(session.Clock), readyDone: make(chan struct{})}
	m.workerCtx, m.stopWorkers = context.WithCancel(context.Background())
	m.readyCtx, m.stopReady = context.WithCancel(context.Background())
	return m
}

// Open binds the listen address first, so a port in use fails before the
// data file is touched, then opens the data file, makes the configured
// merchants and builds the HTTP handler. Nothing is served until Run. If
// Open fails, what it did is undone.
func (m *Main) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	c := &m.cfg
	if err := c.Validate(); err != nil {
		return err
	}
	if c.TLSCert != "" {
		m.cert = &certificate{certFile: c.TLSCert, keyFile: c.TLSKey}
		if err := m.cert.load(); err != nil {
			return err
		}
	}
	if m.ln, err = net.Listen("tcp", c.Addr); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if c.DebugAddr != "" {
		if m.debugLn, err = net.Listen("tcp", c.DebugAddr); err != nil {
			return fmt.Errorf("listen on --debug-addr: %w", err)
		}
	}
	if c.PublicURL == "" {
		c.PublicURL = m.defaultPublicURL()
	}

	// Committed changes reach their consumers (metrics, the WebSocket hub,
	// the callback dispatcher, the sandbox) through the domain's feed,
	// made before the store opens. Each consumer subscribes here, before
	// anything writes, and follows on its own worker, so none can stall a
	// commit.
	met := metrics.New()
	feed := session.NewFeed()
	var news atomic.Pointer[session.Service] // for the store's news of merchants, which may come first
	if m.db, err = m.openDB(ctx, met, feed, &news); err != nil {
		return err
	}
	m.svc = session.NewService(m.db, argon2.IDKey)
	news.Store(m.svc)
	m.svc.SessionTTL, m.svc.TokenTTL = c.SessionTTL, c.TokenTTL
	if c.Sandbox { // payouts and refunds settle in three sandbox steps: 1→4→5→6
		m.svc.PayoutETA = 3 * c.SandboxDelay
	}

	hub := rpc.NewHub()
	cbc := callbacks.Config{
		Retry:        c.CallbackRetry,
		Timeout:      c.CallbackTimeout,
		UserAgent:    c.CallbackUserAgent,
		AllowPrivate: c.CallbackAllowPrivate,
		Log:          m.log,
		OnAttempt:    met.ObserveCallback,
	}
	var controls *sandboxControls
	if c.Sandbox {
		// One clock the sandbox can move drives everything time-driven.
		controls = &sandboxControls{clock: m.clock, svc: m.svc, faults: new(callbacks.Faults), journal: new(callbacks.Journal),
			flushFor: c.CallbackTimeout + time.Second}
		m.svc.Now, m.svc.Sandbox = m.clock.Now, true
		cbc.Now, cbc.Stamp, cbc.Faults, cbc.Journal = m.clock.Now, time.Now, controls.faults, controls.journal
	}
	dispatcher := callbacks.New(m.db, cbc)
	if controls != nil {
		controls.dispatcher = dispatcher
	}
	m.dispatcher = dispatcher
	m.follow(feed.Subscribe(1<<16), func(ctx context.Context, sub *session.Subscription) {
		sub.Follow(ctx, met.ObserveChange, m.lost("metrics"))
	})
	m.follow(feed.Subscribe(1<<16), hub.Follow)
	m.follow(feed.Subscribe(1<<10), dispatcher.Follow)
	if c.Sandbox {
		sandbox := session.NewSandbox(m.svc, c.SandboxDelay, func(err error) {
			m.log.Error().Err(err).Msg("sandbox step")
		})
		// Its schedule is in the store; the feed only wakes it early.
		m.follow(feed.Subscribe(1<<10), func(ctx context.Context, sub *session.Subscription) {
			sub.Follow(ctx, sandbox.Observe, nil)
		})
		m.workers = append(m.workers, func(ctx context.Context) { sandbox.Run(ctx) })
		controls.sandbox = sandbox
	}
	m.workers = append(m.workers,
		func(ctx context.Context) {
			m.svc.RunExpiry(ctx, c.ExpiryInterval, func(err error) {
				m.log.Error().Err(err).Msg("expiry sweep")
			})
		},
		func(ctx context.Context) { dispatcher.Run(ctx) },
	)
	if c.Retain > 0 {
		m.log.Info().Str("retain", RetainString(c.Retain)).Msg("retention: " + RetainString(c.Retain))
		m.workers = append(m.workers, func(ctx context.Context) {
			m.svc.RunRetention(ctx, c.Retain, retainInterval(c.Retain), func(n int) {
				m.log.Info().Int("sessions", n).Str("retain", RetainString(c.Retain)).Msg("retention: deleted final sessions older than the retention")
			}, func(err error) {
				m.log.Error().Err(err).Msg("retention")
			})
		})
	} else {
		m.log.Info().Str("retain", RetainString(0)).Msg("retention: keep everything")
	}

	merchants := c.Merchants
	if c.MerchantsFile != "" {
		more, err := ReadMerchantsFile(c.MerchantsFile)
		if err != nil {
			return err
		}
		merchants = append(slices.Clip(merchants), more...)
	}
	if err := ensureMerchants(ctx, m.svc, merchants, m.log); err != nil {
		return err
	}
	if c.AdminSocket != "" {
		if m.adminLn, err = admin.Listen(c.AdminSocket); err != nil {
			return err
		}
		snapshot := func(io.Writer) (int64, error) {
			return 0, errors.New("a PostgreSQL database is backed up with pg_dump")
		}
		if db := m.bolt; db != nil {
			snapshot = db.Backup
		}
		m.admin = &http.Server{
			Handler:           admin.Handler(&admin.Ops{Svc: m.svc, Snapshot: snapshot}),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          stdlog.New(logWriter{m.log}, "admin: ", 0),
		}
	}

	m.rpc = rpc.New(m.svc, rpc.Config{
		PublicURL:      c.PublicURL,
		MaxBody:        c.MaxBody,
		MaxBatch:       c.MaxBatch,
		SessionWarning: c.SessionWarning,
		Hub:            hub,
		Sandbox:        c.Sandbox,
		Controls:       rpcControls(controls),
		Observer:       met,
		MaxInflight:    c.MaxInflight,
		RateLimit:      c.RateLimit,
		StrictParams:   c.StrictParams,
		MaxResponse:    c.MaxResponse,
		BodyTimeout:    c.BodyTimeout,
	}, m.log)
	met.Gauge("sessiond_websocket_connections", "Open WebSocket connections.", func() float64 { return float64(hub.Connections()) })
	met.Outbox(func() (int, time.Time) {
		st, err := m.db.OutboxStats(context.Background())
		if err != nil {
			m.log.Error().Err(err).Msg("outbox stats")
		}
		return st.Pending, st.Oldest
	})
	m.rpc.Mount("GET /metrics", met.Handler())
	svc := m.svc
	m.rpc.Mount("/client/", web.Handler(func(ctx context.Context, token string) (web.Page, bool, error) {
		v, err := svc.SessionOfToken(ctx, token)
		if errors.Is(err, session.ErrNotFound) {
			return web.Page{}, false, nil
		}
		if err != nil {
			return web.Page{}, false, err
		}
		hp, err := svc.HostedPage(ctx, v)
		if err != nil {
			return web.Page{}, false, err
		}
		p := web.Page{
			RedirectURI: v.Params.RedirectURI, Payee: hp.Payee, Locale: v.Params.Locale, CountryID: v.Params.CountryID,
			FrameAncestors: hp.FrameAncestors,
		}
		for _, b := range session.Banks(v.Params.CountryID) {
			if b.Enabled {
				p.Banks = append(p.Banks, web.Bank{ID: b.ID, Name: b.Name})
			}
		}
		if v.Bank != nil {
			p.Bank = &web.Bank{ID: v.Bank.ID, Name: v.Bank.Name}
		}
		return p, true, nil
	}, web.Options{FrameAncestors: m.cfg.FrameAncestors}))
	m.http = &http.Server{
		Handler:           forwarded(c.TrustedProxies, m.rpc.Handler()),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// net/http's own complaints (TLS handshakes, accept errors) go to
		// the log as warnings instead of stderr.
		ErrorLog: stdlog.New(logWriter{m.log}, "", 0),
	}
	if m.cert != nil {
		m.http.TLSConfig = m.cert.config()
	}
	m.http.RegisterOnShutdown(hub.Close) // Shutdown does not wait for hijacked sockets
	if m.debugLn != nil {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return nil
}

// follow makes a worker of a feed consumer: f follows sub until the
// workers stop, and sub is closed then (or at Close, if Run never ran).
func (m *Main) follow(sub *session.Subscription, f func(context.Context, *session.Subscription)) {
	m.closers = append(m.closers, sub.Close)
	m.workers = append(m.workers, func(ctx context.Context) { f(ctx, sub) })
}

// lost returns what a feed consumer calls when it fell behind the feed.
func (m *Main) lost(consumer string) func(int) {
	return func(n int) {
		m.log.Warn().Int("changes", n).Str("consumer", consumer).Msg("change feed consumer fell behind; changes dropped")
	}
}

// logWriter writes each line net/http logs as a warning.
type logWriter struct{ log zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// URL returns the base URL of the bound listen address, such as
// http://127.0.0.1:8080; valid after Open.
func (m *Main) URL() string {
	if m.ln == nil {
		return ""
	}
	if m.cert != nil {
		return "https://" + m.ln.Addr().String()
	}
	return "http://" + m.ln.Addr().String()
}

// defaultPublicURL is the bound address as a URL, or, when bound to every
// address (0.0.0.0, ::), this host's name with the port, with a warning:
// a wildcard address is no address a browser can be sent to.
func (m *Main) defaultPublicURL() string {
	host, port, _ := net.SplitHostPort(m.ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return m.URL()
	}
	name, err := os.Hostname()
	if err != nil || name == "" {
		name = "localhost"
	}
	scheme := "http://"
	if m.cert != nil {
		scheme = "https://"
	}
	u := scheme + net.JoinHostPort(name, port)
	m.log.Warn().Str("addr", m.cfg.Addr).Str("public_url", u).
		Msg("--addr listens on every address and --public-url is not set: payment links will use public_url; set --public-url to the URL clients reach")
	return u
}

// PublicURL returns the base of the hosted page's URLs; valid after Open.
func (m *Main) PublicURL() string { return m.cfg.PublicURL }

// Run starts the background workers and serves HTTP until ctx ends or
// serving fails, then closes m. It returns nil after a stop by ctx.
func (m *Main) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.http == nil || m.closed {
		m.mu.Unlock()
		return errors.New("server: Run needs a successful Open and no Close")
	}
	for _, w := range m.workers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w(m.workerCtx)
		}()
	}
	serveErr := make(chan error, 1)
	go func() {
		if m.cert != nil {
			serveErr <- m.http.ServeTLS(m.ln, "", "") // the certificate comes from TLSConfig
			return
		}
		serveErr <- m.http.Serve(m.ln)
	}()
	if m.admin != nil {
		go func() {
			if err := m.admin.Serve(m.adminLn); !errors.Is(err, http.ErrServerClosed) {
				m.log.Warn().Err(err).Msg("admin socket stopped")
			}
		}()
	}
	if m.debug != nil {
		go func() {
			if err := m.debug.Serve(m.debugLn); !errors.Is(err, http.ErrServerClosed) {
				m.log.Warn().Err(err).Msg("debug listener stopped")
			}
		}()
	}
	m.rpc.SetReady(true)
	m.readyRuns = true
	go m.readiness(m.readyCtx)
	m.mu.Unlock()
	m.log.Info().Str("addr", m.ln.Addr().String()).Str("db", redactURL(m.cfg.DB)).Str("version", m.cfg.Version).Str("admin_socket", m.adminSocket()).Msg("listening")
	if err := m.announce(); err != nil {
		m.Close()
		return err
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		if errors.Is(err, http.ErrServerClosed) {
			err = nil // Close was called
		} else {
			err = fmt.Errorf("serve: %w", err)
		}
	}
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	return err
}

// RetainString is how a retention is shown: "keep everything" for none,
// else as FormatDuration shows it.
func RetainString(d time.Duration) string {
	if d <= 0 {
		return "keep everything"
	}
	return FormatDuration(d)
}

// FormatDuration shows d without zero tails (36h, 30m, 1m30s, not 30m0s)
// and a whole number of days past one as days (90d).
func FormatDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 && d > 24*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// retainInterval is how often the retention chore runs: a quarter of the
// retention, between a second and a minute, so that a session outlives
// its retention by at most that much.
func retainInterval(d time.Duration) time.Duration {
	return min(time.Minute, max(time.Second, d/4))
}

// Reload reads again what can change without a restart: the TLS
// certificate and key, and the merchants file. It returns what it
// reloaded, for the log; what fails to reload stays as it was, and the
// other is still reloaded.
func (m *Main) Reload() ([]string, error) {
	var done []string
	var errs []error
	if m.cert != nil {
		if err := m.cert.load(); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "tls_certificate")
		}
	}
	if m.cfg.MerchantsFile != "" && m.svc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.reloadMerchants(ctx); err != nil {
			errs = append(errs, err)
		} else {
			done = append(done, "merchants_file")
		}
	}
	return done, errors.Join(errs...)
}

// Close stops serving: the server reports not ready, in-flight requests
// get up to ShutdownTimeout, then the workers stop and the data file is
// closed. It is the one shutdown path: Run calls it when its context
// ends, and it may be called while Run runs, or after a failed Open.
// Calling it again returns the same error.
func (m *Main) Close() error {
	m.closeOnce.Do(func() { m.closeErr = m.close() })
	return m.closeErr
}

func (m *Main) close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	// The whole shutdown fits in ShutdownTimeout: requests and callback
	// attempts in flight share it, and what is left at the end is cut off
	// (a callback attempt is then made again after the restart).
	// A tenth of it (at most 200ms) is kept for what comes after the cut:
	// releasing the attempts, writing the touches, closing the file.
	reserve := min(m.cfg.ShutdownTimeout/10, 200*time.Millisecond)
	shutdown, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout-reserve)
	defer cancel()
	m.stopReady()
	if m.readyRuns {
		<-m.readyDone
	}
	m.closed = true
	if m.rpc != nil {
		m.rpc.SetReady(false)
	}
	m.unannounce()
	// Workers stop taking new work at once; attempts in flight go on.
	m.stopWorkers()
	if m.http != nil {
		if err := m.http.Shutdown(shutdown); err != nil {
			m.log.Warn().Err(err).Msg("in-flight requests cut off")
		}
	}
	if m.admin != nil {
		// A backup being streamed gets the same time as a request.
		shutdown, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
		if err := m.admin.Shutdown(shutdown); err != nil {
			m.log.Warn().Err(err).Msg("admin requests cut off")
		}
		cancel()
	}
	if m.debug != nil {
		m.debug.Close()
	}
	// A listener Serve never took is still ours to close.
	for _, ln := range []net.Listener{m.ln, m.debugLn, m.adminLn} {
		if ln != nil {
			ln.Close()
		}
	}
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	workersDone := make(chan struct{})
	go func() { m.wg.Wait(); close(workersDone) }()
	select {
	case <-workersDone:
	case <-shutdown.Done():
		m.log.Warn().Msg("callback attempts in flight cut off at the shutdown timeout; they will be made again")
		if m.dispatcher != nil {
			m.dispatcher.Abort()
		}
		<-workersDone
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			return fmt.Errorf("close database: %w", err)
		}
	}
	return nil
}

// Readiness is looked at every readyEvery; after a commit fails the
// server is not ready for readyHold, so a write that fails now and then
// (a disk nearly full takes small writes and refuses large ones) keeps it
// out of rotation.
const (
	readyEvery = time.Second
	readyHold  = 5 * time.Second
)

// readiness keeps /readyz true to what the server can do: not ready while
// the data file cannot be written (a commit failed within readyHold; a
// probe write each second finds out when it can again) or the callback
// engine is stuck (outcomes or claims fail). Changes of readiness are
// logged once each.
func (m *Main) readiness(ctx context.Context) {
	defer close(m.readyDone)
	t := time.NewTicker(readyEvery)
	defer t.Stop()
	var (
		was       error
		failures  = m.commitFailures()
		lastErr   error
		heldUntil time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if !now.Before(heldUntil) && m.writeErr() != nil {
			m.probe(ctx) // its failure, if any, is counted below
		}
		if n := m.commitFailures(); n != failures {
			failures, heldUntil, lastErr = n, now.Add(readyHold), m.writeErr()
			if lastErr == nil {
				lastErr = errors.New("server: a commit failed within the last seconds")
			}
		}
		var err error
		if now.Before(heldUntil) {
			err = lastErr
		} else if err = m.writeErr(); err != nil {
			heldUntil = now // probed again at the next look
		}
		if err == nil {
			err = m.dispatcher.Stuck()
		}
		m.rpc.SetReady(err == nil)
		switch {
		case err != nil && was == nil:
			m.log.Error().Err(err).Msg("not ready")
		case err == nil && was != nil:
			m.log.Info().Msg("ready again")
		}
		was = err
	}
}

// ensureMerchants creates or updates the merchants given, or, on a data
// file with none, a merchant named "default". Credentials the server
// generates are logged once, here.
func ensureMerchants(ctx context.Context, svc *session.Service, given []session.Credentials, log zerolog.Logger) error {
	for _, cr := range given {
		withCallbackSecret := cr.CallbackSecret != ""
		m, cr, created, err := svc.EnsureMerchant(ctx, cr)
		if err != nil {
			return fmt.Errorf("merchant %s: %w", cr.PublicKey, err)
		}
		e := log.Info().Str("merchant_id", m.ID).Str("public_key", m.PublicKey).Bool("created", created)
		if created && !withCallbackSecret {
			e = e.Str("callback_secret", cr.CallbackSecret)
		}
		e.Msg("merchant")
	}
	if len(given) > 0 {
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

// backend is what Main needs of a store: the contract, and Close.
type backend interface {
	session.Store
	Close() error
}

// openDB opens the database c.DB names: PostgreSQL for a postgres:// or
// postgresql:// URL, else the bbolt file at that path. Both publish their
// committed changes to feed; PostgreSQL's include those of other replicas,
// and its news of merchants changed elsewhere make the service forget
// what it remembers of them.
func (m *Main) openDB(ctx context.Context, met *metrics.Metrics, feed *session.Feed, svc *atomic.Pointer[session.Service]) (backend, error) {
	c := &m.cfg
	if !postgres.IsURL(c.DB) {
		db, err := store.Open(c.DB, store.Options{LockTimeout: c.LockTimeout, OnCommit: met.ObserveCommit, Feed: feed,
			OnError: func(err error) { m.log.Warn().Err(err).Msg("store") }, NoSync: c.UnsafeNoFsync})
		if err != nil {
			return nil, err // not a nil *store.DB in a non-nil backend
		}
		if c.UnsafeNoFsync {
			m.log.Warn().Str("db", c.DB).Msg("--unsafe-no-fsync: commits are not fsync'd; a killed process loses nothing, " +
				"but a power cut or a kernel crash can lose answered writes and damage the data file")
		}
		m.bolt = db
		return db, nil
	}
	db, err := postgres.Open(ctx, c.DB, postgres.Options{
		Publisher: feed,
		OnError:   func(err error) { m.log.Warn().Err(err).Msg("postgres") },
		OnMerchantChanged: func(id string) {
			if s := svc.Load(); s != nil {
				s.ForgetMerchant(id)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	return db, nil
}

// redactURL returns db with the password of a URL replaced by "xxxxx".
func redactURL(db string) string {
	u, err := url.Parse(db)
	if err != nil || u.User == nil {
		return db
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// The data file's health, for readiness; PostgreSQL reports its failures
// on each request instead, and a replica that cannot reach it fails them.

func (m *Main) commitFailures() uint64 {
	if m.bolt == nil {
		return 0
	}
	return m.bolt.CommitFailures()
}

func (m *Main) writeErr() error {
	if m.bolt == nil {
		return nil
	}
	return m.bolt.WriteErr()
}

func (m *Main) probe(ctx context.Context) {
	if m.bolt != nil {
		m.bolt.Probe(ctx)
	}
}
