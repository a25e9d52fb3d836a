package callbacks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

var _ callbacks.Outbox = (*store.DB)(nil)

// deadline bounds every wait for something that should happen at once.
const deadline = 5 * time.Second

// t0 is where fake clocks start.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// mustOpen opens a store in a temporary directory, closed when the test ends.
func mustOpen(tb testing.TB) *store.DB {
	tb.Helper()
	db, err := store.Open(filepath.Join(tb.TempDir(), "sessiond.db"), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Error(err)
		}
	})
	return db
}

// observed is the real store, telling the test of every attempt recorded.
type observed struct {
	*store.DB
	updates chan *session.Delivery
}

func newObserved(tb testing.TB) *observed {
	return &observed{DB: mustOpen(tb), updates: make(chan *session.Delivery, 256)}
}

func (o *observed) RecordAttempt(ctx context.Context, owner string, d *session.Delivery) error {
	err := o.DB.RecordAttempt(ctx, owner, d)
	c := *d
	o.updates <- &c
	return err
}

// waitRecorded returns the next recorded attempt at the delivery with the
// webhook id, failing if one at another delivery comes first.
func (o *observed) waitRecorded(tb testing.TB, webhookID string) *session.Delivery {
	tb.Helper()
	select {
	case d := <-o.updates:
		if d.WebhookID != webhookID {
			tb.Fatalf("recorded %s (%s) first, want %s", d.WebhookID, d.Status, webhookID)
		}
		return d
	case <-time.After(deadline):
		tb.Fatalf("no attempt at %s recorded within %s", webhookID, deadline)
		return nil
	}
}

var seq atomic.Int64

// newID returns a unique id in the canonical UUID form.
func newID() string { return fmt.Sprintf("01955555-0000-7000-8000-%012d", seq.Add(1)) }

// addMerchant stores a merchant with a fresh callback secret.
func addMerchant(tb testing.TB, db *store.DB) *session.Merchant {
	tb.Helper()
	id := newID()
	m := &session.Merchant{
		ID:             id,
		Name:           "Shop " + id,
		PublicKey:      "pk_" + id,
		CallbackSecret: session.CallbackSecretPrefix + base64.StdEncoding.EncodeToString([]byte("key of "+id)),
		Created:        t0,
	}
	if err := db.CreateMerchant(context.Background(), m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// addDeliveries saves a new completed session of the merchant with n
// pending deliveries to rawURL, due at now, and returns them.
func addDeliveries(tb testing.TB, db *store.DB, merchantID, rawURL string, now time.Time, n int) []*session.Delivery {
	tb.Helper()
	state := session.StateCompleted
	s := &session.Session{
		ID:         newID(),
		Type:       session.TypeDeposit,
		MerchantID: merchantID,
		State:      state,
		Created:    now,
		Expires:    now.Add(30 * time.Minute),
		Version:    1,
	}
	var ds []*session.Delivery
	for range n {
		ds = append(ds, &session.Delivery{
			WebhookID:    "msg_" + newID(),
			MerchantID:   merchantID,
			SessionID:    s.ID,
			URL:          rawURL,
			SessionState: &state,
			Status:       session.DeliveryPending,
			NextAttempt:  now,
			Created:      now,
		})
	}
	if err := db.Save(context.Background(), &session.Change{Session: s, Deliveries: ds}); err != nil {
		tb.Fatal(err)
	}
	return ds
}

func addDelivery(tb testing.TB, db *store.DB, merchantID, rawURL string, now time.Time) *session.Delivery {
	tb.Helper()
	return addDeliveries(tb, db, merchantID, rawURL, now, 1)[0]
}

// stored returns the stored version of a delivery.
func stored(tb testing.TB, db *store.DB, d *session.Delivery) *session.Delivery {
	tb.Helper()
	ds, err := db.SessionDeliveries(context.Background(), d.SessionID)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range ds {
		if s.WebhookID == d.WebhookID {
			return s
		}
	}
	tb.Fatalf("delivery %s not stored", d.WebhookID)
	return nil
}

// after returns d as it should be stored after attempts attempts, the
// first at first, the last answered with code.
func after(d *session.Delivery, status session.DeliveryStatus, attempts int, first time.Time, code int, next time.Time) *session.Delivery {
	w := *d
	w.Status, w.Attempts, w.FirstAttempt, w.LastStatusCode, w.NextAttempt = status, attempts, first, code, next
	return &w
}

// checkStored compares the stored delivery with want, but for the wording
// of LastError: a failed attempt must give a status code or an error, a
// delivered one no error.
func checkStored(tb testing.TB, db *store.DB, want *session.Delivery) {
	tb.Helper()
	got := stored(tb, db, want)
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(session.Delivery{}, "LastError")); diff != "" {
		tb.Errorf("stored delivery (-want +got):\n%s", diff)
	}
	if got.Status == session.DeliveryDelivered && got.LastError != "" {
		tb.Errorf("delivered with last_error %q", got.LastError)
	}
	if got.Status != session.DeliveryDelivered && got.LastStatusCode == 0 && got.LastError == "" {
		tb.Errorf("%s with neither last_status_code nor last_error", got.Status)
	}
}

// request is what a receiver got.
type request struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a callback endpoint that keeps every request it gets, then
// answers it with its handler.
type receiver struct {
	*httptest.Server
	got chan request
}

func newReceiver(tb testing.TB, answer http.HandlerFunc) *receiver {
	rc := &receiver{got: make(chan request, 256)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			tb.Errorf("receiver: read body: %v", err)
		}
		select {
		case rc.got <- request{r.URL.Path, r.Header.Clone(), body}:
		default: // never block a handler: the server could not close
			tb.Errorf("receiver: more than %d requests", cap(rc.got))
		}
		answer(w, r)
	}))
	tb.Cleanup(rc.Close)
	return rc
}

