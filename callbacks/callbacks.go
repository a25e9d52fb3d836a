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
	// maxWait is the longest Run sleeps between claims, so that a jump of
	// the clock delays nothing by more.
	maxWait = time.Second
	// maxDrain is how much of a response body is read, only so that the
	// connection can be reused.
	maxDrain = 4 << 10
	// leaseExtra is how much longer than Timeout a claim is held: the time
	// an outcome may take to be recorded.
	leaseExtra = time.Minute
	// Backoff of recording an outcome that could not be recorded.
	recordBackoffMin = 50 * time.Millisecond
	recordBackoffMax = 5 * time.Second
)

// Outbox is what a Dispatcher needs of the store: claims on due
// deliveries, a way to record each attempt, and the merchants' callback
// secrets.
type Outbox interface {
	// ClaimDeliveries claims due deliveries as c says; see session.Store.
	ClaimDeliveries(ctx context.Context, c session.Claim) (session.Claimed, error)
	// RecordAttempt stores the outcome of an attempt at a claimed delivery
	// and ends the claim; session.ErrClaimLost if another owner holds it.
	RecordAttempt(ctx context.Context, owner string, d *session.Delivery) error
	// ReleaseDeliveries ends claims without an attempt.
	ReleaseDeliveries(ctx context.Context, owner string, webhookIDs []string) error
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
	// Owner names this dispatcher in the store's claims; "" means
	// session.NewOwner().
	Owner string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives a line per failed attempt; the zero Logger discards.
	Log zerolog.Logger
	// OnAttempt, if set, is told the outcome of every attempt: a
	// delivery status, or "retry" for a failed attempt with retries left.
	OnAttempt func(outcome string)
	// Stamp is the clock of webhook-timestamp, which receivers check
	// against their own; nil means Now. A sandbox whose Now runs ahead
	// stamps with the wall clock.
	Stamp func() time.Time
	// Faults, if set, fail attempts a sandbox asked to fail, unsent;
	// Journal, if set, records every attempt.
	Faults  *Faults
	Journal *Journal
}

