package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// stateResult is session.state's answer as encoding/json shows it, what
// stateOf must encode byte for byte.
type stateResult struct {
	ID            string        `json:"id"`
	State         session.State `json:"state"`
	StateName     string        `json:"state_name"`
	TransactionID *string       `json:"transaction_id"`
	ErrorCode     *string       `json:"error_code"`
	Version       int           `json:"version"`
}

// wireFixture is a server on a real store with a clock the test sets, and
// sessions of every type in many shapes: view_state absent or given (with
// members before and after session_management, and one of that name),
// metadata naming view_state and session_management, strings that JSON
// escapes, touched, moved, aborted and expired sessions.
type wireFixture struct {
	srv      *Server
	svc      *session.Service
	now      time.Time
	sessions []*session.Session
	merchant string
}

func newWireFixture(t testing.TB) *wireFixture {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "w.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &wireFixture{now: time.Now().UTC().Truncate(time.Millisecond)}
	var mu sync.Mutex
	f.svc = session.NewService(db, argon2.IDKey)
	f.svc.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return f.now }
	f.svc.SecretCost = session.SecretCost{MemoryKiB: 64, Passes: 1}
	ctx := context.Background()
	m, _, err := f.svc.AddMerchant(ctx, "Wire <&> Shop", session.Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	f.merchant = m.ID
	f.srv = New(f.svc, Config{}, zerolog.Nop())

	viewStates := []json.RawMessage{nil,
		json.RawMessage(`{"a":1,"zz":{"b":"<i>&"},"session_management":"given","s":[1,2]}`),
		json.RawMessage(`{"step":{"view_state":{"session_management":{"active":false}}}}`),
	}
	metadata := []json.RawMessage{nil, json.RawMessage(`{"view_state":{"session_management":0},"x":"\u2028<"}`)}
	brands := []string{"", "Brand \"quoted\" <b> é"}
	for ti, typ := range session.Types {
		for vi, vs := range viewStates {
			for mi, md := range metadata {
				p := &session.Params{CountryID: "se", MerchantReference: fmt.Sprintf("ref-%d-%d", vi, mi), ViewState: vs, Metadata: md,
					BrandName: brands[(ti+vi+mi)%2], CustomerEmail: "a&b@example.com"}
				switch typ {
				case session.TypeBankAccountSelection, session.TypeAuthentication:
				default:
					d := session.Decimal("12.50")
					p.Amount = &d
				}
				switch typ {
				case session.TypeRecurringPayment:
					p.RequestedStartDate = f.now.AddDate(0, 0, 3).Format(time.DateOnly)
				case session.TypeSwishPayment:
				case session.TypeIdealPayment:
					p.CountryID = ""
				}
				v, token, err := f.svc.Create(ctx, m, typ, p)
				if err != nil {
					t.Fatalf("create %s: %v", typ, err)
				}
				client := session.Client{IP: "127.0.0.1", UserAgent: "agent <&> \u2028"}
				switch (vi + mi + ti) % 4 {
				case 1: // touched
					if _, err := f.svc.ClientGet(ctx, token, client); err != nil {
						t.Fatal(err)
					}
				case 2: // moved, with a bank
					if _, err := f.svc.ClientTransition(ctx, token, session.Move{State: 1, Bank: &session.Bank{ID: "testbank", Name: "Test Bank"}}, client); err != nil {
						t.Fatal(err)
					}
				case 3: // final
					if _, err := f.svc.ClientTransition(ctx, token, session.Move{State: session.StateAborted, ErrorCode: "psu_abandoned_session"}, client); err != nil {
						t.Fatal(err)
					}
				}
				if v, err = f.svc.Get(ctx, m, v.ID); err != nil {
					t.Fatal(err)
				}
				f.sessions = append(f.sessions, v)
			}
		}
	}
	return f
}

