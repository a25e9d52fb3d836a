package postgres

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
)

// BenchmarkSession reads one session: from the cache, each read synced
// with the feed, and from the database (a DB without a feed); by 64
// readers at once, and by one.
func BenchmarkSession(b *testing.B) {
	url := pgtest.URL(b)
	cached := openBenchReplica(b, url, &feedLog{})
	uncached, err := Open(context.Background(), url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { uncached.Close() })
	ctx := context.Background()
	if err := cached.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		b.Fatal(err)
	}
	for _, db := range []*DB{cached, uncached} {
		name := "database"
		if db == cached {
			name = "cache"
		}
		read := func() {
			if _, err := db.Session(ctx, "s1"); err != nil {
				b.Error(err)
			}
		}
		b.Run(name+"/parallel", func(b *testing.B) {
			b.SetParallelism(32) // 64 readers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					read()
				}
			})
		})
		b.Run(name+"/serial", func(b *testing.B) {
			for range b.N {
				read()
			}
		})
	}
}

// latencyLog records when each version of a session is published.
type latencyLog struct {
	mu   sync.Mutex
	seen map[int]time.Time
	wake chan struct{}
}

func (l *latencyLog) Publish(cs ...*session.Change) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cs {
		if c.Session != nil {
			l.seen[c.Session.Version] = now
		}
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// BenchmarkCrossReplicaLatency saves a version of a session on A and
// waits until B's cache has it (B publishes a change after applying it to
// its cache). It reports, per save, the time from A's Save returning to
// B having the version (after-ack), from Save starting to then (total),
// and the 50th and 99th percentiles of after-ack.
func BenchmarkCrossReplicaLatency(b *testing.B) {
	url := pgtest.URL(b)
	a := openBenchReplica(b, url, &feedLog{})
	lb := &latencyLog{seen: map[int]time.Time{}, wake: make(chan struct{}, 1)}
	rb := openBenchReplica(b, url, lb)
	ctx := context.Background()
	var afterAck, total []time.Duration
	b.ResetTimer()
	for v := 1; v <= b.N; v++ {
		start := time.Now()
		if err := a.Save(ctx, &session.Change{Session: newSession("s1", v)}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			lb.mu.Lock()
			at, ok := lb.seen[v]
			lb.mu.Unlock()
			if ok {
				if !cached(rb, "s1", v) {
					b.Fatalf("B published version %d before caching it", v)
				}
				afterAck = append(afterAck, max(0, at.Sub(acked)))
				total = append(total, at.Sub(start))
				break
			}
			select {
			case <-lb.wake:
			case <-time.After(10 * time.Second):
				b.Fatalf("B never saw version %d", v)
			}
		}
	}
	b.StopTimer()
	sort.Slice(afterAck, func(i, j int) bool { return afterAck[i] < afterAck[j] })
	var sumAck, sumTotal time.Duration
	for i := range afterAck {
		sumAck += afterAck[i]
		sumTotal += total[i]
	}
	n := time.Duration(len(afterAck))
	b.ReportMetric(float64((sumAck / n).Microseconds()), "µs-after-ack")
	b.ReportMetric(float64(afterAck[len(afterAck)/2].Microseconds()), "µs-after-ack-p50")
	b.ReportMetric(float64(afterAck[len(afterAck)*99/100].Microseconds()), "µs-after-ack-p99")
	b.ReportMetric(float64((sumTotal / n).Microseconds()), "µs-total")
}

func openBenchReplica(b *testing.B, url string, p session.Publisher) *DB {
	b.Helper()
	db, err := Open(context.Background(), url, Options{Publisher: p})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkFeedData encodes a move's change as logged and notified: by
// hand, as saves do, and with json.Marshal of its feedChange, as they did.
func BenchmarkFeedData(b *testing.B) {
	s := newSession("01955555-0000-7000-8000-000000000001", 3)
	from := session.TxCreated
	c := &session.Change{Session: s, TxFrom: &from,
		Transaction: &session.Transaction{ID: "tx1", SessionID: s.ID, State: from + 1},
		Deliveries:  []*session.Delivery{{WebhookID: "w1", SessionID: s.ID, URL: "http://127.0.0.1:1/cb"}}}
	e, err := encodeChange(c)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("by-hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.feedData()
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			marshalFeedChange(b, e)
		}
	})
}

// BenchmarkPurge is one expiry sweep's purge (the chore that also trims
// the change log) on a log of 100 000 changes, none old enough to go: what
// every replica's sweep costs the database each second.
func BenchmarkPurge(b *testing.B) {
	db, _ := MustOpen(b)
	ctx := context.Background()
	if _, err := db.pool.Exec(ctx, `INSERT INTO changes (origin, data) SELECT 'bench', '{}' FROM generate_series(1, 100000)`); err != nil {
		b.Fatal(err)
	}
	if _, err := db.pool.Exec(ctx, "ANALYZE changes"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := db.PurgeTokens(ctx, time.Now(), 500); err != nil {
			b.Fatal(err)
		}
	}
}
