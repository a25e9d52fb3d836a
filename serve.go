package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
)

// serveFlags binds the flags of `sessiond serve` to c, whose values are
// the defaults shown. The log flags are not part of server.Config.
func serveFlags(c *server.Config, logFormat, logLevel *string) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen `address` (port 0 picks a free port)")
	fs.StringVar(&c.DB, "db", c.DB, "database `file` (created if missing)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "base `URL` of the hosted page in create results (default http://ADDR)")
	fs.Var((*merchantsFlag)(&c.Merchants), "merchant", "merchant `PUBLIC_KEY:SECRET[:WHSEC]` to create or update (repeatable; env comma-separated)")
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a session lives after it is created")
	fs.DurationVar(&c.SessionWarning, "session-warning", c.SessionWarning, "how long before expiry the hosted page warns")
	fs.DurationVar(&c.ExpiryInterval, "expiry-interval", c.ExpiryInterval, "how often expired sessions are swept")
	fs.DurationVar(&c.TokenTTL, "token-ttl", c.TokenTTL, "lifetime of access tokens (refresh tokens: 1h more)")
	fs.Var((*byteSize)(&c.MaxBody), "max-body", "largest request `size` (e.g. 1MiB, 512KiB)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most entries in a JSON-RPC batch")
	fs.IntVar(&c.MaxInflight, "max-inflight", c.MaxInflight, "most requests served at once; past it a request waits 100ms, then gets -32029 (0: no cap)")
	fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "most calls per second per merchant, -32029 past it (0: off)")
	fs.Var((*durationList)(&c.CallbackRetry), "callback-retry", "`offsets` from a callback's first attempt at which failures are retried (comma-separated)")
	fs.DurationVar(&c.CallbackTimeout, "callback-timeout", c.CallbackTimeout, "how long a callback receiver has to answer 2xx")
	fs.StringVar(&c.CallbackUserAgent, "callback-user-agent", c.CallbackUserAgent, "User-Agent of callbacks")
	fs.BoolVar(&c.CallbackAllowPrivate, "callback-allow-private", c.CallbackAllowPrivate, "let callbacks reach loopback, private, link-local and CGNAT addresses (test harnesses)")
	fs.BoolVar(&c.Sandbox, "sandbox", c.Sandbox, "sandbox mode: magic merchant references drive sessions, transactions settle, sandbox.* methods")
	fs.DurationVar(&c.SandboxDelay, "sandbox-delay", c.SandboxDelay, "time between the sandbox's steps")
	fs.StringVar(logFormat, "log-format", *logFormat, "log format: json or console")
	fs.StringVar(&c.DebugAddr, "debug-addr", c.DebugAddr, "serve Go's pprof profiles on this `address` (keep it private; off by default)")
	fs.StringVar(logLevel, "log-level", *logLevel, "log level: debug, info, warn, error")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long shutdown waits for in-flight requests")
	fs.DurationVar(&c.LockTimeout, "lock-timeout", c.LockTimeout, "how long to wait for a database locked by another process")
	return fs
}

func serve(args []string, stderr io.Writer) error {
	c := server.DefaultConfig()
	logFormat, logLevel := "json", "info"
	fs := serveFlags(&c, &logFormat, &logLevel)
	if _, err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	log, err := newLogger(logFormat, logLevel, stderr)
	if err != nil {
		return err
	}
	c.Log, c.Version = log, versionString()
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
	if err := m.Run(ctx); err != nil {
		return err
	}
	log.Info().Msg("stopped")
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
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("want PUBLIC_KEY:SECRET or PUBLIC_KEY:SECRET:CALLBACK_SECRET")
	}
	cr := session.Credentials{PublicKey: parts[0], Secret: parts[1]}
	if len(parts) == 3 {
		cr.CallbackSecret = parts[2]
	}
	*f = append(*f, cr)
	return nil
}
