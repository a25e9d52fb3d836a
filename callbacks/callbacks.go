// Package callbacks delivers the callbacks recorded in the outbox: one HTTP
// POST per delivery in Brite's shape, signed the Standard Webhooks way with
// the merchant's callback secret, retried at offsets from the first
// attempt, with a bounded number of attempts in flight overall and per
// host. Unless told otherwise it refuses, at connect time, to reach
// loopback, private and other non-public addresses.
package callbacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
)

const (
	// maxWait is the longest Run sleeps between looks at the outbox, so
	// that a jump of the clock delays nothing by more.
	maxWait = time.Second
	// maxDrain is how much of a response body is read, only so that the
	// connection can be reused.
	maxDrain = 4 << 10
	// scanBatch is how many due deliveries a look reads at first.
	scanBatch = 64
)

// Outbox is what a Dispatcher needs of the store: the pending deliveries, a
// way to record each attempt, and the merchants' callback secrets.
type Outbox interface {
	// DueDeliveries returns up to limit pending deliveries whose next
	// attempt is at or before now, earliest first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*session.Delivery, error)
	// UpdateDelivery replaces the stored delivery that has d's webhook id;
	// session.ErrNotFound if there is none.
	UpdateDelivery(ctx context.Context, d *session.Delivery) error
	// NextDelivery returns when the earliest pending delivery is due, and
	// false if none is pending.
	NextDelivery(ctx context.Context) (time.Time, bool, error)
	// Merchant returns the merchant with the id; session.ErrNotFound.
	Merchant(ctx context.Context, id string) (*session.Merchant, error)
}

// Config tunes a Dispatcher. The zero Config gives Brite's behaviour.
type Config struct {
	// Retry are the offsets from the first attempt at which failed
	// attempts are repeated; after the last the delivery is failed. Nil
	// means 10m, 30m, 60m; empty means no retries.
	Retry []time.Duration
	// Timeout bounds one attempt, from dialling to the end of reading
	// the response; 0 means 10s.
	Timeout time.Duration
	// UserAgent is sent with every callback; "" means "Brite Callback".
	UserAgent string
	// AllowPrivate turns off the guard that refuses to connect to
	// loopback, private, link-local, CGNAT, unspecified and multicast
	// addresses.
	AllowPrivate bool
	// Workers caps the attempts in flight; 0 means 16.
	Workers int
	// PerHost caps the attempts in flight to one URL host (with its port),
	// so that one slow merchant cannot take every worker; 0 means 4.
	PerHost int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives a line per failed attempt; the zero Logger discards.
	Log zerolog.Logger
	// OnAttempt, if set, is told the outcome of every attempt: a
	// delivery status, or "retry" for a failed attempt with retries left.
	OnAttempt func(outcome string)
}

// Dispatcher sends the deliveries of an Outbox. Make one with New, then
// call Run to send in the background, or Flush to send what is due now.
type Dispatcher struct {
	outbox Outbox
	cfg    Config
	client *http.Client
	wake   chan struct{} // buffered: Notify never blocks

	mu       sync.Mutex
	inflight map[string]bool // webhook ids being attempted
	perHost  map[string]int  // attempts in flight per URL host
	ended    chan struct{}   // closed, and replaced, whenever an attempt ends
}

// New returns a Dispatcher that reads and records deliveries in o.
func New(o Outbox, cfg Config) *Dispatcher {
	if cfg.Retry == nil {
		cfg.Retry = []time.Duration{10 * time.Minute, 30 * time.Minute, 60 * time.Minute}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "Brite Callback"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = 4
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout}
	if !cfg.AllowPrivate {
		dialer.Control = guard
	}
	transport := &http.Transport{
		// A proxy would connect on our behalf, past the guard, so the
		// environment's proxy settings are ignored.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: cfg.Timeout,
		MaxIdleConnsPerHost: cfg.PerHost,
		IdleConnTimeout:     90 * time.Second,
	}
	return &Dispatcher{
		outbox: o,
		cfg:    cfg,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a redirect is a failed attempt
			},
		},
		wake:     make(chan struct{}, 1),
		inflight: make(map[string]bool),
		perHost:  make(map[string]int),
		ended:    make(chan struct{}),
	}
}

