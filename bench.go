package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessiond/sessiond/bench"
)

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
