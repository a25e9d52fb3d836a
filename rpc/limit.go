package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
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

// readFirst reads a request's whole body before next runs, so that a
// request takes one of admit's slots only once its body is in: a client
// that sends its body slowly, or not at all, holds nothing but its own
// connection, and that for at most BodyTimeout. A declared length over
// MaxBody is refused at once, without waiting for the body.
func (s *Server) readFirst(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > s.cfg.MaxBody {
			refuseBody(w, r, http.StatusRequestEntityTooLarge, errInvalidRequest("request body larger than the limit"))
			return
		}
		rc := http.NewResponseController(w)
		rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) // unsupported only by test recorders
		body, err := readAll(w, r, s.cfg.MaxBody)
		rc.SetReadDeadline(time.Time{})
		switch {
		case err == nil:
		case isTooBig(err):
			refuseBody(w, r, http.StatusRequestEntityTooLarge, errInvalidRequest("request body larger than the limit"))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			refuseBody(w, r, http.StatusRequestTimeout, errInvalidRequest("the request body did not arrive in time"))
			return
		case err != nil:
			refuseBody(w, r, http.StatusBadRequest, errInvalidRequest("could not read the request body"))
			return
		}
		rb := &bufferedBody{b: body}
		rb.Reset(body)
		r.Body = rb
		next.ServeHTTP(w, r)
	})
}

// preallocBody is the longest declared body readAll makes room for before
// it arrives; a longer one takes memory as its bytes come, so a client
// that declares a large body and sends none costs next to nothing.
const preallocBody = 64 << 10

// readAll reads r's body, of at most max bytes: a short body of a known
// length into a buffer of that size at once.
func readAll(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= max && n <= preallocBody { // readFirst refused longer ones
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, max))
}

func isTooBig(err error) bool {
	var tooBig *http.MaxBytesError
	return errors.As(err, &tooBig)
}

// bufferedBody is a request body that readFirst has read whole: handlers take
// its bytes instead of reading them a second time.
type bufferedBody struct {
	bytes.Reader
	b []byte
}

func (*bufferedBody) Close() error { return nil }

// refuseBody answers a request whose body was not accepted, in its
// endpoint's style, and closes the connection, whose unread body would
// otherwise be read as the next request.
func refuseBody(w http.ResponseWriter, r *http.Request, status int, e *rpcError) {
	w.Header().Set("Connection", "close")
	if r.URL.Path == "/rpc" {
		writeJSON(w, status, &response{err: e.rpc})
		return
	}
	writeJSON(w, apiStatus(status), e.data)
}

// errResponseTooLarge answers the entries of a batch (or a single request)
// whose results would take the answer past MaxResponse.
func errResponseTooLarge() *rpcError {
	return errInvalidRequest("the answer would be larger than the limit (--max-response); send fewer requests per batch")
}

// spend counts n bytes of results against the caller's MaxResponse and
// reports whether they still fit.
func (c *caller) spend(n int) bool {
	c.spent += int64(n)
	return c.spent <= c.s.cfg.MaxResponse
}

// preEncoded is a result that is already compact JSON, served as is.
type preEncoded []byte

// discoverResult is the OpenRPC document, compacted once: rpc.discover
// costs no encoding, and every answer shares these bytes.
var discoverResult = func() preEncoded {
	var b bytes.Buffer
	if err := json.Compact(&b, openRPC); err != nil {
		panic("rpc: openrpc.json is not valid JSON: " + err.Error())
	}
	return preEncoded(b.Bytes())
}()

// encodeResult returns the JSON of a method's result. The bytes of a
// preEncoded result are shared, so they are capped to their length: an
// append by the writer copies instead of writing into them.
func encodeResult(v any) ([]byte, error) {
	if p, ok := v.(preEncoded); ok {
		return p[:len(p):len(p)], nil
	}
	return json.Marshal(v)
}

// writeBatch writes a batch's answer one entry at a time, so the server
// never holds a second, whole copy of it.
func writeBatch(w http.ResponseWriter, status int, rs []*response) {
	setJSON(w.Header())
	w.WriteHeader(status)
	bp := getBuffer()
	defer putBuffer(bp)
	b := append(*bp, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.appendTo(b)
		w.Write(b)
		b = b[:0]
	}
	w.Write(append(b, "]\n"...))
	*bp = b
}

// appendTo appends r as MarshalJSON encodes it.
func (r *response) appendTo(b []byte) []byte {
	if r.err != nil {
		e, err := r.MarshalJSON()
		if err != nil {
			e, _ = (&response{id: r.id, err: toRPCError(err).rpc}).MarshalJSON()
		}
		return append(b, e...)
	}
	id, result := r.id, r.result
	if id == nil {
		id = nullID
	}
	if result == nil {
		result = nullID
	}
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, result...)
	return append(b, '}')
}

// Answers are put together in buffers that are used again, up to
// maxPooled bytes; larger ones are left to the collector.
const maxPooled = 64 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func getBuffer() *[]byte { return buffers.Get().(*[]byte) }

func putBuffer(bp *[]byte) {
	if cap(*bp) <= maxPooled {
		*bp = (*bp)[:0]
		buffers.Put(bp)
	}
}

// jsonType is the Content-Type of every JSON answer, shared: net/http
// only reads a header's values.
var jsonType = []string{"application/json"}

func setJSON(h http.Header) { h["Content-Type"] = jsonType }

// apiStatus is the status of an /api failure that HTTP alone would answer
// with status: Brite answers 401, 404, 429 and 500 as they are and every
// other failure with 400 (API.md section 7), so a body too large, too slow
// or of the wrong type is a 400 there too, told apart by its error_name.
func apiStatus(status int) int {
	switch status {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusTooManyRequests, http.StatusInternalServerError:
		return status
	}
	return http.StatusBadRequest
}