// Notify tells a running Run that deliveries were saved; it never blocks.
func (d *Dispatcher) Notify() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sends deliveries as they fall due until ctx is done, then waits for
// the attempts in flight to be recorded and returns nil. It looks at the
// outbox at once, on Notify, when an attempt ends, when the earliest
// pending delivery falls due, and at least every second. A slow endpoint
// holds only its own slots: Run never waits for an attempt to end before
// starting others. Store errors are logged and the look is repeated.
func (d *Dispatcher) Run(ctx context.Context) error {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	for {
		now := d.cfg.Now()
		if err := d.start(ctx, now, nil); err != nil {
			d.cfg.Log.Error().Err(err).Msg("cannot start callback deliveries")
		}
		timer.Reset(d.wait(ctx, now))
		select {
		case <-ctx.Done():
			for inflight, ended := d.busy(); inflight; inflight, ended = d.busy() {
				<-ended
			}
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// wait returns how long Run may sleep after a look at now: until the
// earliest pending delivery falls due, and no longer than maxWait.
func (d *Dispatcher) wait(ctx context.Context, now time.Time) time.Duration {
	next, ok, err := d.outbox.NextDelivery(ctx)
	if err != nil {
		d.cfg.Log.Error().Err(err).Msg("cannot read the next callback delivery")
		return maxWait
	}
	// An earliest delivery already due is in flight or waits for a free
	// slot; the end of an attempt wakes Run.
	if !ok || !next.After(now) {
		return maxWait
	}
	return min(next.Sub(now), maxWait)
}

// Flush makes one attempt at each delivery due at Now(), as many at once
// as Workers and PerHost allow, and returns once every attempt in flight
// (those of a running Run included) is recorded. It returns ctx's error if
// ctx is done first, and an error if the outbox cannot be read. An attempt
// that cannot be recorded is logged; it will be made again.
func (d *Dispatcher) Flush(ctx context.Context) error {
	now := d.cfg.Now()
	tried := make(map[string]bool)
	for {
		if err := d.start(ctx, now, tried); err != nil {
			return err
		}
		// Nothing in flight means start found no slot taken, so every
		// delivery due has been tried.
		inflight, ended := d.busy()
		if !inflight {
			return nil
		}
		select {
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// busy reports whether attempts are in flight, and returns a channel that
// is closed when the next one ends.
func (d *Dispatcher) busy() (bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight) > 0, d.ended
}

// start begins an attempt at each delivery due at now that is neither in
// flight nor in tried (if given), as long as Workers and PerHost allow,
// and adds the deliveries it starts to tried.
func (d *Dispatcher) start(ctx context.Context, now time.Time, tried map[string]bool) error {
	secrets := make(map[string]string) // merchant id → callback secret, for this look
	for limit := scanBatch; ; limit *= 2 {
		due, err := d.outbox.DueDeliveries(ctx, now, limit)
		if err != nil {
			return fmt.Errorf("callbacks: read due deliveries: %w", err)
		}
		for _, dl := range due {
			host := hostOf(dl.URL)
			ok, full := d.claim(dl.WebhookID, host, tried)
			if full {
				return nil
			}
			if !ok {
				continue
			}
			secret, known := secrets[dl.MerchantID]
			if !known {
				if secret, err = d.secret(ctx, dl.MerchantID); err != nil {
					d.release(dl.WebhookID, host)
					return err
				}
				secrets[dl.MerchantID] = secret
			}
			// The attempt outlives a cancelled ctx: Run waits for it.
			go d.attempt(context.WithoutCancel(ctx), dl, host, secret)
		}
		// A full batch may be all skipped (in flight, or its host busy):
		// read further.
		if len(due) < limit {
			return nil
		}
	}
}

// claim marks a delivery in flight unless it is already, or is in tried,
// or its host has PerHost attempts in flight; full reports that Workers
// attempts are in flight.
func (d *Dispatcher) claim(id, host string, tried map[string]bool) (ok, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case len(d.inflight) >= d.cfg.Workers:
		return false, true
	case d.inflight[id] || tried[id] || d.perHost[host] >= d.cfg.PerHost:
		return false, false
	}
	d.inflight[id] = true
	d.perHost[host]++
	if tried != nil {
		tried[id] = true
	}
	return true, false
}

// release undoes claim and wakes Flush and Run.
func (d *Dispatcher) release(id, host string) {
	d.mu.Lock()
	delete(d.inflight, id)
	if d.perHost[host]--; d.perHost[host] == 0 {
		delete(d.perHost, host)
	}
	close(d.ended)
	d.ended = make(chan struct{})
	d.mu.Unlock()
	d.Notify()
}

// secret returns the callback secret of a merchant, or "" if the merchant
// is not stored (its deliveries can never be signed).
func (d *Dispatcher) secret(ctx context.Context, merchantID string) (string, error) {
	m, err := d.outbox.Merchant(ctx, merchantID)
	if errors.Is(err, session.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("callbacks: merchant %s: %w", merchantID, err)
	}
	return m.CallbackSecret, nil
}

// attempt sends a claimed delivery once, records the outcome and releases
// the claim. Recording comes first, so that no look sees the delivery due
// again before its outcome is stored.
func (d *Dispatcher) attempt(ctx context.Context, dl *session.Delivery, host, secret string) {
	defer d.release(dl.WebhookID, host)
	now := d.cfg.Now()
	code, err := d.post(ctx, dl, secret, now)
	d.settle(dl, now, code, err)
	d.logAttempt(dl, host)
	if d.cfg.OnAttempt != nil {
		outcome := string(dl.Status)
		if dl.Status == session.DeliveryPending {
			outcome = "retry"
		}
		d.cfg.OnAttempt(outcome)
	}
	if err := d.outbox.UpdateDelivery(ctx, dl); err != nil {
		d.cfg.Log.Error().Err(err).Str("webhook_id", dl.WebhookID).Msg("cannot record callback attempt; it will be made again")
	}
}

// errUnsigned fails a delivery for good: without a valid callback secret
// it can never be signed.
var errUnsigned = errors.New("callbacks: no valid callback secret")

// post sends the callback of dl, signed for now, and returns the response
// status.
func (d *Dispatcher) post(ctx context.Context, dl *session.Delivery, secret string, now time.Time) (int, error) {
	body := dl.Body()
	sig, err := Sign(secret, dl.WebhookID, now, body)
	if err != nil {
		return 0, errUnsigned
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.cfg.UserAgent)
	req.Header.Set("webhook-id", dl.WebhookID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// The status is the answer; an error reading the rest changes nothing.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.StatusCode, nil
}

// settle applies the outcome of an attempt made at now to dl: a 2xx
// delivers it, a 410 makes it gone, a refused address blocks it; anything
// else schedules the next retry, or fails it after the last.
func (d *Dispatcher) settle(dl *session.Delivery, now time.Time, code int, err error) {
	if dl.Attempts == 0 {
		dl.FirstAttempt = now
	}
	dl.Attempts++
	dl.LastStatusCode, dl.LastError, dl.NextAttempt = code, d.lastError(err), time.Time{}
	switch {
	case err == nil && code >= 200 && code < 300:
		dl.Status = session.DeliveryDelivered
	case err == nil && code == http.StatusGone:
		dl.Status = session.DeliveryGone
	case errors.Is(err, errBlocked):
		dl.Status = session.DeliveryBlocked
	case errors.Is(err, errUnsigned) || dl.Attempts > len(d.cfg.Retry):
		dl.Status = session.DeliveryFailed
	default:
		dl.NextAttempt = dl.FirstAttempt.Add(d.cfg.Retry[dl.Attempts-1])
	}
}

// lastError is the short text recorded for a failed attempt. It leaves out
// the URL, which may carry a merchant's token.
func (d *Dispatcher) lastError(err error) string {
	var ue *url.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ue) && ue.Timeout():
		return fmt.Sprintf("no answer within %s", d.cfg.Timeout)
	case errors.As(err, &ue):
		return ue.Err.Error()
	}
	return err.Error()
}

// logAttempt logs a settled attempt: a failed one at info while retries
// are left, at warn once the delivery is given up.
func (d *Dispatcher) logAttempt(dl *session.Delivery, host string) {
	ev := d.cfg.Log.Warn()
	switch dl.Status {
	case session.DeliveryDelivered:
		ev = d.cfg.Log.Debug()
	case session.DeliveryPending:
		ev = d.cfg.Log.Info().Time("next_attempt", dl.NextAttempt)
	}
	ev.Str("webhook_id", dl.WebhookID).
		Str("host", host).
		Int("attempt", dl.Attempts).
		Int("status_code", dl.LastStatusCode).
		Str("error", dl.LastError).
		Str("delivery", string(dl.Status)).
		Msg("callback attempt")
}

// hostOf returns the host (with port) of a callback URL, by which attempts
// in flight are counted; "" if the URL does not parse.
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}
