package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/admin"
	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/web"
)

var serveCmd = &command{
	name:    "serve",
	summary: "run the server",
	args:    "[flags]",
	long: `Binds --addr first, then opens --db (created if missing). Without --merchant,
an empty data file gets a merchant named "default" whose credentials are
logged once. SIGINT and SIGTERM stop it gracefully.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		c := server.DefaultConfig()
		o := serveOptions{logFormat: "json", logLevel: "info"}
		serveFlags(f, &c, &o)
		return func(env *cmdEnv, pos []string) error {
			if len(pos) > 0 {
				return usagef("sessiond serve: takes flags only, not %q", pos[0])
			}
			o.levelFromFile = !f.given["log-level"]
			// A database URL names no file to put the socket beside, and
			// replicas on one machine would share one: on PostgreSQL the
			// admin socket is off unless --admin-socket names it.
			if !f.given["admin-socket"] && !postgres.IsURL(c.DB) {
				c.AdminSocket = admin.DefaultSocket(c.DB)
			}
			return serve(env, c, o)
		}
	},
}

// serveOptions are the settings of serve that are not server.Config's.
type serveOptions struct {
	logFormat, logLevel string
	envFile             string
	levelFromFile       bool // --log-level was not given: SIGHUP reads it from the env file
}

// serveFlags binds the flags of `sessiond serve` to c and o, whose values
// are the defaults shown.
func serveFlags(f *flagSet, c *server.Config, o *serveOptions) {
	f.group("Listening")
	f.String(&c.Addr, "addr", "ADDRESS", "listen address; port 0 picks a free port")
	f.String(&c.PublicURL, "public-url", "URL", "base of the hosted page's URL in create results, such as https://pay.example.com (default http://ADDR, https://ADDR with TLS)")
	f.String(&c.TLSCert, "tls-cert", "FILE", "PEM certificate (chain) to serve HTTPS with; read again on SIGHUP")
	f.String(&c.TLSKey, "tls-key", "FILE", "PEM private key of --tls-cert")
	f.Var((*prefixList)(&c.TrustedProxies), "trusted-proxies", "CIDR,...", "proxies whose X-Forwarded-For and X-Forwarded-Proto are believed, such as 10.0.0.0/8,::1")
	f.String(&c.DebugAddr, "debug-addr", "ADDRESS", "serve Go's pprof profiles on this address (keep it private; off by default)")
	f.String(&c.ReadyFile, "ready-file", "FILE", `once ready, write {"url","pid","admin_socket"} to this file (atomically; removed at stop)`)

	f.group("Hosted page")
	f.Var((*originsFlag)(&c.FrameAncestors), "frame-ancestors", "ORIGINS", "origins that may embed the hosted page in a frame, comma-separated scheme://host[:port] (default none)")

	f.group("Data")
	f.String(&c.DB, "db", "FILE", "data file, created if missing, or a postgres:// URL of the database several replicas share")
	f.Duration(&c.LockTimeout, "lock-timeout", "how long to wait for a data file locked by another process")
	f.Bool(&c.UnsafeNoFsync, "unsafe-no-fsync", "commit without fdatasync: faster writes, but a power cut or kernel crash can lose answered writes and damage the file (test harnesses only; bbolt only)")
	f.Duration(&c.Retain, "retain", "delete final sessions older than this, such as 90d, with their transactions and callbacks (default keep everything)")

	f.String(&c.AdminSocket, "admin-socket", "PATH", `Unix socket (mode 0600) for the merchant and backup commands while running; "" turns it off (default FILE.admin.sock beside --db)`)

	f.group("Merchants")
	f.Var((*merchantsFlag)(&c.Merchants), "merchant", "PUBLIC_KEY:SECRET[:WHSEC]", "create or update a merchant; repeatable; env SESSIOND_MERCHANT, comma-separated")
	f.split["merchant"] = true
	f.envs["merchant"] = []string{"SESSIOND_MERCHANTS"}
	f.String(&c.MerchantsFile, "merchants-file", "FILE", "more merchants, one PUBLIC_KEY:SECRET[:WHSEC] per line; the file must be mode 0600 or stricter")

	f.group("Sessions")
	f.Duration(&c.SessionTTL, "session-ttl", "how long a session lives after it is created")
	f.Duration(&c.SessionWarning, "session-warning", "how long before expiry the hosted page warns")
	f.Duration(&c.ExpiryInterval, "expiry-interval", "how often expired sessions are swept")
	f.Duration(&c.TokenTTL, "token-ttl", "lifetime of access tokens; refresh tokens live 1h more")
	f.Bool(&c.Sandbox, "sandbox", "sandbox mode: magic merchant references drive sessions, transactions settle, sandbox.* methods")
	f.Duration(&c.SandboxDelay, "sandbox-delay", "time between the sandbox's steps")
	f.Bool(&c.StrictParams, "strict-params", "refuse params the API does not list (-32602 UnknownParameter) instead of ignoring them, as Brite does")

	f.group("Limits")
	f.Var((*byteSize)(&c.MaxBody), "max-body", "SIZE", "largest request body, such as 1MiB or 512KiB (HTTP 413 past it)")
	f.Int(&c.MaxBatch, "max-batch", "N", "most entries in a JSON-RPC batch")
	f.Var((*byteSize)(&c.MaxResponse), "max-response", "SIZE", "most bytes of results in one answer, a batch's together (entries past it are not run)")
	f.Duration(&c.BodyTimeout, "body-timeout", "how long a request body may take to arrive (HTTP 408 past it)")
	f.Int(&c.MaxInflight, "max-inflight", "N", "most requests served at once; past it a request waits 100ms, then gets -32029 (0: no cap)")
	f.Float(&c.RateLimit, "rate-limit", "PER_SECOND", "most calls per second per merchant, -32029 past it (0: off)")

	f.group("Callbacks")
	f.Var((*durationList)(&c.CallbackRetry), "callback-retry", "OFFSETS", "offsets from a callback's first attempt at which failures are retried")
	f.Duration(&c.CallbackTimeout, "callback-timeout", "how long a callback receiver has to answer 2xx")
	f.String(&c.CallbackUserAgent, "callback-user-agent", "AGENT", "User-Agent of callbacks")
	f.Bool(&c.CallbackAllowPrivate, "callback-allow-private", "let callbacks reach loopback, private, link-local and CGNAT addresses (test harnesses)")

	f.group("Process")
	f.String(&o.envFile, "env-file", "FILE", "SESSIOND_<FLAG>=VALUE lines, read after the environment; SIGHUP reads SESSIOND_LOG_LEVEL from it again")
	f.envFile = &o.envFile
	f.String(&o.logFormat, "log-format", "FORMAT", "json or console")
	f.String(&o.logLevel, "log-level", "LEVEL", "debug, info, warn or error")
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "how long shutdown waits for in-flight requests")
}

func serve(env *cmdEnv, c server.Config, o serveOptions) error {
	log, level, err := newLogger(o.logFormat, o.logLevel, env.stderr)
	if err != nil {
		return err
	}
	defer level.Close()
	if err := c.Validate(); err != nil {
		return usagef("sessiond serve: %v", err)
	}
	c.Log, c.Version, c.Stdout = log, versionString(), env.stdout
	// The live heap is small (the data lives in bbolt's mmap), so the
	// default GOGC=100 collects very often under load; 400 gains 10-17%
	// throughput in `sessiond bench` for a heap of a few tens of MiB.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	// The server's threads block in file system calls (bbolt's fdatasync
	// and page writes, the log's writes to a file), and a thread in one
	// keeps its P until the runtime's monitor takes it back. One P more
	// than the cores lets Go code run on every core meanwhile: wrk measured
	// 2-11% more requests a second on two cores (README, Performance).
	// Under a CPU limit below the cores the runtime's own figure follows
	// the limit, and setting one would stop that: it is left alone.
	if os.Getenv("GOMAXPROCS") == "" && runtime.GOMAXPROCS(0) == runtime.NumCPU() {
		runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	}

	// Stop on SIGINT/SIGTERM from here on, so a signal during start-up is
	// a clean stop too.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case s := <-sig:
			log.Info().Str("signal", s.String()).Msg("shutting down")
			stop()
		case <-ctx.Done():
		}
	}()

	m := server.New(c)
	if err := m.Open(ctx); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				reload(log, level, m, o)
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := m.Run(ctx); err != nil {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}

// reload is SIGHUP: the log level from the env file (unless --log-level
// or SESSIOND_LOG_LEVEL was given), then what the server reloads. It logs
// what it did at any level, or why it could not; what could not be
// reloaded stays.
func reload(log zerolog.Logger, level *levelWriter, m *server.Main, o serveOptions) {
	// Whatever the level, a reload is logged, and it reads as info.
	e := log.Log().Str(zerolog.LevelFieldName, zerolog.InfoLevel.String())
	var what []string
	if o.envFile != "" && o.levelFromFile {
		file, err := readEnvFile(o.envFile)
		if err != nil {
			log.Error().Err(err).Msg("reload: env file")
			return
		}
		if v, ok := file["SESSIOND_LOG_LEVEL"]; ok {
			lvl, err := parseLevel(v)
			if err != nil {
				log.Error().Str("log_level", v).Msg("reload: SESSIOND_LOG_LEVEL: want debug, info, warn or error")
				return
			}
			level.set(lvl)
			e = e.Str("log_level", lvl.String())
			what = append(what, "log_level")
		}
	}
	done, err := m.Reload()
	if err != nil {
		log.Error().Err(err).Strs("reloaded", append(what, done...)).Msg("reload failed; the rest stays as it was")
		return
	}
	e.Strs("reloaded", append(what, done...)).Msg("reloaded on SIGHUP")
}

func parseLevel(s string) (zerolog.Level, error) {
	lvl, err := zerolog.ParseLevel(s)
	if err != nil || s == "" || lvl > zerolog.ErrorLevel {
		return 0, fmt.Errorf("bad level %q", s)
	}
	return lvl, nil
}

// newLogger returns the root logger and the writer whose level SIGHUP can
// change.
func newLogger(format, level string, w io.Writer) (zerolog.Logger, *levelWriter, error) {
	lvl, err := parseLevel(level)
	if err != nil {
		return zerolog.Logger{}, nil, usagef("sessiond serve: --log-level %s: want debug, info, warn or error", level)
	}
	if format != "json" && format != "console" {
		return zerolog.Logger{}, nil, usagef("sessiond serve: --log-format %s: want json or console", format)
	}
	out := newLineWriter(w, logBuffer)
	w = out
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339}
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	lw := &levelWriter{w: w, out: out}
	lw.set(lvl)
	return zerolog.New(lw).With().Timestamp().Logger(), lw, nil
}

// levelWriter drops log entries below a level that can change while the
// server runs. It writes through a lineWriter, so that a request's access
// line does not cost it a system call; a warning or an error is on stderr
// when its call returns, with everything logged before it.
type levelWriter struct {
	w   io.Writer // out, or a ConsoleWriter in front of it
	out *lineWriter
	min atomic.Int32
}

// Close writes what is still queued; later entries are written at once.
func (l *levelWriter) Close() error { return l.out.Close() }

func (l *levelWriter) set(lvl zerolog.Level) { l.min.Store(int32(lvl)) }

func (l *levelWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

func (l *levelWriter) WriteLevel(lvl zerolog.Level, p []byte) (int, error) {
	if int32(lvl) < l.min.Load() {
		return len(p), nil
	}
	n, err := l.w.Write(p)
	if lvl >= zerolog.WarnLevel && lvl != zerolog.NoLevel {
		l.out.Flush()
	}
	return n, err
}

// prefixList is --trusted-proxies: comma-separated CIDRs or addresses.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	var parts []string
	for _, x := range *p {
		parts = append(parts, x.String())
	}
	return strings.Join(parts, ",")
}

func (p *prefixList) Set(v string) error {
	ps, err := server.ParsePrefixes(v)
	if err != nil {
		return err
	}
	*p = append(*p, ps...)
	return nil
}

// merchantsFlag is the repeatable --merchant PUBLIC_KEY:SECRET[:WHSEC],
// checked as it is parsed so that a typo fails before anything opens.
type merchantsFlag []session.Credentials

func (f *merchantsFlag) String() string {
	var keys []string
	for _, cr := range *f {
		keys = append(keys, cr.PublicKey+":…") // never print a secret
	}
	return strings.Join(keys, ",")
}

func (f *merchantsFlag) Set(v string) error {
	cr, err := server.ParseMerchant(v)
	if err != nil {
		return err
	}
	*f = append(*f, cr)
	return nil
}

// originsFlag is --frame-ancestors ORIGIN,…, checked as it is parsed.
type originsFlag []string

func (f *originsFlag) String() string { return strings.Join(*f, ",") }

func (f *originsFlag) Set(v string) error {
	o, err := web.ParseOrigins(v)
	if err != nil {
		return err
	}
	*f = o
	return nil
}
