package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A load makes the work of each phase of a measured run. A run is one
// phase unless its work runs out before the time is up (client.transition).
type load interface {
	// phase returns the work of the next phase, which may last up to left
	// at about rate requests/s (0 for the first phase). It is called with
	// the clock stopped, so it may do setup.
	phase(ctx context.Context, rate float64, left time.Duration) (work, error)
	// forBaseline returns the load for the baseline: the same requests, with
	// whatever setup needs made up locally.
	forBaseline() load
}

// work is what the workers of one phase draw their requests from. Both
// methods are safe for concurrent use.
type work interface {
	// take returns the params of the next request and the walk it moves
	// (or nil), or ok false when there is nothing left to do in the phase
	// or ctx is done.
	take(ctx context.Context) (params []byte, w *walk, ok bool)
	// give hands back w (when not nil) after its request, saying whether
	// the request succeeded.
	give(w *walk, ok bool)
}

// newLoad returns the load of b's method, per Run's documentation.
func (b *bench) newLoad() (load, error) {
	m := b.cfg.Method
	if key := setupKey(m); key != "" {
		return &cycle{b: b, key: key}, nil
	}
	if m == "client.transition" {
		return &walks{b: b, create: b.createTokens}, nil
	}
	if b.cfg.Params != nil {
		return fixed(b.cfg.Params), nil
	}
	switch m {
	case "session.create_deposit", "session.create_withdrawal":
		return fixed(depositParams), nil
	case "session.create":
		return fixed(`{"type":"deposit","amount":"10.00","country_id":"se","merchant_reference":"bench"}`), nil
	case "session.create_recurring_payment":
		// At least tomorrow UTC; the day after stays valid across midnight.
		start := time.Now().UTC().AddDate(0, 0, 2).Format(time.DateOnly)
		return fixed(`{"amount":"10.00","country_id":"se","merchant_reference":"bench","requested_start_date":"` + start + `"}`), nil
	case "session.create_bank_account_selection", "session.create_authentication":
		return fixed(`{"country_id":"se","merchant_reference":"bench"}`), nil
	case "merchant.authorize":
		pk, secret, _ := splitMerchant(b.cfg.Merchant)
		p, err := json.Marshal(map[string]string{"public_key": pk, "secret": secret})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		return fixed(p), nil
	}
	return fixed(`{}`), nil
}

// setupKey returns the param naming a session in requests of method when
// the method reads sessions made by setup, else "".
func setupKey(method string) string {
	switch method {
	case "session.get", "session.state":
		return "id"
	case "client.get", "session.get_by_token":
		return "token"
	}
	return ""
}

// fixed is a load whose every request has the same params.
type fixed []byte

func (f fixed) phase(context.Context, float64, time.Duration) (work, error) { return f, nil }
func (f fixed) forBaseline() load                                           { return f }
func (f fixed) take(context.Context) ([]byte, *walk, bool)                  { return f, nil, true }
func (f fixed) give(*walk, bool)                                            {}

// cycle is a load that names the sessions made by setup in turn.
type cycle struct {
	b      *bench
	key    string   // "id" or "token"
	params [][]byte // made by the first phase
	next   atomic.Uint64
}

func (c *cycle) phase(ctx context.Context, _ float64, _ time.Duration) (work, error) {
	if c.params != nil {
		return c, nil
	}
	made, err := c.b.create(ctx, c.b.cfg.Setup)
	if err != nil {
		return nil, err
	}
	c.params = make([][]byte, len(made))
	for i, s := range made {
		v := s.ID
		if c.key == "token" {
			v = s.Token
		}
		p, err := json.Marshal(map[string]string{c.key: v})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		c.params[i] = p
	}
	return c, nil
}

// forBaseline sends the baseline the very same params.
func (c *cycle) forBaseline() load { return &cycle{b: c.b, key: c.key, params: c.params} }

func (c *cycle) take(context.Context) ([]byte, *walk, bool) {
	i := c.next.Add(1) - 1
	return c.params[i%uint64(len(c.params))], nil, true
}

func (c *cycle) give(*walk, bool) {}

// depositPath is the states a deposit session passes on its way to
// STATE_COMPLETED; each client.transition request makes one step.
var depositPath = [...]int{0, 1, 2, 3, 4, 5, 8, 9, 12}

// maxBatch caps the sessions made at once for client.transition.
const maxBatch = 100000

// walks is the load of client.transition: sessions walked along
// depositPath, created in batches with the clock stopped.
type walks struct {
	b      *bench
	create func(ctx context.Context, n int) ([]string, error) // JSON-quoted tokens
}

func (l *walks) phase(ctx context.Context, rate float64, left time.Duration) (work, error) {
	n := l.size(rate, left)
	tokens, err := l.create(ctx, n)
	if err != nil {
		return nil, err
	}
	q := &queue{walks: make(chan *walk, len(tokens)), empty: make(chan struct{})}
	q.live.Store(int64(len(tokens)))
	for _, t := range tokens {
		q.walks <- &walk{token: t}
	}
	if len(tokens) == 0 {
		close(q.empty)
	}
	return q, nil
}

