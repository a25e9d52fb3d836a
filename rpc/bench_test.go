package rpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	ids, tokens = make([]string, n), make([]string, n)
	// Created from many goroutines at once, so that they share commits.
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				d := session.Decimal("10")
				v, token, err := svc.Create(ctx, m, session.TypeDeposit, &session.Params{Amount: &d, CountryID: "se", MerchantReference: "bench"})
				if err != nil {
					errs <- err
					return
				}
				ids[i], tokens[i] = v.ID, token
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
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

// SetReadDeadline and SetWriteDeadline succeed, as on a real connection.
func (w *discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *discardWriter) SetWriteDeadline(time.Time) error { return nil }

// errorCounter is a discardWriter that counts the answers that are errors.
type errorCounter struct {
	discardWriter
	n *atomic.Int64
}

func (w *errorCounter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(`"error":`)) {
		w.n.Add(1)
	}
	return len(b), nil
}

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

// BenchmarkRPCClientGet is the hosted page's read: the end user's token,
// a touch of the session, the merchant's name.
func BenchmarkRPCClientGet(b *testing.B) {
	h, _, _, tokens := benchServer(b, 1000)
	benchCalls(b, h, "", func(i int) string {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"client.get","params":{"token":%q}}`, i, tokens[i%len(tokens)])
	})
}

// depositPath is the deposit's happy path, which
// BenchmarkRPCClientTransition walks each session along.
var depositPath = []session.State{0, 1, 2, 3, 4, 5, 8, 9, 12}

// BenchmarkRPCClientTransition measures client.transition, fsync'd before
// the answer: each call moves a session one step along depositPath, and
// no two calls move one session at once.
func BenchmarkRPCClientTransition(b *testing.B) {
	steps := len(depositPath) - 1
	h, _, _, tokens := benchServer(b, b.N/steps+64)
	walks := make(chan int, len(tokens)*steps) // session index × steps + step
	for i := range tokens {
		walks <- i * steps
	}
	var failed atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &errorCounter{discardWriter{h: http.Header{}}, &failed}
		for pb.Next() {
			wk := <-walks
			i, step := wk/steps, wk%steps
			next := depositPath[step+1]
			body := `{"jsonrpc":"2.0","id":1,"method":"client.transition","params":{"token":` + strconv.Quote(tokens[i]) + `,"state":` + strconv.Itoa(int(next))
			if next == 1 {
				body += `,"bank":{"id":"testbank","name":"Test Bank"}`
			}
			req, _ := http.NewRequest(http.MethodPost, "/rpc", bytes.NewBufferString(body+"}}"))
			req.Header.Set("Content-Type", "application/json")
			req.RemoteAddr = "127.0.0.1:1234"
			clear(w.h)
			h.ServeHTTP(w, req)
			if step+1 < steps {
				walks <- wk + 1
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d moves failed", n)
	}
}
