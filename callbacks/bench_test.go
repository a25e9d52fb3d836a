package callbacks_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedBacklog stores n pending deliveries to url, due now, in batches.
func seedBacklog(tb testing.TB, db *store.DB, merchantID, url string, n int) {
	tb.Helper()
	now := time.Now()
	for done := 0; done < n; {
		var cs []*session.Change
		for i := 0; i < 100 && done < n; i++ {
			s := &session.Session{ID: newID(), Type: session.TypeDeposit, MerchantID: merchantID, State: session.StateCompleted, Created: now, Expires: now, Version: 1}
			st := session.StateCompleted
			d := &session.Delivery{WebhookID: "msg_" + newID(), MerchantID: merchantID, SessionID: s.ID, URL: url, SessionState: &st, Status: session.DeliveryPending, NextAttempt: now, Created: now}
			cs = append(cs, &session.Change{Session: s, Deliveries: []*session.Delivery{d}})
			done++
		}
		for _, err := range db.SaveBatch(context.Background(), cs) {
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// BenchmarkBacklog drains a backlog of pending deliveries to one host
// whose receiver answers 200 at once, with PerHost 4 (the default), and
// reports attempts per second and CPU per attempt (of the whole process,
// receiver included): flat in the size of the backlog when an attempt's
// cost does not depend on it.
//
//	go test -run '^$' -bench Backlog -benchtime 1x ./callbacks
func BenchmarkBacklog(b *testing.B) {
	for _, n := range []int{1000, 20000} {
		b.Run(fmt.Sprintf("pending-%d", n), func(b *testing.B) {
			var posts atomic.Int64
			rc := newReceiver(b, func(w http.ResponseWriter, _ *http.Request) { posts.Add(1) })
			// The receiver keeps requests for tests; drain them here.
			go func() {
				for range rc.got {
				}
			}()
			var elapsed, cpu time.Duration
			for range b.N {
				b.StopTimer()
				db := mustOpen(b)
				m := addMerchant(b, db)
				seedBacklog(b, db, m.ID, rc.URL+"/cb", n)
				disp := callbacks.New(db, callbacks.Config{AllowPrivate: true})
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime(b)
				go func() { done <- disp.Run(ctx) }()
				for {
					st, err := db.OutboxStats(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if st.Pending == 0 {
						break
					}
					time.Sleep(5 * time.Millisecond) // polling the figure measured, not synchronising a test
				}
				elapsed += time.Since(start)
				cpu += cpuTime(b) - cpu0
				b.StopTimer()
				cancel()
				<-done
			}
			attempts := float64(n * b.N)
			b.ReportMetric(attempts/elapsed.Seconds(), "attempts/s")
			b.ReportMetric(float64(cpu.Microseconds())/attempts, "cpu-µs/attempt")
			if got := posts.Load(); got != int64(n*b.N) {
				b.Errorf("%d POSTs for %d deliveries", got, n*b.N)
			}
		})
	}
}