// next returns the receiver's next request, failing if none comes in time.
func (rc *receiver) next(tb testing.TB) request {
	tb.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(deadline):
		tb.Fatalf("no request within %s", deadline)
		return request{}
	}
}

// port returns the receiver's port.
func (rc *receiver) port(tb testing.TB) string {
	tb.Helper()
	u, err := url.Parse(rc.URL)
	if err != nil {
		tb.Fatal(err)
	}
	return u.Port()
}

func answer(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// redirect sends every request to /landed, which a client must not follow.
func redirect(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/landed", http.StatusFound)
}

// hang returns a handler that answers 200 once release is called (or the
// client gives up). Register release with t.Cleanup after the receiver is
// made, so that it runs before the receiver closes.
func hang() (http.HandlerFunc, func()) {
	ch := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ch:
		case <-r.Context().Done():
		}
	}, release
}

// checkRequest checks one attempt's request: path, headers, body, and the
// signature, verified with the Standard Webhooks library; the timestamp is
// checked against at (or against the real clock, if at is zero).
func checkRequest(tb testing.TB, r request, d *session.Delivery, secret, userAgent string, at time.Time) {
	tb.Helper()
	if r.path != "/cb" {
		tb.Errorf("request to %s, want /cb", r.path)
	}
	for name, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   userAgent,
		"webhook-id":   d.WebhookID,
	} {
		if got := r.header.Get(name); got != want {
			tb.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if want := string(d.Body()); string(r.body) != want {
		tb.Errorf("body %s, want %s", r.body, want)
	}
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		tb.Fatal(err)
	}
	verify := wh.Verify
	if !at.IsZero() {
		if got, want := r.header.Get("webhook-timestamp"), strconv.FormatInt(at.Unix(), 10); got != want {
			tb.Errorf("webhook-timestamp %s, want %s", got, want)
		}
		verify = wh.VerifyIgnoringTimestamp // a fake clock is far from now
	}
	if err := verify(r.body, r.header); err != nil {
		tb.Errorf("signature %q: %v", r.header.Get("webhook-signature"), err)
	}
}

