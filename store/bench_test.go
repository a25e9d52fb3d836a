package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// BenchmarkSave measures creating sessions, each fsync'd before Save
// returns: /serial with one writer, /parallel-64 with 64, where group
// commit shares each fsync among the writers waiting.
func BenchmarkSave(b *testing.B) {
	for _, writers := range []int{1, 64} {
		name := "serial"
		if writers > 1 {
			name = fmt.Sprintf("parallel-%d", writers)
		}
		b.Run(name, func(b *testing.B) {
			db, _ := MustOpen(b)
			var n atomic.Int64
			b.SetParallelism(writers)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s := newSession(fmt.Sprintf("s%012d", n.Add(1)), 1)
					if err := db.Save(context.Background(), &session.Change{Session: s}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			commits, writes := db.CommitStats()
			b.ReportMetric(float64(writes)/float64(max(commits, 1)), "writes/commit")
		})
	}
}

// BenchmarkSession measures reading a session back: a bolt read and,
// unless the session is cached unchanged, a JSON decode.
func BenchmarkSession(b *testing.B) {
	db, _ := MustOpen(b)
	ctx := context.Background()
	const n = 1000
	for i := range n {
		if err := db.Save(ctx, &session.Change{Session: newSession(fmt.Sprintf("s%04d", i), 1)}); err != nil {
			b.Fatal(err)
		}
	}
	var i atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Session(ctx, fmt.Sprintf("s%04d", i.Add(1)%n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkOutboxStats reads the outbox gauges with 0 and 20 000 pending
// deliveries: a counter and the first key of an index, whatever the backlog.
func BenchmarkOutboxStats(b *testing.B) {
	for _, pending := range []int{0, 20000} {
		b.Run(fmt.Sprintf("pending-%d", pending), func(b *testing.B) {
			db, _ := MustOpen(b)
			st := session.StateCompleted
			var cs []*session.Change
			for i := range pending {
				s := newSession(fmt.Sprintf("s%08d", i), 1)
				d := &session.Delivery{WebhookID: fmt.Sprintf("w%08d", i), SessionID: s.ID, URL: "http://a.example/", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0, Created: t0}
				cs = append(cs, &session.Change{Session: s, Deliveries: []*session.Delivery{d}})
			}
			for _, err := range db.SaveBatch(context.Background(), cs) {
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for range b.N {
				if got, err := db.OutboxStats(context.Background()); err != nil || got.Pending != pending {
					b.Fatalf("OutboxStats = %+v, %v", got, err)
				}
			}
		})
	}
}