// TestWireMatchesEncoding: the cached answers of session.get and
// client.get, and stateOf's, are byte for byte what encoding the wire
// objects gives, for every session of the fixture, at times before the
// warning, inside it and past the end; the second read of each is served
// from the cache.
func TestWireMatchesEncoding(t *testing.T) {
	f := newWireFixture(t)
	start := f.now
	for _, d := range []time.Duration{0, 1500 * time.Millisecond, 28*time.Minute + 30*time.Second, 31 * time.Minute, 24 * time.Hour} {
		now := start.Add(d)
		for _, v := range f.sessions {
			want, err := json.Marshal(f.srv.sessionObject(v, now))
			if err != nil {
				t.Fatal(err)
			}
			for read := range 2 {
				got, err := f.srv.sessionWire(v, now)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("session %s (%s, state %d) at +%v, read %d:\n got %s\nwant %s", v.ID, v.Type, v.State, d, read, got, want)
				}
			}
			st := stampOf(v, viewSession, "", "")
			if f.srv.wire.get(wireKey{v.ID, viewSession}, &st) == nil {
				t.Fatalf("session %s: not cached after a read", v.ID)
			}

			msg := ""
			if v.State == 1 {
				msg = "statement <&>"
			}
			o := f.srv.clientObject(v, now)
			o.MerchantName, o.Message = "Wire <&> Shop", optString(msg)
			want, err = json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			for read := range 2 {
				got, err := f.srv.clientWire(v, now, "Wire <&> Shop", msg)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("client view of %s at +%v, read %d:\n got %s\nwant %s", v.ID, d, read, got, want)
				}
			}

			want, _ = json.Marshal(&stateResult{v.ID, v.State, v.State.String(), optString(v.TransactionID), optString(v.ErrorCode), v.Version})
			if got := stateOf(v); string(got) != string(want) {
				t.Fatalf("state of %s: got %s, want %s", v.ID, got, want)
			}
		}
	}
}

// TestAppendString: strings that need escaping are escaped as
// encoding/json escapes them.
func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "<&>", "ctl\x01\n", "é", "\u2028\u2029", "bad\xffutf8", "del\x7f"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestWireCacheBounded: a cache keeps within its size however many
// sessions pass through it (200 000 here, thousands of times what it holds), and still answers the newest.
func TestWireCacheBounded(t *testing.T) {
	const size = 64 << 10
	c := newWireCache(size)
	v := &session.Session{Version: 1, Expires: time.Unix(1e9, 0)}
	body := make([]byte, 700)
	const sessions = 200000
	for i := range sessions {
		v.ID = "s" + strconv.Itoa(i)
		st := stampOf(v, viewSession, "", "")
		c.put(wireKey{v.ID, viewSession}, &wireEntry{stamp: st, b: body, cut: 10})
		if i%20000 == 0 || i == sessions-1 {
			total := 0
			for j := range c.shards {
				sh := &c.shards[j]
				sh.mu.RLock()
				held := 0
				for _, e := range sh.m {
					held += e.size()
				}
				if held != sh.bytes || held > c.max {
					t.Fatalf("shard %d holds %d bytes, counts %d, may hold %d", j, held, sh.bytes, c.max)
				}
				total += held
				sh.mu.RUnlock()
			}
			if total > size {
				t.Fatalf("after %d sessions the cache holds %d bytes, more than %d", i+1, total, size)
			}
		}
		if c.get(wireKey{v.ID, viewSession}, &st) == nil {
			t.Fatalf("session %d: not found right after put", i)
		}
	}
	if n := c.len(); n == 0 || n > size/len(body) {
		t.Errorf("cache holds %d entries, want 1 to %d", n, size/len(body))
	}
}

// BenchmarkSessionWire compares a session.get answer from the cache (the
// session unchanged since the last read) with encoding it anew.
func BenchmarkSessionWire(b *testing.B) {
	f := newWireFixture(b)
	v := f.sessions[len(f.sessions)/2]
	now := f.now.Add(time.Minute)
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := f.srv.sessionWire(v, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(f.srv.sessionObject(v, now)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