func flush(tb testing.TB, d *callbacks.Dispatcher) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
}

// noMore fails if the receiver got a request not yet taken.
func noMore(tb testing.TB, rc *receiver) {
	tb.Helper()
	if n := len(rc.got); n != 0 {
		tb.Errorf("%d more requests, want none", n)
	}
}

// syncBuffer is a log sink safe for concurrent writers and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestOneAttempt covers the answers that settle a delivery at the first
// attempt, with no attempt after.
func TestOneAttempt(t *testing.T) {
	for _, tc := range []struct {
		code int
		want session.DeliveryStatus
	}{
		{http.StatusOK, session.DeliveryDelivered},
		{http.StatusNoContent, session.DeliveryDelivered},
		{http.StatusAccepted, session.DeliveryDelivered},
		{http.StatusGone, session.DeliveryGone},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			db := mustOpen(t)
			rc := newReceiver(t, answer(tc.code))
			clk := &clock{now: t0}
			m := addMerchant(t, db)
			d := addDelivery(t, db, m.ID, rc.URL+"/cb", t0)
			disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Now: clk.Now, UserAgent: "Test Agent"})

			flush(t, disp)
			checkRequest(t, rc.next(t), d, m.CallbackSecret, "Test Agent", t0)
			want := after(d, tc.want, 1, t0, tc.code, time.Time{})
			checkStored(t, db, want)

			clk.Set(t0.Add(24 * time.Hour))
			flush(t, disp)
			noMore(t, rc)
			checkStored(t, db, want)
		})
	}
}

// TestRetries drives failing receivers through the whole retry schedule
// with a fake clock: each retry falls due at its offset from the first
// attempt (a late attempt does not shift the schedule), carries the same
// webhook-id and a fresh timestamp and signature, and after the last offset
// the delivery is failed. A redirect counts as a failure and is not
// followed. Logs name the delivery but never the secret or the URL's token.
func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer http.HandlerFunc
		code   int
	}{
		{"500", answer(http.StatusInternalServerError), http.StatusInternalServerError},
		{"503", answer(http.StatusServiceUnavailable), http.StatusServiceUnavailable},
		{"302 not followed", redirect, http.StatusFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpen(t)
			rc := newReceiver(t, tc.answer)
			clk := &clock{now: t0}
			var logs syncBuffer
			m := addMerchant(t, db)
			const token = "tok_not_for_logs"
			d := addDelivery(t, db, m.ID, rc.URL+"/cb?token="+token, t0)
			disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Now: clk.Now, Log: zerolog.New(&logs)})

			steps := []struct {
				at       time.Duration // when to flush, from t0
				attempts int           // after the flush
				next     time.Duration // from t0; 0 for failed
			}{
				{0, 1, 10 * time.Minute},
				{9 * time.Minute, 1, 10 * time.Minute}, // not due yet
				{13 * time.Minute, 2, 30 * time.Minute},
				{30 * time.Minute, 3, 60 * time.Minute},
				{60 * time.Minute, 4, 0},
				{24 * time.Hour, 4, 0},
			}
			attempts := 0
			for _, s := range steps {
				now := t0.Add(s.at)
				clk.Set(now)
				flush(t, disp)
				if s.attempts > attempts {
					attempts = s.attempts
					checkRequest(t, rc.next(t), d, m.CallbackSecret, "Brite Callback", now)
				}
				noMore(t, rc)
				want := after(d, session.DeliveryPending, s.attempts, t0, tc.code, t0.Add(s.next))
				if s.next == 0 {
					want.Status, want.NextAttempt = session.DeliveryFailed, time.Time{}
				}
				checkStored(t, db, want)
			}

			log := logs.String()
			for _, leak := range []string{m.CallbackSecret, strings.TrimPrefix(m.CallbackSecret, session.CallbackSecretPrefix), token} {
				if strings.Contains(log, leak) {
					t.Errorf("log holds %q:\n%s", leak, log)
				}
			}
			for _, want := range []string{d.WebhookID, strings.TrimPrefix(rc.URL, "http://"), `"attempt":4`, `"delivery":"failed"`} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %s:\n%s", want, log)
				}
			}
		})
	}
}

