package rpc

import (
	"net/http"
	"sync"
	"time"

	"github.com/sessiond/sessiond/session"
	"golang.org/x/time/rate"
)

// errRateLimited is the answer past --max-inflight or --rate-limit.
var errRateLimited = session.Errorf(session.CodeRateLimited, session.NameRateLimited, "too many requests; retry shortly")

// admit bounds the requests being served at once: past the limit a request
// waits up to wait for a slot, then is refused with -32029 (HTTP 429 on
// /api), so a burst queues briefly instead of piling up memory.
func admit(limit int, wait time.Duration, next http.Handler) http.Handler {
	if limit <= 0 {
		return next
	}
	slots := make(chan struct{}, limit)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
		default:
			t := time.NewTimer(wait)
			select {
			case slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				refuse(w, r)
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		defer func() { <-slots }()
		next.ServeHTTP(w, r)
	})
}

// refuse answers a request that was not admitted, in its endpoint's style.
func refuse(w http.ResponseWriter, r *http.Request) {
	e := toRPCError(errRateLimited)
	w.Header().Set("Retry-After", "1")
	if r.URL.Path == "/rpc" {
		writeJSON(w, http.StatusOK, &response{err: e.rpc})
		return
	}
	writeJSON(w, e.status, e.data)
}

// merchantLimits holds a token bucket per merchant: rate per second, with
// a burst of one second's worth. A nil *merchantLimits allows everything.
type merchantLimits struct {
	rate float64
	mu   sync.Mutex
	m    map[string]*rate.Limiter
}

func newMerchantLimits(perSecond float64) *merchantLimits {
	if perSecond <= 0 {
		return nil
	}
	return &merchantLimits{rate: perSecond, m: map[string]*rate.Limiter{}}
}

func (l *merchantLimits) allow(merchantID string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	lim := l.m[merchantID]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(l.rate), max(1, int(l.rate)))
		l.m[merchantID] = lim
	}
	l.mu.Unlock()
	return lim.Allow()
}
