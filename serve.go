package main

import (
	"context"
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
		logFormat, logLevel := "json", "info"
		serveFlags(f, &c, &logFormat, &logLevel)
		return func(env *cmdEnv, pos []string) error {
			if len(pos) > 0 {
				return usagef("sessiond serve: takes flags only, not %q", pos[0])
			}
			return serve(env, c, logFormat, logLevel)
		}
	},
}

// serveFlags binds the flags of `sessiond serve` to c, whose values are
// the defaults shown. The log flags are not part of server.Config.
func serveFlags(f *flagSet, c *server.Config, logFormat, logLevel *string) {
	f.group("Listening")
	f.String(&c.Addr, "addr", "ADDRESS", "listen address; port 0 picks a free port")
	f.String(&c.PublicURL, "public-url", "URL", "base of the hosted page's URL in create results, such as https://pay.example.com (default http://ADDR)")
	f.String(&c.DebugAddr, "debug-addr", "ADDRESS", "serve Go's pprof profiles on this address (keep it private; off by default)")
	f.String(&c.ReadyFile, "ready-file", "FILE", `once ready, write {"url","pid","admin_socket"} to this file (atomically; removed at stop)`)

	f.group("Hosted page")
	f.Var((*originsFlag)(&c.FrameAncestors), "frame-ancestors", "ORIGINS", "origins that may embed the hosted page in a frame, comma-separated scheme://host[:port] (default none)")

	f.group("Data")
	f.String(&c.DB, "db", "FILE", "data file, created if missing")
	f.Duration(&c.LockTimeout, "lock-timeout", "how long to wait for a data file locked by another process")

	f.group("Merchants")
	f.Var((*merchantsFlag)(&c.Merchants), "merchant", "PUBLIC_KEY:SECRET[:WHSEC]", "create or update a merchant; repeatable; env SESSIOND_MERCHANT, comma-separated")
	f.split["merchant"] = true
	f.envs["merchant"] = []string{"SESSIOND_MERCHANTS"}

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
	f.Int(&c.MaxInflight, "max-inflight", "N", "most requests served at once; past it a request waits 100ms, then gets -32029 (0: no cap)")
	f.Float(&c.RateLimit, "rate-limit", "PER_SECOND", "most calls per second per merchant, -32029 past it (0: off)")

	f.group("Callbacks")
	f.Var((*durationList)(&c.CallbackRetry), "callback-retry", "OFFSETS", "offsets from a callback's first attempt at which failures are retried")
	f.Duration(&c.CallbackTimeout, "callback-timeout", "how long a callback receiver has to answer 2xx")
	f.String(&c.CallbackUserAgent, "callback-user-agent", "AGENT", "User-Agent of callbacks")
	f.Bool(&c.CallbackAllowPrivate, "callback-allow-private", "let callbacks reach loopback, private, link-local and CGNAT addresses (test harnesses)")

	f.group("Logs and shutdown")
	f.String(logFormat, "log-format", "FORMAT", "json or console")
	f.String(logLevel, "log-level", "LEVEL", "debug, info, warn or error")
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "how long shutdown waits for in-flight requests")
}

func serve(env *cmdEnv, c server.Config, logFormat, logLevel string) error {
	log, err := newLogger(logFormat, logLevel, env.stderr)
	if err != nil {
		return err
	}
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
		return zerolog.Logger{}, usagef("sessiond serve: --log-level %s: want debug, info, warn or error", level)
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Logger{}, usagef("sessiond serve: --log-format %s: want json or console", format)
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