// TestTimeout: a receiver that does not answer within Timeout is a failed
// attempt with no status code, retried on schedule.
func TestTimeout(t *testing.T) {
	db := mustOpen(t)
	hung, release := hang()
	rc := newReceiver(t, hung)
	t.Cleanup(release)
	m := addMerchant(t, db)
	d := addDelivery(t, db, m.ID, rc.URL+"/cb", t0)
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Timeout: 200 * time.Millisecond, Now: func() time.Time { return t0 }})

	flush(t, disp)
	rc.next(t)
	checkStored(t, db, after(d, session.DeliveryPending, 1, t0, 0, t0.Add(10*time.Minute)))
}

// TestSlowHostDoesNotDelayOthers: a receiver that hangs holds only PerHost
// workers; a delivery to another receiver, due after more deliveries to the
// hung one than one read of the outbox returns, is delivered while the hung
// one still hangs, and the hung host never gets more than PerHost requests
// at once.
func TestSlowHostDoesNotDelayOthers(t *testing.T) {
	db := newObserved(t)
	hung, release := hang()
	slow := newReceiver(t, hung)
	t.Cleanup(release)
	fast := newReceiver(t, answer(http.StatusOK))
	m := addMerchant(t, db.DB)
	slowOnes := addDeliveries(t, db.DB, m.ID, slow.URL+"/cb", t0, 70)
	f := addDelivery(t, db.DB, m.ID, fast.URL+"/cb", t0)
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Workers: 2, PerHost: 1, Now: func() time.Time { return t0 }})

	flushed := make(chan error, 1)
	go func() { flushed <- disp.Flush(context.Background()) }()

	slow.next(t)
	if got := db.waitRecorded(t, f.WebhookID); got.Status != session.DeliveryDelivered {
		t.Errorf("fast delivery %s, want delivered", got.Status)
	}
	noMore(t, slow)

	release()
	select {
	case err := <-flushed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatalf("Flush did not return within %s of the release", deadline)
	}
	for _, d := range slowOnes {
		checkStored(t, db.DB, after(d, session.DeliveryDelivered, 1, t0, http.StatusOK, time.Time{}))
	}
	if got, want := len(slow.got), len(slowOnes)-1; got != want {
		t.Errorf("slow receiver got %d more requests, want %d", got, want)
	}
}

// TestGuard: with the guard on, addresses that are (or resolve to)
// loopback are refused at connect time and the delivery is blocked at once;
// with AllowPrivate the same URLs are delivered, so the refusal is the
// guard's.
func TestGuard(t *testing.T) {
	rc := newReceiver(t, answer(http.StatusOK))
	port := rc.port(t)
	for _, tc := range []struct{ name, url string }{
		{"127.0.0.1", "http://127.0.0.1:" + port + "/cb"},
		{"localhost", "http://localhost:" + port + "/cb"},
		{"IPv4-mapped", "http://[::ffff:127.0.0.1]:" + port + "/cb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, allow := range []bool{false, true} {
				db := mustOpen(t)
				clk := &clock{now: t0}
				m := addMerchant(t, db)
				d := addDelivery(t, db, m.ID, tc.url, t0)
				disp := callbacks.New(db, callbacks.Config{AllowPrivate: allow, Now: clk.Now})

				flush(t, disp)
				if allow {
					checkRequest(t, rc.next(t), d, m.CallbackSecret, "Brite Callback", t0)
					checkStored(t, db, after(d, session.DeliveryDelivered, 1, t0, http.StatusOK, time.Time{}))
					continue
				}
				noMore(t, rc)
				want := after(d, session.DeliveryBlocked, 1, t0, 0, time.Time{})
				checkStored(t, db, want)
				clk.Set(t0.Add(24 * time.Hour))
				flush(t, disp)
				noMore(t, rc)
				checkStored(t, db, want)
			}
		})
	}
}

