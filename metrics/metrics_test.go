package metrics_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/metrics"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

// openWithBacklog opens a store holding pending deliveries.
func openWithBacklog(tb testing.TB, pending int) *store.DB {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "s.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	now := time.Now()
	st := session.StateCompleted
	for done := 0; done < pending; {
		var cs []*session.Change
		for i := 0; i < 200 && done < pending; i++ {
			id := fmt.Sprintf("01955555-0000-7000-8000-%012d", done)
			s := &session.Session{ID: id, Type: session.TypeDeposit, MerchantID: "m1", State: st, Created: now, Expires: now, Version: 1}
			d := &session.Delivery{WebhookID: "msg_" + id, MerchantID: "m1", SessionID: id, URL: "http://a.example/cb",
				SessionState: &st, Status: session.DeliveryPending, NextAttempt: now, Created: now.Add(time.Duration(done))}
			cs = append(cs, &session.Change{Session: s, Deliveries: []*session.Delivery{d}})
			done++
		}
		for _, err := range db.SaveBatch(context.Background(), cs) {
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return db
}

func handler(db *store.DB) http.Handler {
	m := metrics.New()
	m.Outbox(func() (int, time.Time) {
		st, _ := db.OutboxStats(context.Background())
		return st.Pending, st.Oldest
	})
	return m.Handler()
}

func scrape(tb testing.TB, h http.Handler) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		tb.Fatalf("scrape: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestOutboxGauges checks the gauges a scrape reports.
func TestOutboxGauges(t *testing.T) {
	body := scrape(t, handler(openWithBacklog(t, 3)))
	if !strings.Contains(body, "sessiond_outbox_pending 3\n") {
		t.Errorf("scrape lacks sessiond_outbox_pending 3:\n%s", body)
	}
	if strings.Contains(body, "sessiond_outbox_oldest_pending_seconds 0\n") {
		t.Errorf("oldest pending age is 0 with 3 pending")
	}
}

// BenchmarkScrape measures a /metrics scrape with no pending deliveries
// and with 20 000, alternating the two so that the machine's load weighs
// on both alike, and reports each: the outbox gauges read a counter and
// one index key, so the two take the same time (within noise).
//
//	go test -run '^$' -bench Scrape ./metrics
func BenchmarkScrape(b *testing.B) {
	empty, backlog := handler(openWithBacklog(b, 0)), handler(openWithBacklog(b, 20000))
	runtime.GC() // the seeding's garbage is not the scrapes'
	var took [2]time.Duration
	b.ResetTimer()
	for range b.N {
		for i, h := range []http.Handler{empty, backlog} {
			start := time.Now()
			scrape(b, h)
			took[i] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[0].Microseconds())/float64(b.N), "µs/scrape-pending-0")
	b.ReportMetric(float64(took[1].Microseconds())/float64(b.N), "µs/scrape-pending-20000")
}
