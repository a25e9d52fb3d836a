package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sessiond/sessiond/bench"
)

var benchCmd = &command{
	name:    "bench",
	summary: "load-test a running server: requests/s and p50/p90/p99/max latency",
	args:    "[flags]",
	long: `Keeps -c keep-alive connections busy with one method for -d. Methods that need
sessions (session.get, session.state, client.transition) get --setup of them
first, not measured. --baseline runs the same load against a minimal
in-process JSON-RPC handler, the ceiling on this machine, and prints ratios.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		cfg := bench.Config{
			URL: "http://127.0.0.1:8080", Method: bench.DefaultMethod, Concurrency: bench.DefaultConcurrency,
			Duration: bench.DefaultDuration, Setup: bench.DefaultSetup,
		}
		var params, compare, methods, serveBaseline string
		var makeSessions int
		f.group("Target")
		f.String(&cfg.URL, "url", "URL", "server base URL")
		f.String(&cfg.Merchant, "merchant", "PUBLIC_KEY:SECRET", "merchant to authorize with")
		f.group("Load")
		f.String(&cfg.Method, "method", "METHOD", "JSON-RPC method to load")
		f.String(&params, "params", "JSON", "params of each request, for methods that need no setup")
		f.Int(&cfg.Concurrency, "c", "N", "concurrent keep-alive connections")
		f.Duration(&cfg.Duration, "d", "how long to measure")
		f.Int(&cfg.Setup, "setup", "N", "sessions to create first for session.get, session.state, client.transition")
		f.Bool(&cfg.Baseline, "baseline", "also run the same load against a minimal in-process JSON-RPC handler and print the ratio")
		f.group("Backends")
		f.String(&compare, "compare", "DB,DB", "instead of --url: serve each database in-process in turn (bbolt for a fresh file, or a postgres:// URL) and run --methods on each")
		methods = compareMethods
		f.String(&methods, "methods", "M,M", "methods of --compare")
		f.group("For other load generators (wrk)")
		f.String(&serveBaseline, "serve-baseline", "ADDR", "instead of loading: serve the baseline handler on ADDR until interrupted")
		f.Int(&makeSessions, "make-sessions", "N", "instead of loading: create N deposit sessions on --url and print the bearer token, then each session's id and token")
		return func(env *cmdEnv, pos []string) error {
			if len(pos) > 0 {
				return usagef("sessiond bench: takes flags only, not %q", pos[0])
			}
			if params != "" {
				if !json.Valid([]byte(params)) {
					return usagef("sessiond bench: --params is not valid JSON; want an object such as '{}'")
				}
				cfg.Params = json.RawMessage(params)
			}
			cfg.Progress = env.stderr
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch {
			case serveBaseline != "":
				return serveBaselineOn(ctx, serveBaseline, env.stderr)
			case makeSessions != 0:
				return bench.MakeSessions(ctx, cfg, makeSessions, env.stdout)
			}
			if compare != "" {
				return runCompare(ctx, cfg, strings.Split(compare, ","), strings.Split(methods, ","), env.stdout, env.stderr)
			}
			_, err := bench.Run(ctx, cfg, env.stdout)
			return err
		}
	},
}

// serveBaselineOn serves bench's baseline handler at addr until ctx is done,
// so that wrk can measure the same ceiling `bench --baseline` does.
func serveBaselineOn(ctx context.Context, addr string, stderr io.Writer) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("sessiond bench: --serve-baseline: %w", err)
	}
	srv := &http.Server{Handler: bench.Baseline()}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stderr, "baseline listening on http://%s\n", l.Addr())
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