// TestUnsignable: a delivery whose merchant is unknown, or whose secret
// holds no key, is failed at once without a request.
func TestUnsignable(t *testing.T) {
	for _, tc := range []struct{ name, secret string }{
		{"unknown merchant", ""},
		{"no prefix", base64.StdEncoding.EncodeToString([]byte("key"))},
		{"not base64", session.CallbackSecretPrefix + "!!!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := mustOpen(t)
			rc := newReceiver(t, answer(http.StatusOK))
			merchantID := newID()
			if tc.secret != "" {
				m := &session.Merchant{ID: merchantID, Name: "Shop", PublicKey: "pk_" + merchantID, CallbackSecret: tc.secret, Created: t0}
				if err := db.CreateMerchant(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
			d := addDelivery(t, db, merchantID, rc.URL+"/cb", t0)
			disp := callbacks.New(db, callbacks.Config{AllowPrivate: true, Now: func() time.Time { return t0 }})

			flush(t, disp)
			noMore(t, rc)
			checkStored(t, db, after(d, session.DeliveryFailed, 1, t0, 0, time.Time{}))
		})
	}
}

// runDispatcher starts disp.Run; stop cancels its context, and done gets
// what it returns.
func runDispatcher(tb testing.TB, disp *callbacks.Dispatcher) (stop func(), done <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- disp.Run(ctx) }()
	tb.Cleanup(cancel)
	return cancel, errc
}

func waitRun(tb testing.TB, done <-chan error) {
	tb.Helper()
	select {
	case err := <-done:
		if err != nil {
			tb.Errorf("Run: %v", err)
		}
	case <-time.After(deadline):
		tb.Fatalf("Run did not return within %s", deadline)
	}
}

// TestRunNotify: with the real clock, a delivery saved while Run runs is
// sent on Notify, signed with a timestamp the library accepts as current;
// Run returns when its context is cancelled.
func TestRunNotify(t *testing.T) {
	db := newObserved(t)
	rc := newReceiver(t, answer(http.StatusOK))
	m := addMerchant(t, db.DB)
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true})
	stop, done := runDispatcher(t, disp)

	d := addDelivery(t, db.DB, m.ID, rc.URL+"/cb", time.Now())
	disp.Notify()
	checkRequest(t, rc.next(t), d, m.CallbackSecret, "Brite Callback", time.Time{})
	if got := db.waitRecorded(t, d.WebhookID); got.Status != session.DeliveryDelivered {
		t.Errorf("delivery %s, want delivered", got.Status)
	}

	stop()
	waitRun(t, done)
}

// TestRunWaitsForAttemptInFlight: an attempt in flight is not started again
// by a concurrent Flush, and cancelling Run neither aborts it nor lets Run
// return before it is recorded.
func TestRunWaitsForAttemptInFlight(t *testing.T) {
	db := newObserved(t)
	hung, release := hang()
	rc := newReceiver(t, hung)
	t.Cleanup(release)
	m := addMerchant(t, db.DB)
	disp := callbacks.New(db, callbacks.Config{AllowPrivate: true})
	stop, done := runDispatcher(t, disp)

	d := addDelivery(t, db.DB, m.ID, rc.URL+"/cb", time.Now())
	disp.Notify()
	rc.next(t)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := disp.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with an attempt hanging: %v, want %v", err, context.DeadlineExceeded)
	}
	noMore(t, rc)

	stop()
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) with an attempt in flight", err)
	default:
	}
	release()
	waitRun(t, done)
	noMore(t, rc)
	if got := stored(t, db.DB, d); got.Status != session.DeliveryDelivered || got.Attempts != 1 {
		t.Errorf("delivery %s after %d attempts, want delivered after 1", got.Status, got.Attempts)
	}
}
