package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// newClient returns the client of one target: up to c keep-alive
// connections, all kept idle between requests. It ignores proxy settings
// of the environment, since a proxy would be measured too.
func newClient(c int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        c,
		MaxIdleConnsPerHost: c,
		MaxConnsPerHost:     c,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}}
}

// target is a JSON-RPC endpoint under load.
type target struct {
	label  string
	url    string // of the /rpc endpoint
	client *http.Client
	auth   string // Authorization header of measured requests, or ""
	prefix []byte // the measured request object up to its params
}

// requestPrefix returns a request object for method up to its params, so
// that a request is the prefix, the params and the id.
func requestPrefix(method string) []byte {
	m, _ := json.Marshal(method) // a string always marshals
	return fmt.Appendf(nil, `{"jsonrpc":"2.0","method":%s,"params":`, m)
}

// body returns the request object with prefix, params and id.
func body(prefix, params []byte, id uint64) []byte {
	b := make([]byte, 0, len(prefix)+len(params)+32)
	b = append(b, prefix...)
	b = append(b, params...)
	b = append(b, `,"id":`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, '}')
}

// rpcError is a JSON-RPC error object (API.md section 1).
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    struct {
		ErrorName    string `json:"error_name"`
		ErrorMessage string `json:"error_message"`
	} `json:"data"`
}

// Error gives the code, the error name and the server's message, quoted.
func (e *rpcError) Error() string {
	s := strconv.Itoa(e.Code)
	if e.Data.ErrorName != "" {
		s += " " + e.Data.ErrorName
	}
	s += ": " + strconv.Quote(e.Message)
	if e.Data.ErrorMessage != "" && e.Data.ErrorMessage != e.Message {
		s += " (" + strconv.Quote(e.Data.ErrorMessage) + ")"
	}
	return s
}

// reply is a JSON-RPC response object.
type reply struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

// post sends one request object and returns the body of a 200 answer in
// buf.
func (t *target) post(ctx context.Context, req []byte, auth string, buf *bytes.Buffer) error {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(req))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	resp, err := t.client.Do(r)
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(buf.Bytes()))
	}
	return nil
}

// call sends one measured request and reports why it failed, or nil.
func (t *target) call(ctx context.Context, req []byte, id uint64, buf *bytes.Buffer) error {
	if err := t.post(ctx, req, t.auth, buf); err != nil {
		return err
	}
	// Only the top level matters, but the whole body is checked to be
	// JSON: a truncated answer is a failure.
	var r struct {
		ID    json.RawMessage `json:"id"`
		Error *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return fmt.Errorf("not a JSON-RPC response: %v: %s", err, snippet(buf.Bytes()))
	}
	if r.Error != nil {
		return r.Error
	}
	if want := strconv.FormatUint(id, 10); string(r.ID) != want {
		return fmt.Errorf("response id %s, want %s", r.ID, want)
	}
	return nil
}

// callResult makes one unmeasured call with the merchant's bearer (when
// auth is set on t) and decodes its result into res.
func (t *target) callResult(ctx context.Context, method string, params []byte, res any) error {
	var buf bytes.Buffer
	if err := t.post(ctx, body(requestPrefix(method), params, 1), t.auth, &buf); err != nil {
		return err
	}
	var r reply
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		return fmt.Errorf("not a JSON-RPC response: %v: %s", err, snippet(buf.Bytes()))
	}
	if r.Error != nil {
		return r.Error
	}
	if r.Result == nil {
		return errors.New("response without result")
	}
	if err := json.Unmarshal(r.Result, res); err != nil {
		return fmt.Errorf("decode result: %v", err)
	}
	return nil
}

// snippet returns the start of a body for an error message.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return strconv.Quote(s)
}

// heapMetric is the Prometheus gauge of the Go heap in use.
const heapMetric = "go_memstats_heap_inuse_bytes"

// heapReading is the server's heap in use, if it reports it.
type heapReading struct {
	bytes float64
	ok    bool
}

// heap reads heapMetric from /metrics. A missing endpoint or gauge is not
// an error; only failing to reach the server is.
func (b *bench) heap(ctx context.Context) (heapReading, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.cfg.URL+"/metrics", nil)
	if err != nil {
		return heapReading{}, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return heapReading{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return heapReading{}, nil
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == heapMetric {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return heapReading{}, nil
			}
			return heapReading{bytes: v, ok: true}, nil
		}
	}
	// A read error leaves the gauge unknown, which is reported as such.
	return heapReading{}, nil
}
