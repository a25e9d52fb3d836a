package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// measured is a Result with a sample of what went wrong.
type measured struct {
	Result
	firstErr string // the first failure seen, or ""
}

// workerStats is what one worker saw, over every phase of a run.
type workerStats struct {
	lat      []time.Duration // of every counted request
	errors   int
	firstErr string
	seq      uint64 // id of the last request
}

// measure runs l against t from cfg.Concurrency workers for cfg.Duration
// of measured time, in as many phases as l needs.
func (b *bench) measure(ctx context.Context, t *target, l load) (measured, error) {
	stats := make([]workerStats, b.cfg.Concurrency)
	for i := range stats {
		stats[i].lat = make([]time.Duration, 0, 4096)
	}
	var total atomic.Int64
	var elapsed time.Duration
	for elapsed < b.cfg.Duration && ctx.Err() == nil {
		left := b.cfg.Duration - elapsed
		before := total.Load()
		var rate float64
		if elapsed > 0 {
			rate = float64(before) / elapsed.Seconds()
		}
		w, err := l.phase(ctx, rate, left)
		if err != nil {
			return measured{}, err
		}

		start := time.Now()
		deadline := start.Add(left)
		phaseCtx, cancelPhase := context.WithDeadline(ctx, deadline)
		reqCtx, cancelReq := context.WithDeadline(ctx, deadline.Add(grace))
		last, lastN := start, before
		base := elapsed
		stop := b.ticker(func(time.Duration) string {
			now, n := time.Now(), total.Load()
			rps := float64(n-lastN) / now.Sub(last).Seconds()
			last, lastN = now, n
			return fmt.Sprintf("%s: %s, %d requests, %.0f req/s", t.label, (base + now.Sub(start)).Round(time.Second), n, rps)
		})
		var wg sync.WaitGroup
		for i := range stats {
			wg.Go(func() { t.work(ctx, phaseCtx, reqCtx, deadline, w, &stats[i], &total) })
		}
		wg.Wait()
		stop()
		cancelPhase()
		cancelReq()
		elapsed += time.Since(start)
		if total.Load() == before {
			break // the phase had nothing to do; another would not either
		}
	}

	n := 0
	for i := range stats {
		n += len(stats[i].lat)
	}
	all := make([]time.Duration, 0, n)
	res := measured{Result: Result{Label: t.label, Elapsed: elapsed}}
	for i := range stats {
		all = append(all, stats[i].lat...)
		res.Errors += stats[i].errors
		if res.firstErr == "" {
			res.firstErr = stats[i].firstErr
		}
	}
	res.Requests = len(all)
	if elapsed > 0 {
		res.RPS = float64(res.Requests) / elapsed.Seconds()
	}
	slices.Sort(all)
	res.P50, res.P90, res.P99 = percentile(all, 50), percentile(all, 90), percentile(all, 99)
	if len(all) > 0 {
		res.Max = all[len(all)-1]
	}
	return res, nil
}

// work is one worker of a phase: it sends requests from w until deadline,
// until w runs dry or until ctx (the run's) is done. Requests are made
// with reqCtx, which gives those in flight at the deadline a grace period.
func (t *target) work(ctx, phaseCtx, reqCtx context.Context, deadline time.Time, w work, st *workerStats, total *atomic.Int64) {
	var buf bytes.Buffer
	for time.Now().Before(deadline) {
		params, wk, ok := w.take(phaseCtx)
		if !ok {
			return
		}
		st.seq++
		req := body(t.prefix, params, st.seq)
		start := time.Now()
		err := t.call(reqCtx, req, st.seq, &buf)
		lat := time.Since(start)
		if err != nil && ctx.Err() != nil {
			// Interrupted by the caller: not an answer of the server.
			if wk != nil {
				w.give(wk, false)
			}
			return
		}
		st.lat = append(st.lat, lat)
		total.Add(1)
		if err != nil {
			st.errors++
			if st.firstErr == "" {
				st.firstErr = err.Error()
			}
		}
		if wk != nil {
			w.give(wk, err == nil)
		}
	}
}

// percentile returns the p-th percentile (nearest rank) of sorted.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 × n)
	return sorted[max(rank, 1)-1]
}

// report writes the table, the ratios, the setup and the heap to out.
func (b *bench) report(out io.Writer, rows []Result, samples []string, before, after heapReading) error {
	w := &errWriter{w: out}
	w.printf("%s on %s: %d connections, %s\n", b.cfg.Method, b.cfg.URL, b.cfg.Concurrency, b.cfg.Duration)
	if b.setupSessions > 0 {
		batches := "1 batch"
		if b.setupBatches > 1 {
			batches = fmt.Sprintf("%d batches", b.setupBatches)
		}
		w.printf("setup: %d sessions created in %s (%s, %.0f/s), not measured\n",
			b.setupSessions, b.setupTime.Round(time.Millisecond), batches,
			float64(b.setupSessions)/b.setupTime.Seconds())
	}
	const row = "%-9s %10v %8v %10v %9v %9v %9v %9v\n"
	w.printf(row, "label", "requests", "errors", "req/s", "p50", "p90", "p99", "max")
	for _, r := range rows {
		w.printf(row, r.Label, r.Requests, r.Errors, fmt.Sprintf("%.0f", r.RPS),
			fmtDuration(r.P50), fmtDuration(r.P90), fmtDuration(r.P99), fmtDuration(r.Max))
	}
	for i, r := range rows {
		if samples[i] != "" {
			w.printf("%s: first error: %s\n", r.Label, samples[i])
		}
	}
	if len(rows) == 2 {
		s, base := rows[0], rows[1]
		w.printf("ratio %s/%s: throughput %s, p99 %s\n", s.Label, base.Label,
			ratio(s.RPS, base.RPS), ratio(s.P99.Seconds(), base.P99.Seconds()))
	}
	if before.ok || after.ok {
		w.printf("heap in use (%s): before %s, after %s\n", heapMetric, fmtHeap(before), fmtHeap(after))
	} else {
		w.printf("heap: n/a (no /metrics)\n")
	}
	if w.err != nil {
		return fmt.Errorf("bench: write report: %w", w.err)
	}
	return nil
}

// errWriter keeps the first write error, so a report is checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (w *errWriter) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}

// ratio returns a/b like "0.45x", or "n/a" when b is 0.
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// fmtDuration returns d to three significant places or so: 850µs, 1.23ms,
// 2.50s.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// fmtHeap returns h in MiB, or "n/a".
func fmtHeap(h heapReading) string {
	if !h.ok {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", h.bytes/(1<<20))
}