// Dispatcher sends the deliveries of an Outbox. Make one with New, then
// call Run to send in the background, or Flush to send what is due now.
//
// It claims due deliveries in the store, host by host, only as many as
// there are free slots (Workers in all, PerHost per host): the store's
// per-host due index is the queue, so an attempt costs one claim share and
// one recorded outcome whatever the backlog. A delivery is claimed until
// its outcome is recorded, so it is never posted twice while it is held.
type Dispatcher struct {
	outbox Outbox
	cfg    Config
	client *http.Client
	wake   chan struct{} // buffered: Notify never blocks

	// attempts is the context of every attempt; Abort cancels it.
	attempts context.Context
	abort    context.CancelFunc

	mu       sync.Mutex
	inflight map[string]bool // webhook ids held: being posted or recorded
	posting  int             // POSTs in flight
	perHost  map[string]int  // POSTs in flight per URL host
	ended    chan struct{}   // closed, and replaced, whenever an attempt ends
	stuck    error           // why outcomes or claims fail now; nil when they work
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
	if cfg.Owner == "" {
		cfg.Owner = session.NewOwner()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Stamp == nil {
		cfg.Stamp = cfg.Now
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
	attempts, abort := context.WithCancel(context.Background())
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
		attempts: attempts,
		abort:    abort,
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

// Follow wakes Run for every committed change that carries deliveries,
// taken from sub, until ctx is done or sub is closed.
func (d *Dispatcher) Follow(ctx context.Context, sub *session.Subscription) {
	sub.Follow(ctx, func(c *session.Change) {
		if len(c.Deliveries) > 0 {
			d.Notify()
		}
	}, func(int) { d.Notify() })
}

// Stuck returns why the dispatcher cannot make progress now (outcomes or
// claims fail to be written or read), or nil.
func (d *Dispatcher) Stuck() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stuck
}

func (d *Dispatcher) setStuck(err error) {
	d.mu.Lock()
	d.stuck = err
	d.mu.Unlock()
}

// Abort cancels every attempt in flight: each is released unrecorded, to
// be made again later (after a restart, or by another owner). Run and
// Flush return once the attempts have ended. For a shutdown that must not
// wait for slow receivers.
func (d *Dispatcher) Abort() { d.abort() }

// Run sends deliveries as they fall due until ctx is done, then waits for
// the attempts in flight to end (Abort ends them at once) and returns nil.
// It claims at once, on Notify, when an attempt ends, when the earliest
// unclaimed delivery falls due, and at least every second. A slow endpoint
// holds only its own slots. Store errors are logged once per spell and the
// claim is repeated.
func (d *Dispatcher) Run(ctx context.Context) error {
	timer := time.NewTimer(maxWait)
	defer timer.Stop()
	var failing bool
	for {
		now := d.cfg.Now()
		next, err := d.start(ctx, now)
		wait := maxWait
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				d.cfg.Log.Error().Err(err).Msg("cannot claim callback deliveries")
			}
			failing = true
			d.setStuck(err)
		case err == nil:
			if failing {
				d.setStuck(nil)
				failing = false
			}
			if !next.IsZero() && next.After(now) {
				wait = min(next.Sub(now), maxWait)
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			d.waitIdle(nil)
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// waitIdle waits until no attempt is held, or done is closed.
func (d *Dispatcher) waitIdle(done <-chan struct{}) bool {
	for inflight, ended := d.busy(); inflight; inflight, ended = d.busy() {
		select {
		case <-ended:
		case <-done:
			return false
		}
	}
	return true
}

// Flush makes one attempt at each delivery due at Now(), as many at once
// as Workers and PerHost allow, and returns once every attempt in flight
// (those of a running Run included) is recorded. It returns ctx's error if
// ctx is done first, and an error if the outbox cannot be read.
func (d *Dispatcher) Flush(ctx context.Context) error {
	now := d.cfg.Now()
	for {
		// An attempt held while the claim runs keeps its host's other
		// deliveries out of the claim, even if it ends a moment later;
		// and an attempt the claim starts may end before the look below.
		// So every delivery due has been tried only when nothing was held
		// before the claim, nothing is held after it, and no attempt
		// ended in between.
		heldBefore, ended := d.busy()
		if _, err := d.start(ctx, now); err != nil {
			return err
		}
		heldAfter, next := d.busy()
		if !heldBefore && !heldAfter && !isClosed(ended) {
			return nil
		}
		if !heldAfter {
			continue
		}
		select {
		case <-next:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// busy reports whether attempts are held, and returns a channel that is
// closed when the next one ends.
func (d *Dispatcher) busy() (bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.inflight) > 0, d.ended
}

// start claims as many due deliveries as there are free slots and begins
// an attempt at each; it returns when the earliest delivery it could not
// claim falls due.
func (d *Dispatcher) start(ctx context.Context, now time.Time) (time.Time, error) {
	d.mu.Lock()
	// A slot is free once its POST has ended; the outcome is recorded
	// after, sharing commits with the others, so the receiver's answer and
	// not the fsync paces the attempts. While outcomes cannot be written,
	// those held pile up to maxHeld and claiming stops.
	room := min(d.cfg.Workers-d.posting, d.maxHeld()-len(d.inflight))
	busy := make(map[string]int, len(d.perHost))
	for h, n := range d.perHost {
		busy[h] = n
	}
	d.mu.Unlock()
	if room <= 0 || d.attempts.Err() != nil {
		return time.Time{}, nil
	}
	claimed, err := d.outbox.ClaimDeliveries(ctx, session.Claim{
		Owner: d.cfg.Owner, Now: now, Lease: d.cfg.Timeout + leaseExtra,
		Limit: room, PerHost: d.cfg.PerHost, Busy: busy,
	})
	for _, dl := range claimed.Damaged {
		// Logged here, once: the store has set it aside for good.
		d.cfg.Log.Error().Str("webhook_id", dl.WebhookID).Str("error", dl.LastError).Msg("callback delivery cannot be read; set aside as failed")
		if d.cfg.OnAttempt != nil {
			d.cfg.OnAttempt(string(session.DeliveryFailed))
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("callbacks: claim due deliveries: %w", err)
	}
	secrets := make(map[string]string) // merchant id → callback secret, for this claim
	var release []string
	for _, dl := range claimed.Deliveries {
		host := dl.Host()
		if !d.hold(dl.WebhookID, host) {
			// Held already, its outcome being recorded: a lease that ran
			// out while the store could not write. Never posted twice.
			continue
		}
		secret, known := secrets[dl.MerchantID]
		if !known {
			if secret, err = d.secret(ctx, dl.MerchantID); err != nil {
				d.posted(host)
				d.unhold(dl.WebhookID)
				release = append(release, dl.WebhookID)
				continue
			}
			secrets[dl.MerchantID] = secret
		}
		go d.attempt(dl, host, secret)
	}
	if len(release) > 0 {
		if rerr := d.outbox.ReleaseDeliveries(context.WithoutCancel(ctx), d.cfg.Owner, release); rerr != nil {
			d.cfg.Log.Error().Err(rerr).Msg("cannot release callback deliveries")
		}
		return claimed.Next, err
	}
	return claimed.Next, nil
}

// maxHeld caps the deliveries held at once: being posted, or posted and
// waiting for their outcome to be recorded.
func (d *Dispatcher) maxHeld() int { return 4 * d.cfg.Workers }

// hold marks a delivery held and its POST in flight, unless it is held
// already.
func (d *Dispatcher) hold(id, host string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inflight[id] {
		return false
	}
	d.inflight[id] = true
	d.posting++
	d.perHost[host]++
	return true
}

// posted frees the POST slot taken by hold, and wakes Run.
func (d *Dispatcher) posted(host string) {
	d.mu.Lock()
	d.posting--
	if d.perHost[host]--; d.perHost[host] <= 0 {
		delete(d.perHost, host)
	}
	d.mu.Unlock()
	d.Notify()
}

// unhold lets a delivery go once its outcome is recorded (or given up),
// and wakes Flush and Run.
func (d *Dispatcher) unhold(id string) {
	d.mu.Lock()
	delete(d.inflight, id)
	close(d.ended)
	d.ended = make(chan struct{})
	d.mu.Unlock()
	d.Notify()
}

// secret returns the callback secrets of a merchant, space-separated
// (the new and the old one during a rotation's overlap), or "" if the
// merchant is not stored (its deliveries can never be signed).
func (d *Dispatcher) secret(ctx context.Context, merchantID string) (string, error) {
	m, err := d.outbox.Merchant(ctx, merchantID)
	if errors.Is(err, session.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("callbacks: merchant %s: %w", merchantID, err)
	}
	return strings.Join(m.CallbackSecrets(d.cfg.Now()), " "), nil
}

// attempt sends a claimed delivery once and records the outcome, then
// lets the delivery go. An outcome that cannot be recorded is recorded
// again after a backoff, never posted again; an attempt cut off by Abort
// is released unrecorded.
func (d *Dispatcher) attempt(dl *session.Delivery, host, secret string) {
	defer d.unhold(dl.WebhookID)
	ctx := d.attempts
	now, stamp := d.cfg.Now(), d.cfg.Stamp()
	f, faulty := d.cfg.Faults.take(dl)
	var code int
	var err error
	if faulty {
		code, err = injected(f)
	} else {
		code, err = d.post(ctx, dl, secret, stamp)
	}
	d.posted(host)
	if ctx.Err() != nil {
		if rerr := d.outbox.ReleaseDeliveries(context.Background(), d.cfg.Owner, []string{dl.WebhookID}); rerr != nil {
			d.cfg.Log.Error().Err(rerr).Str("webhook_id", dl.WebhookID).Msg("cannot release callback delivery")
		}
		return
	}
	d.settle(dl, now, code, err)
	if faulty && dl.LastError == "" {
		dl.LastError = fmt.Sprintf("%s: %d (not sent)", errInjected, code)
	}
	d.journal(dl, secret, now, stamp, faulty)
	d.logAttempt(dl, host)
	if d.cfg.OnAttempt != nil {
		outcome := string(dl.Status)
		if dl.Status == session.DeliveryPending {
			outcome = "retry"
		}
		d.cfg.OnAttempt(outcome)
	}
	d.record(ctx, dl)
}

// record stores the outcome of an attempt, retrying with a growing backoff
// while the store cannot write it. The claim holds the delivery meanwhile.
func (d *Dispatcher) record(ctx context.Context, dl *session.Delivery) {
	backoff := recordBackoffMin
	failed := false
	for {
		err := d.outbox.RecordAttempt(context.Background(), d.cfg.Owner, dl)
		switch {
		case err == nil:
			if failed {
				d.setStuck(nil)
			}
			return
		case errors.Is(err, session.ErrClaimLost), errors.Is(err, session.ErrNotFound):
			d.cfg.Log.Warn().Err(err).Str("webhook_id", dl.WebhookID).Msg("callback attempt not recorded: the delivery is no longer ours")
			return
		}
		if !failed {
			d.cfg.Log.Error().Err(err).Str("webhook_id", dl.WebhookID).Msg("cannot record callback attempt; retrying the write, not the callback")
			failed = true
		}
		d.setStuck(err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			// Shutting down: the delivery stays pending in the store and
			// is attempted again after the restart.
			return
		}
		backoff = min(2*backoff, recordBackoffMax)
	}
}

// errUnsigned fails a delivery for good: without a valid callback secret
// it can never be signed.
var errUnsigned = errors.New("callbacks: no valid callback secret")

// post sends the callback of dl, signed for now, and returns the response
// status.
func (d *Dispatcher) post(ctx context.Context, dl *session.Delivery, secret string, now time.Time) (int, error) {
	body := dl.Body()
	// Standard Webhooks: several signatures, space-separated, one per
	// secret in use.
	var sigs []string
	for _, sec := range strings.Fields(secret) {
		sig, err := Sign(sec, dl.WebhookID, now, body)
		if err != nil {
			return 0, errUnsigned
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return 0, errUnsigned
	}
	sig := strings.Join(sigs, " ")
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
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errBlocked):
		return errBlocked.Error()
	case errors.As(err, &ue) && ue.Timeout():
		return fmt.Sprintf("no answer within %s", d.cfg.Timeout)
	// Neither the addresses a hostname resolved to nor the resolver's are
	// shown: they are not the merchant's to see.
	case errors.As(err, &dnsErr):
		return "lookup " + dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &opErr) && opErr.Err != nil:
		return opErr.Op + ": " + opErr.Err.Error()
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
