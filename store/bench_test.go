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
