package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/bench"
	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
)

// Defaults of `sessiond bench --compare`.
const (
	compareMethods  = "session.create_deposit,client.transition,session.get"
	compareMerchant = "pk_bench:sk_bench"
)

// compareRow is one method measured on every backend.
type compareRow struct {
	method   string
	baseline bench.Result
	backends []bench.Result
}

// runCompare starts a server in-process on each database in turn (a file
// path, "bbolt" for a fresh file in a temp dir, or a postgres:// URL), with
// the same settings, runs each method's load against it as cfg says, and
// prints one table: requests/s and p99 per backend, each as a ratio to the
// baseline handler measured in the same run, and each backend after the
// first as a ratio to the first.
func runCompare(ctx context.Context, cfg bench.Config, dbs, methods []string, stdout, stderr io.Writer) error {
	if len(dbs) < 1 || len(methods) < 1 {
		return usagef("sessiond bench: --compare needs at least one database and --methods at least one method")
	}
	tmp, err := os.MkdirTemp("", "sessiond-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rows := make([]compareRow, len(methods))
	for i, m := range methods {
		rows[i].method = m
	}
	names := make([]string, len(dbs))
	for j, db := range dbs {
		names[j] = backendName(db)
		if db == "bbolt" {
			db = filepath.Join(tmp, "bench.db")
		}
		fmt.Fprintf(stderr, "== %s\n", names[j])
		results, err := compareOne(ctx, cfg, db, methods, j == 0, stderr)
		if err != nil {
			return fmt.Errorf("bench on %s: %w", names[j], err)
		}
		for i := range methods {
			rows[i].backends = append(rows[i].backends, results[i][0])
			if j == 0 {
				rows[i].baseline = results[i][1]
			}
		}
	}
	return printCompare(stdout, names, rows)
}

// compareOne serves db in-process and runs each method against it; with
// baseline, each method's baseline too. It returns [sessiond, baseline]
// per method.
func compareOne(ctx context.Context, cfg bench.Config, db string, methods []string, baseline bool, stderr io.Writer) ([][2]bench.Result, error) {
	pk, secret, _ := strings.Cut(compareMerchant, ":")
	sc := server.DefaultConfig()
	sc.Addr, sc.DB = "127.0.0.1:0", db
	sc.Merchants = []session.Credentials{{PublicKey: pk, Secret: secret}}
	m := server.New(sc)
	if err := m.Open(ctx); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- m.Run(runCtx) }()
	defer func() {
		stop()
		<-ran
	}()
	var out [][2]bench.Result
	for _, method := range methods {
		c := cfg
		c.URL, c.Method, c.Merchant, c.Baseline = m.URL(), method, compareMerchant, baseline
		c.Progress = stderr
		rs, err := bench.Run(ctx, c, stderr)
		if err != nil {
			return nil, err
		}
		var r [2]bench.Result
		copy(r[:], rs)
		out = append(out, r)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func backendName(db string) string {
	switch {
	case db == "bbolt" || !strings.Contains(db, "://"):
		return "bbolt"
	default:
		return "PostgreSQL"
	}
}

func printCompare(w io.Writer, names []string, rows []compareRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "method\tbaseline req/s\tbaseline p99"
	for j, n := range names {
		head += fmt.Sprintf("\t%s req/s\t÷ baseline\t%s p99\t× baseline", n, n)
		if j > 0 {
			head += fmt.Sprintf("\treq/s ÷ %s\tp99 × %s", names[0], names[0])
		}
	}
	fmt.Fprintln(tw, head+"\t")
	for _, r := range rows {
		line := fmt.Sprintf("%s\t%.0f\t%s", r.method, r.baseline.RPS, ms(r.baseline.P99))
		for j, b := range r.backends {
			line += fmt.Sprintf("\t%.0f\t%.2f\t%s\t%.2f", b.RPS, ratio(b.RPS, r.baseline.RPS), ms(b.P99), ratio(float64(b.P99), float64(r.baseline.P99)))
			if j > 0 {
				first := r.backends[0]
				line += fmt.Sprintf("\t%.2f\t%.2f", ratio(b.RPS, first.RPS), ratio(float64(b.P99), float64(first.P99)))
			}
			if b.Errors > 0 {
				line += fmt.Sprintf(" (%d errors)", b.Errors)
			}
		}
		fmt.Fprintln(tw, line+"\t")
	}
	return tw.Flush()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
