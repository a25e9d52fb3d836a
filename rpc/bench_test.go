package rpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// benchServer is the real handler over a real store, with a merchant, its
// bearer and n sessions.
func benchServer(b *testing.B, n int) (h http.Handler, bearer string, ids, tokens []string) {
	b.Helper()
	db, err := store.Open(filepath.Join(b.TempDir(), "b.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	svc := session.NewService(db, argon2.IDKey)
	ctx := context.Background()
	_, cr, err := svc.AddMerchant(ctx, "bench", session.Credentials{})
	if err != nil {
		b.Fatal(err)
	}
	tok, err := svc.Authorize(ctx, cr.PublicKey, cr.Secret)
	if err != nil {
		b.Fatal(err)
	}
	m, _ := svc.Authenticate(ctx, tok.AccessToken)
	for range n {
		d := session.Decimal("10")
		v, token, err := svc.Create(ctx, m, session.TypeDeposit, &session.Params{Amount: &d, CountryID: "se", MerchantReference: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		ids, tokens = append(ids, v.ID), append(tokens, token)
	}
	s := New(svc, Config{}, zerolog.New(io.Discard))
	return s.Handler(), tok.AccessToken, ids, tokens
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchCalls(b *testing.B, h http.Handler, bearer string, body func(i int) string) {
	var n atomic.Int64
	b.SetParallelism(32) // 32 callers per core, 64 in all: as sessiond bench -c 64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "/rpc", bytes.NewBufferString(body(int(n.Add(1)))))
			req.Header.Set("Content-Type", "application/json")
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			req.RemoteAddr = "127.0.0.1:1234"
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

// BenchmarkRPCSessionGet measures session.get through the whole handler
// (routing, request id, access log, auth, store read, rendering).
func BenchmarkRPCSessionGet(b *testing.B) {
	h, bearer, ids, _ := benchServer(b, 1000)
	benchCalls(b, h, bearer, func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session.get","params":{"id":%q}}`, i, ids[i%len(ids)])
	})
}

// BenchmarkRPCSessionState is session.get's small sibling.
func BenchmarkRPCSessionState(b *testing.B) {
	h, bearer, ids, _ := benchServer(b, 1000)
	benchCalls(b, h, bearer, func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session.state","params":{"id":%q}}`, i, ids[i%len(ids)])
	})
}

// BenchmarkRPCCreateDeposit measures a create, fsync'd before the answer;
// parallel callers share commits.
func BenchmarkRPCCreateDeposit(b *testing.B) {
	h, bearer, _, _ := benchServer(b, 0)
	benchCalls(b, h, bearer, func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"session.create_deposit","params":{"amount":"10.00","country_id":"se","merchant_reference":"bench"}}`, i)
	})
}
