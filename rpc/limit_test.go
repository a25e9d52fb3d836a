package rpc

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestAdmit holds the only slot with a request that blocks, and checks the
// next one is refused with -32029 on /rpc and 429 on /api.
func TestAdmit(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{})
	h := admit(1, 10*time.Millisecond, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/rpc", nil))
	}()
	<-entered

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/rpc", nil))
	var r struct{ Error struct{ Code int } }
	json.Unmarshal(w.Body.Bytes(), &r)
	if w.Code != http.StatusOK || r.Error.Code != CodeRateLimited || w.Header().Get("Retry-After") == "" {
		t.Errorf("/rpc past the cap: %d %s, want 200 with -32029", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/session.get", nil))
	if w.Code != http.StatusTooManyRequests || !bytes.Contains(w.Body.Bytes(), []byte(`"RateLimited"`)) {
		t.Errorf("/api past the cap: %d %s, want 429 RateLimited", w.Code, w.Body)
	}
	close(release)
	<-done
	// The slot is free again.
	go func() { <-entered }()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/rpc", nil))
	if w.Body.Len() != 0 {
		t.Errorf("after the slot freed: %s, want the handler to run", w.Body)
	}
}

func TestMerchantRateLimit(t *testing.T) {
	l := newMerchantLimits(2)
	if !l.allow("a") || !l.allow("a") {
		t.Fatal("the first two calls of a second were refused")
	}
	if l.allow("a") {
		t.Error("a third call within the burst was allowed")
	}
	if !l.allow("b") {
		t.Error("another merchant was limited by the first's calls")
	}
	if off := newMerchantLimits(0); !off.allow("a") {
		t.Error("no limit refused a call")
	}
}

// TestReadAllTakesMemoryAsBytesCome: a body declared as 1 MiB of which
// only a few bytes arrive costs the bytes, not the declared length, so
// idle clients declaring large bodies cannot make the server hold
// --max-body each; a short declared body is read into one buffer.
func TestReadAllTakesMemoryAsBytesCome(t *testing.T) {
	read := func(declared int64, sent string) (uint64, error) {
		r := httptest.NewRequest(http.MethodPost, "/rpc", strings.NewReader(sent))
		r.ContentLength = declared
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := readAll(httptest.NewRecorder(), r, 1<<20)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	// (A server's body reader then fails on the missing bytes; this one
	// just ends.)
	if n, _ := read(1<<20, `{"jsonrpc":"2.0"`); n > 256<<10 {
		t.Errorf("a 1 MiB body of which 16 bytes came: %d bytes allocated, want far less than 1 MiB", n)
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"session.get","params":{"id":"x"}}`
	r := httptest.NewRequest(http.MethodPost, "/rpc", strings.NewReader(body))
	got, err := readAll(httptest.NewRecorder(), r, 1<<20)
	if err != nil || string(got) != body {
		t.Errorf("a whole short body: %q, %v", got, err)
	}
}
