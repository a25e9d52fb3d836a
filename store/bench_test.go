package store

import (
	"context"
	"encoding/json"
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
			save := func() error {
				s := newSession(fmt.Sprintf("s%012d", n.Add(1)), 1)
				return db.Save(context.Background(), &session.Change{Session: s})
			}
			b.ResetTimer()
			if writers == 1 { // one writer, not RunParallel's one per P
				for range b.N {
					if err := save(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(writers)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := save(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			commits, writes := db.CommitStats()
			b.ReportMetric(float64(writes)/float64(max(commits, 1)), "writes/commit")
		})
	}
}

// BenchmarkSession measures reading a session back: a bolt read and,
// unless the session is cached unchanged, a decode.
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

// benchSession is a deposit session as a typical create stores it: a
// token hash, a preselected bank, the create params with customer
// details, a redirect and a callback.
func benchSession(id string) *session.Session {
	s := newSession(id, 1)
	amount := session.Decimal("125.50")
	st := session.StateCompleted
	s.Reference, s.TokenHash, s.Amount, s.CurrencyID = 123456789, make([]byte, 32), 12550, "sek"
	s.Bank, s.BankIntegration = &session.Bank{ID: "se-swedbank", Name: "Swedbank"}, "swedbank-se"
	s.Params = session.Params{
		Amount: &amount, CountryID: "se", CurrencyID: "sek", MerchantReference: "order-2026-000123",
		CustomerID: "customer-42", CustomerFirstname: "Anna", CustomerLastname: "Andersson",
		CustomerEmail: "anna@example.com", Locale: "sv", BankID: "se-swedbank", Role: "customer",
		RedirectURI: "https://shop.example/return?order=2026-000123",
		Callbacks:   []session.Callback{{URL: "https://shop.example/callbacks/brite", SessionState: &st}},
		Metadata:    []byte(`{"cart":"c-991","channel":"web"}`),
	}
	return s
}

// BenchmarkEncodeSession and BenchmarkDecodeSession compare the stored
// encoding of a session (binary) with the JSON that was stored before.
func BenchmarkEncodeSession(b *testing.B) {
	s := benchSession("s000000000001")
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := json.Marshal(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := encodeSession(s); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDecodeSession(b *testing.B) {
	s := benchSession("s000000000001")
	j, _ := json.Marshal(s)
	v, _ := encodeSession(s)
	b.Logf("bytes per session value: json %d, binary %d", 4+len(j), len(v))
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := json.Unmarshal(j, new(session.Session)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeSession(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("head", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := decodeSessionHead(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSessionsByReference reads a merchant's ten sessions with one
// reference: ten decodes per read, past the decoded-session cache.
func BenchmarkSessionsByReference(b *testing.B) {
	db, _ := MustOpen(b)
	ctx := context.Background()
	var cs []*session.Change
	for i := range 1000 {
		s := benchSession(fmt.Sprintf("s%012d", i))
		s.Params.MerchantReference = fmt.Sprintf("order-%d", i%100)
		cs = append(cs, &session.Change{Session: s})
	}
	for _, err := range db.SaveBatch(ctx, cs) {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if got, err := db.SessionsByReference(ctx, "m1", fmt.Sprintf("order-%d", i%100), 10); err != nil || len(got) != 10 {
			b.Fatalf("SessionsByReference: %d, %v", len(got), err)
		}
	}
}