// size returns how many sessions the next phase needs: enough for every
// worker to hold one and another wait, at least cfg.Setup, and, once a rate
// is known, enough for the rest of the time with a quarter to spare.
func (l *walks) size(rate float64, left time.Duration) int {
	n := max(l.b.cfg.Setup, 2*l.b.cfg.Concurrency)
	moves := float64(len(depositPath) - 1)
	if need := math.Ceil(rate * left.Seconds() * 1.25 / moves); need > float64(n) {
		n = int(min(need, maxBatch))
	}
	return n
}

// forBaseline makes up tokens shaped like sessiond's.
func (l *walks) forBaseline() load {
	n := l.b.tokenLen
	if n == 0 {
		n = 43
	}
	return &walks{b: l.b, create: func(_ context.Context, count int) ([]string, error) {
		return madeUpTokens(count, n), nil
	}}
}

// madeUpTokens returns count JSON-quoted random url-safe tokens of n chars.
func madeUpTokens(count, n int) []string {
	raw := make([]byte, base64.RawURLEncoding.DecodedLen(n)+1)
	out := make([]string, count)
	for i := range out {
		rand.Read(raw) // never fails (crypto/rand)
		out[i] = strconv.Quote(base64.RawURLEncoding.EncodeToString(raw)[:n])
	}
	return out
}

// walk is one session on its way along depositPath.
type walk struct {
	token string // JSON-quoted
	step  int    // index in depositPath of the session's state
}

// params returns the params of the move to the next state.
func (w *walk) params() []byte {
	next := depositPath[w.step+1]
	b := make([]byte, 0, 96+len(w.token))
	b = append(b, `{"token":`...)
	b = append(b, w.token...)
	b = append(b, `,"state":`...)
	b = strconv.AppendInt(b, int64(next), 10)
	if next == 1 {
		b = append(b, `,"bank":{"id":"testbank","name":"Test Bank"}`...)
	}
	return append(b, '}')
}

// queue holds the walks of one phase that no worker is moving. A walk is
// in the queue or with exactly one worker, so no two requests for one
// session are ever in flight at once.
type queue struct {
	walks chan *walk    // capacity: every walk of the phase
	live  atomic.Int64  // walks not yet at the end of depositPath or failed
	empty chan struct{} // closed when live reaches 0
}

func (q *queue) take(ctx context.Context) ([]byte, *walk, bool) {
	select {
	case w := <-q.walks:
		return w.params(), w, true
	case <-q.empty:
	case <-ctx.Done():
	}
	return nil, nil, false
}

// give puts w back unless it has reached STATE_COMPLETED or its move failed:
// after a failure its state is unknown, so it is dropped.
func (q *queue) give(w *walk, ok bool) {
	if ok {
		w.step++
		if w.step < len(depositPath)-1 {
			q.walks <- w // never blocks: the channel holds every walk
			return
		}
	}
	if q.live.Add(-1) == 0 {
		close(q.empty)
	}
}

// created is the result of a create call.
type created struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// createTokens creates n deposit sessions and returns their tokens,
// JSON-quoted.
func (b *bench) createTokens(ctx context.Context, n int) ([]string, error) {
	made, err := b.create(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(made))
	for i, s := range made {
		out[i] = strconv.Quote(s.Token)
	}
	return out, nil
}

// create makes n deposit sessions with cfg.Concurrency calls at a time,
// writing progress to cfg.Progress.
func (b *bench) create(ctx context.Context, n int) ([]created, error) {
	start := time.Now()
	made := make([]created, n)
	t := &target{url: b.cfg.URL + "/rpc", client: b.client, auth: b.bearer}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var next, done atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	stop := b.ticker(func(elapsed time.Duration) string {
		return fmt.Sprintf("setup: %d/%d sessions, %s", done.Load(), n, elapsed.Round(time.Second))
	})
	for range min(b.cfg.Concurrency, n) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				if err := t.callResult(ctx, "session.create_deposit", []byte(depositParams), &made[i]); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				if made[i].ID == "" || made[i].Token == "" {
					once.Do(func() { firstErr = fmt.Errorf("result without id or token"); cancel() })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	stop()
	if firstErr != nil {
		return nil, fmt.Errorf("bench: setup: session.create_deposit: %w", firstErr)
	}
	elapsed := time.Since(start)
	b.setupSessions += n
	b.setupBatches++
	b.setupTime += elapsed
	if n > 0 {
		b.tokenLen = len(made[0].Token)
	}
	if b.cfg.Progress != nil {
		fmt.Fprintf(b.cfg.Progress, "setup: %d sessions in %s\n", n, elapsed.Round(time.Millisecond))
	}
	return made, nil
}

// ticker writes line(elapsed) to cfg.Progress every progressEvery until
// the returned stop is called; stop returns once nothing more is written.
func (b *bench) ticker(line func(elapsed time.Duration) string) (stop func()) {
	if b.cfg.Progress == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				// Progress is best effort; a failed write is not the
				// benchmark's failure.
				fmt.Fprintln(b.cfg.Progress, line(time.Since(start)))
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}
