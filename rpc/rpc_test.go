package rpc_test

// The conformance suite of the JSON-RPC 2.0 transport (API.md sections 1,
// 2, 3, 4 and 7). Most of it is data: rpc/testdata/*.txt holds scripted
// request → response exchanges, replayed over a real HTTP server on a real
// bbolt database, in the manner of go-ethereum's rpc tests. The Go tests
// below add what a script cannot say: concurrency, the clock, and faults.
//
// # The case format
//
// Lines before the first case are a comment. A case is
//
//	## name of the case
//	skip: reason        (optional: the case is skipped with this reason)
//	http-only: reason   (optional: not replayed over WebSocket, for this reason)
//	ready: false        (optional: the server has not been made ready)
//	# a comment (only here, before the case's first exchange)
//
//	--> POST /rpc
//	Content-Type: application/json
//	Authorization: Bearer {{token}}
//
//	{"jsonrpc":"2.0","id":1,"method":"session.state","params":{"id":"{{session_id}}"}}
//	<-- 200
//	Content-Type: application/json
//	contains "id":1
//
//	{"jsonrpc":"2.0","id":1,"result":{...}}
//
// with one or more exchanges (--> request, <-- expected response). The
// request head is the method, the path and the headers; a blank line, then
// the body, up to the "<--" line. The response head is the status, the
// headers it must have, and `contains TEXT` lines: the raw body must
// contain TEXT byte for byte. Then a blank line and the expected body, up
// to the next "-->" or "##". No expected body means the body must be empty;
// the body (any) means it is not checked.
//
// Set SESSIOND_RUN_SKIPPED=1 to run the skipped cases too (to see whether
// the bugs they mark are fixed).
//
// Every case runs on a fresh server and database with a fresh fixture,
// whose values fill the {{name}} placeholders of requests and expectations
// (see mustFixture). {{pad-to:N}} in a request pads the body with spaces to
// N bytes. An expected body is JSON; numbers are compared as written, so
// 50.00 does not match 50. A string value that is one of these matchers
// matches a value of the response instead of being compared with it:
//
//	"{{any}}"          any value, null included (the member must be present)
//	"{{any-string}}"   any string
//	"{{any-number}}"   any number
//	"{{uuid}}"         a UUID in the canonical lowercase form
//	"{{re:EXPR}}"      a string that matches the regular expression EXPR
//	"{{time}}"         a number of Unix seconds equal to the server's clock
//	"{{time:+30m}}"    the same, offset by a Go duration
//
// The top-level array of a batch response may come in any order: it is
// matched against the expected array as a multiset.
//
// Besides its expectation, every response is checked against the rules that
// hold for all of them: the JSON-RPC response shape, Brite's error data, the
// id echoed byte for byte, and no internal error in the server's log.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/rpc"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// The limits of the test server, small so that cases can cross them.
const (
	testMaxBody   = 4096
	testMaxBatch  = 8
	testPublicURL = "https://sessiond.example"
)

func testConfig() rpc.Config {
	return rpc.Config{PublicURL: testPublicURL, MaxBody: testMaxBody, MaxBatch: testMaxBatch}
}

// ---------------------------------------------------------------------------
// The server harness.

// testServer is a sessiond transport on a real database in a temp dir,
// served over real HTTP, with a clock and a random source the test drives.
type testServer struct {
	URL    string
	Srv    *rpc.Server
	Svc    *session.Service
	Clock  *fakeClock
	Random *faultyRandom
	HTTP   *http.Client
	log    *logBuffer
}

// mustServer starts a server with cfg wired as main's serve does
// (rpc.NewHub following a session.Feed → store.Open → session.NewService → rpc.New → Handler; no
// background workers, no callbacks delivery), and stops it and
// closes the database when the test ends. The server is not ready until
// the test calls SetReady(true), as at the start of serve.
func mustServer(tb testing.TB, cfg rpc.Config) *testServer {
	tb.Helper()
	if cfg.Hub == nil {
		cfg.Hub = rpc.NewHub()
	}
	feed := session.NewFeed()
	sub := feed.Subscribe(1 << 12)
	following, stopFollowing := context.WithCancel(context.Background())
	go cfg.Hub.Follow(following, sub)
	tb.Cleanup(stopFollowing)
	db, err := store.Open(filepath.Join(tb.TempDir(), "sessiond.db"), store.Options{Feed: feed})
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	clock := &fakeClock{now: time.Now().UTC().Truncate(time.Millisecond)}
	random := &faultyRandom{}
	svc := session.NewService(db, argon2.IDKey)
	svc.Now, svc.Random = clock.Now, random
	svc.SecretCost = session.SecretCost{MemoryKiB: 64, Passes: 1} // fast tests; the cost is not what they test
	logs := &logBuffer{}
	srv := rpc.New(svc, cfg, zerolog.New(logs))
	hs := httptest.NewServer(srv.Handler())
	tb.Cleanup(func() {
		hs.Close()
		if err := db.Close(); err != nil {
			tb.Errorf("db.Close: %v", err)
		}
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{URL: hs.URL, Srv: srv, Svc: svc, Clock: clock, Random: random, HTTP: hs.Client(), log: logs}
}

// fakeClock is the service's clock; it stands still unless advanced.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// faultyRandom is crypto/rand until a test makes it fail or panic.
type faultyRandom struct{ mode atomic.Int32 }

const (
	randomOK = iota
	randomFails
	randomPanics
)

// secretDetail is in every fault the random source raises; it must never
// reach a client.
const secretDetail = "secret-detail-7f3a"

func (r *faultyRandom) Read(p []byte) (int, error) {
	switch r.mode.Load() {
	case randomFails:
		return 0, errors.New("test: random source failed: " + secretDetail)
	case randomPanics:
		panic("test: random source exploded: " + secretDetail)
	}
	return rand.Read(p)
}

// logBuffer collects the server's log (its first MiB, enough for a test)
// and counts the lines at level error.
type logBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	errors int
}

const maxLog = 1 << 20

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// zerolog writes one line per Write.
	if bytes.Contains(p, []byte(`"level":"error"`)) {
		b.errors++
	}
	if b.buf.Len()+len(p) <= maxLog {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errorCount returns how many lines at level error were logged.
func (b *logBuffer) errorCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errors
}

// errorLines returns the log lines at level error.
func (b *logBuffer) errorLines() []string {
	var out []string
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, `"level":"error"`) {
			out = append(out, line)
		}
	}
	return out
}

// rpcError is a JSON-RPC error object as the wire has it.
type rpcError struct {
	Code    int64          `json:"code"`
	Message string         `json:"message"`
	Data    map[string]any `json:"data"`
}

func (e *rpcError) name() string {
	if e == nil {
		return ""
	}
	s, _ := e.Data["error_name"].(string)
	return s
}

// rawCall POSTs body to /rpc with the bearer (if any) and returns the
// status and the body.
func (ts *testServer) rawCall(tb testing.TB, bearer string, body []byte) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/rpc", bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("POST /rpc: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read response: %v", err)
	}
	return resp.StatusCode, b
}

// call makes one JSON-RPC call and returns its result or its error.
func (ts *testServer) call(tb testing.TB, bearer, method string, params any) (json.RawMessage, *rpcError) {
	tb.Helper()
	p, err := json.Marshal(params)
	if err != nil {
		tb.Fatalf("marshal params: %v", err)
	}
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":1,"method":%q,"params":%s}`, method, p)
	status, b := ts.rawCall(tb, bearer, body)
	if status != http.StatusOK {
		tb.Fatalf("%s: got HTTP %d, want 200; body %s", method, status, b)
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		tb.Fatalf("%s: decode response %s: %v", method, b, err)
	}
	return resp.Result, resp.Error
}

// mustCall makes one JSON-RPC call that must succeed, and decodes its
// result into out (if not nil).
func (ts *testServer) mustCall(tb testing.TB, bearer, method string, params, out any) {
	tb.Helper()
	res, e := ts.call(tb, bearer, method, params)
	if e != nil {
		tb.Fatalf("%s: got error %d %s %v, want a result", method, e.Code, e.name(), e.Data)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			tb.Fatalf("%s: decode result %s: %v", method, res, err)
		}
	}
}

// ---------------------------------------------------------------------------
// The fixture.

// fixture holds the values of the {{name}} placeholders.
type fixture map[string]string

// Credentials of the fixture's merchants.
const (
	alphaKey    = "pk_test_alpha"
	alphaSecret = "sk_test_alpha_0123456789"
	betaKey     = "pk_test_beta"
	betaSecret  = "sk_test_beta_0123456789"
)

// sessionParams are the create params of the fixture's session of merchant
// alpha; the expectations of testdata/sessions.txt depend on them.
var sessionParams = map[string]any{
	"amount":             50,
	"country_id":         "se",
	"locale":             "sv",
	"merchant_reference": "order-1",
	"customer_firstname": "Anna",
	"callbacks":          []any{map[string]any{"url": "https://merchant.example/cb", "session_state": 12}},
	"view_state":         map[string]any{"theme": "dark"},
}

// mustFixture makes, on ts, two merchants (alpha and beta, through the
// service as `sessiond merchant add` does), their access tokens (through
// merchant.authorize over HTTP) and a deposit session of each (through
// session.create_deposit over HTTP). Placeholders:
//
//	public_key, secret, merchant_id     merchant alpha
//	token, refresh_token                alpha's access and refresh tokens
//	session_id, session_token, session_url   alpha's deposit session (sessionParams)
//	other_public_key, other_merchant_id, other_token   merchant beta
//	other_session_id, other_session_token            beta's deposit session
//	random_uuid                         a UUID no session has
//	today, tomorrow                     dates (UTC) of the server's clock
//	public_url                          the configured public URL
func mustFixture(tb testing.TB, ts *testServer) fixture {
	tb.Helper()
	ctx := context.Background()
	alpha, _, err := ts.Svc.AddMerchant(ctx, "alpha", session.Credentials{PublicKey: alphaKey, Secret: alphaSecret})
	if err != nil {
		tb.Fatalf("AddMerchant alpha: %v", err)
	}
	beta, _, _, err := ts.Svc.EnsureMerchant(ctx, session.Credentials{PublicKey: betaKey, Secret: betaSecret})
	if err != nil {
		tb.Fatalf("EnsureMerchant beta: %v", err)
	}
	type tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	var ta, tbeta tokens
	ts.mustCall(tb, "", "merchant.authorize", map[string]string{"public_key": alphaKey, "secret": alphaSecret}, &ta)
	ts.mustCall(tb, "", "merchant.authorize", map[string]string{"public_key": betaKey, "secret": betaSecret}, &tbeta)

	type created struct{ ID, Token, URL string }
	var sa, sb created
	ts.mustCall(tb, ta.AccessToken, "session.create_deposit", sessionParams, &sa)
	ts.mustCall(tb, tbeta.AccessToken, "session.create_deposit", map[string]any{"amount": "10.5", "country_id": "fi"}, &sb)

	now := ts.Clock.Now().UTC()
	return fixture{
		"public_key":          alphaKey,
		"secret":              alphaSecret,
		"merchant_id":         alpha.ID,
		"token":               ta.AccessToken,
		"refresh_token":       ta.RefreshToken,
		"session_id":          sa.ID,
		"session_token":       sa.Token,
		"session_url":         sa.URL,
		"other_public_key":    betaKey,
		"other_merchant_id":   beta.ID,
		"other_token":         tbeta.AccessToken,
		"other_session_id":    sb.ID,
		"other_session_token": sb.Token,
		"random_uuid":         randomUUID(tb),
		"today":               now.Format("2006-01-02"),
		"tomorrow":            now.AddDate(0, 0, 1).Format("2006-01-02"),
		"public_url":          testPublicURL,
	}
}

func randomUUID(tb testing.TB) string {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		tb.Fatalf("random: %v", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var (
	placeholderRE = regexp.MustCompile(`\{\{([a-z_]+)\}\}`)
	padRE         = regexp.MustCompile(`\{\{pad-to:([0-9]+)\}\}`)
)

// fill replaces the fixture's placeholders in s; others are left as they
// are.
func (fx fixture) fill(s string) string {
	return placeholderRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := fx[m[2:len(m)-2]]; ok {
			return v
		}
		return m
	})
}

// fillRequest fills a request's text and pads it; a placeholder left over
// is a mistake in the case.
func (fx fixture) fillRequest(s string) (string, error) {
	s = fx.fill(s)
	if m := padRE.FindStringSubmatchIndex(s); m != nil {
		n, _ := strconv.Atoi(s[m[2]:m[3]])
		rest := len(s) - (m[1] - m[0])
		if n < rest {
			return "", fmt.Errorf("pad-to:%d: the body is already %d bytes", n, rest)
		}
		s = s[:m[0]] + strings.Repeat(" ", n-rest) + s[m[1]:]
	}
	if i := strings.Index(s, "{{"); i >= 0 && strings.Contains(s[i:], "}}") {
		return "", fmt.Errorf("unknown placeholder in %q", s[i:min(len(s), i+40)])
	}
	return s, nil
}

// ---------------------------------------------------------------------------
// The case files.

type header struct{ name, value string }

// exchange is one request and the response it must get.
type exchange struct {
	line       int
	method     string
	path       string
	header     []header
	body       string
	status     int
	wantHeader []header
	contains   []string
	wantBody   string // "" means empty; anyBody means not checked
}

const anyBody = "(any)"

type testCase struct {
	name      string
	line      int
	skip      string
	httpOnly  string
	ready     bool
	strict    bool // serve with StrictParams
	exchanges []*exchange
}

func isBoundary(line string) bool {
	return strings.HasPrefix(line, "--> ") || strings.HasPrefix(line, "## ")
}

// parseCases reads a case file (see the package comment).
func parseCases(data string) ([]*testCase, error) {
	lines := strings.Split(strings.ReplaceAll(data, "\r\n", "\n"), "\n")
	var cases []*testCase
	seen := map[string]bool{}
	var c *testCase
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "## "):
			c = &testCase{name: strings.TrimSpace(line[3:]), line: i + 1, ready: true}
			if seen[c.name] {
				return nil, fmt.Errorf("line %d: a second case named %q", i+1, c.name)
			}
			seen[c.name] = true
			cases = append(cases, c)
			i++
		case c == nil, strings.TrimSpace(line) == "", strings.HasPrefix(line, "#"):
			i++
		case strings.HasPrefix(line, "--> "):
			ex, next, err := parseExchange(lines, i)
			if err != nil {
				return nil, err
			}
			c.exchanges = append(c.exchanges, ex)
			i = next
		case strings.HasPrefix(line, "skip:") && len(c.exchanges) == 0:
			c.skip = strings.TrimSpace(strings.TrimPrefix(line, "skip:"))
			i++
		case strings.HasPrefix(line, "http-only:") && len(c.exchanges) == 0:
			c.httpOnly = strings.TrimSpace(strings.TrimPrefix(line, "http-only:"))
			i++
		case strings.HasPrefix(line, "strict-params:") && len(c.exchanges) == 0:
			v, err := strconv.ParseBool(strings.TrimSpace(strings.TrimPrefix(line, "strict-params:")))
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", i+1, err)
			}
			c.strict = v
			i++
		case strings.HasPrefix(line, "ready:") && len(c.exchanges) == 0:
			v, err := strconv.ParseBool(strings.TrimSpace(strings.TrimPrefix(line, "ready:")))
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", i+1, err)
			}
			c.ready = v
			i++
		default:
			return nil, fmt.Errorf("line %d: unexpected %q", i+1, line)
		}
	}
	for _, c := range cases {
		if len(c.exchanges) == 0 {
			return nil, fmt.Errorf("line %d: case %q has no exchange", c.line, c.name)
		}
	}
	return cases, nil
}

func parseHeader(line string) (header, bool) {
	name, value, ok := strings.Cut(line, ":")
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return header{}, false
	}
	return header{name, strings.TrimSpace(value)}, true
}

func parseExchange(lines []string, i int) (*exchange, int, error) {
	ex := &exchange{line: i + 1}
	f := strings.Fields(strings.TrimPrefix(lines[i], "--> "))
	if len(f) != 2 {
		return nil, 0, fmt.Errorf("line %d: want --> METHOD PATH", i+1)
	}
	ex.method, ex.path = f[0], f[1]
	i++
	for ; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !strings.HasPrefix(lines[i], "<-- "); i++ {
		h, ok := parseHeader(lines[i])
		if !ok {
			return nil, 0, fmt.Errorf("line %d: want a header, got %q", i+1, lines[i])
		}
		ex.header = append(ex.header, h)
	}
	var body []string
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "<-- "); i++ {
		if strings.HasPrefix(lines[i], "## ") {
			return nil, 0, fmt.Errorf("line %d: the exchange of line %d has no <-- response", i+1, ex.line)
		}
		body = append(body, lines[i])
	}
	if i == len(lines) {
		return nil, 0, fmt.Errorf("line %d: the exchange has no <-- response", ex.line)
	}
	ex.body = strings.TrimSpace(strings.Join(body, "\n"))
	status, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(lines[i], "<-- ")))
	if err != nil {
		return nil, 0, fmt.Errorf("line %d: want <-- STATUS: %v", i+1, err)
	}
	ex.status = status
	i++
	for ; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !isBoundary(lines[i]); i++ {
		if text, ok := strings.CutPrefix(lines[i], "contains "); ok {
			ex.contains = append(ex.contains, text)
			continue
		}
		h, ok := parseHeader(lines[i])
		if !ok {
			return nil, 0, fmt.Errorf("line %d: want a header or contains, got %q", i+1, lines[i])
		}
		ex.wantHeader = append(ex.wantHeader, h)
	}
	body = body[:0]
	for ; i < len(lines) && !isBoundary(lines[i]); i++ {
		body = append(body, lines[i])
	}
	ex.wantBody = strings.TrimSpace(strings.Join(body, "\n"))
	return ex, i, nil
}

func loadCases(tb testing.TB, file string) []*testCase {
	tb.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	cases, err := parseCases(string(b))
	if err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return cases
}

func caseFiles(tb testing.TB) []string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("no case files in testdata (%v)", err)
	}
	return files
}

// ---------------------------------------------------------------------------
// Replaying the cases.

// TestConformance replays every case of rpc/testdata/*.txt.
func TestConformance(t *testing.T) {
	for _, file := range caseFiles(t) {
		cases := loadCases(t, file)
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					if c.skip != "" && os.Getenv("SESSIOND_RUN_SKIPPED") == "" {
						t.Skipf("%s:%d: %s", file, c.line, c.skip)
					}
					cfg := testConfig()
					cfg.StrictParams = c.strict
					ts := mustServer(t, cfg)
					fx := mustFixture(t, ts)
					ts.Srv.SetReady(c.ready)
					for _, ex := range c.exchanges {
						ts.replay(t, fx, file, ex)
					}
					if lines := ts.log.errorLines(); len(lines) > 0 {
						t.Errorf("%s:%d: the server logged errors:\n%s", file, c.line, strings.Join(lines, "\n"))
					}
				})
			}
		})
	}
}

func (ts *testServer) replay(t *testing.T, fx fixture, file string, ex *exchange) {
	t.Helper()
	at := fmt.Sprintf("%s:%d", file, ex.line)
	body, err := fx.fillRequest(ex.body)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	path, err := fx.fillRequest(ex.path)
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	req, err := http.NewRequest(ex.method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatalf("%s: %v", at, err)
	}
	if body == "" {
		req.Body = http.NoBody
	}
	for _, h := range ex.header {
		v, err := fx.fillRequest(h.value)
		if err != nil {
			t.Fatalf("%s: %v", at, err)
		}
		req.Header.Add(h.name, v)
	}
	resp, err := ts.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", at, ex.method, ex.path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: read body: %v", at, err)
	}

	if resp.StatusCode != ex.status {
		t.Errorf("%s: got HTTP %d, want %d; body %s", at, resp.StatusCode, ex.status, got)
	}
	for _, h := range ex.wantHeader {
		if g, w := resp.Header.Get(h.name), fx.fill(h.value); g != w {
			t.Errorf("%s: got header %s %q, want %q", at, h.name, g, w)
		}
	}
	for _, text := range ex.contains {
		if w := fx.fill(text); !bytes.Contains(got, []byte(w)) {
			t.Errorf("%s: got body %s, want it to contain %s", at, got, w)
		}
	}
	switch ex.wantBody {
	case anyBody:
	case "":
		if len(got) != 0 {
			t.Errorf("%s: got body %q, want an empty body", at, got)
		}
	default:
		want := fx.fill(ex.wantBody)
		m := &matching{now: ts.Clock.Now(), saved: map[string]string{}}
		if diff, err := m.diff([]byte(want), got); err != nil {
			t.Errorf("%s: %v", at, err)
		} else if diff != "" {
			t.Errorf("%s: response mismatch (-want +got):\n%s\ngot body: %s", at, diff, got)
		}
		for k, v := range m.saved {
			fx[k] = v
		}
	}
	for _, err := range checkWire(ex.method, path, []byte(body), resp, got) {
		t.Errorf("%s: %v\nbody: %s", at, err, got)
	}
}

// ---------------------------------------------------------------------------
// Comparing a response with its expectation.

// matching compares JSON values where the expected one may hold matchers.
type matching struct {
	now   time.Time
	saved map[string]string // values of {{save:NAME}} matchers, for later exchanges
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// matcher returns the matcher a string of an expectation stands for, if
// it is one.
func (m *matching) matcher(s string) (func(any) bool, bool, error) {
	if !strings.HasPrefix(s, "{{") || !strings.HasSuffix(s, "}}") {
		return nil, false, nil
	}
	name, arg, _ := strings.Cut(s[2:len(s)-2], ":")
	switch name {
	case "any":
		return func(any) bool { return true }, true, nil
	case "any-string":
		return func(v any) bool { _, ok := v.(string); return ok }, true, nil
	case "save":
		// {{save:NAME}} matches any string or number and makes it the
		// placeholder {{NAME}} of the case's later exchanges.
		return func(v any) bool {
			switch v := v.(type) {
			case string:
				m.saved[arg] = v
			case json.Number:
				m.saved[arg] = v.String()
			default:
				return false
			}
			return true
		}, true, nil
	case "any-number":
		return func(v any) bool { _, ok := v.(json.Number); return ok }, true, nil
	case "uuid":
		return func(v any) bool { s, ok := v.(string); return ok && uuidRE.MatchString(s) }, true, nil
	case "re":
		re, err := regexp.Compile(arg)
		if err != nil {
			return nil, false, fmt.Errorf("matcher %s: %v", s, err)
		}
		return func(v any) bool { s, ok := v.(string); return ok && re.MatchString(s) }, true, nil
	case "time":
		var off time.Duration
		if arg != "" {
			var err error
			if off, err = time.ParseDuration(arg); err != nil {
				return nil, false, fmt.Errorf("matcher %s: %v", s, err)
			}
		}
		want := float64(m.now.Add(off).UnixMicro()) / 1e6
		return func(v any) bool {
			n, ok := v.(json.Number)
			if !ok {
				return false
			}
			f, err := n.Float64()
			return err == nil && math.Abs(f-want) < 0.001
		}, true, nil
	}
	return nil, false, fmt.Errorf("unknown matcher %s", s)
}

// align returns want with every matcher that matches its counterpart in
// got replaced by that counterpart, so that cmp.Diff shows only the real
// differences.
func (m *matching) align(want, got any) (any, error) {
	switch w := want.(type) {
	case string:
		match, ok, err := m.matcher(w)
		if err != nil || !ok {
			return want, err
		}
		if match(got) {
			return got, nil
		}
		return want, nil
	case map[string]any:
		g, _ := got.(map[string]any)
		out := make(map[string]any, len(w))
		for k, v := range w {
			gv, ok := g[k]
			if !ok {
				out[k] = v
				continue
			}
			a, err := m.align(v, gv)
			if err != nil {
				return nil, err
			}
			out[k] = a
		}
		return out, nil
	case []any:
		g, _ := got.([]any)
		out := make([]any, len(w))
		for i, v := range w {
			if i >= len(g) {
				out[i] = v
				continue
			}
			a, err := m.align(v, g[i])
			if err != nil {
				return nil, err
			}
			out[i] = a
		}
		return out, nil
	}
	return want, nil
}

func (m *matching) matches(want, got any) bool {
	a, err := m.align(want, got)
	return err == nil && cmp.Equal(a, got)
}

// reorder returns got, an array, permuted so that each element sits where
// the expected element it matches is, if there is such an assignment.
func (m *matching) reorder(want, got []any) []any {
	if len(want) != len(got) {
		return got
	}
	used := make([]bool, len(got))
	order := make([]int, len(want))
	var assign func(i int) bool
	assign = func(i int) bool {
		if i == len(want) {
			return true
		}
		for j := range got {
			if !used[j] && m.matches(want[i], got[j]) {
				used[j], order[i] = true, j
				if assign(i + 1) {
					return true
				}
				used[j] = false
			}
		}
		return false
	}
	if !assign(0) {
		return got
	}
	out := make([]any, len(got))
	for i, j := range order {
		out[i] = got[j]
	}
	return out
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// diff compares a response body with its expectation; a top-level array is
// compared as a multiset.
func (m *matching) diff(wantJSON, gotJSON []byte) (string, error) {
	want, err := decodeJSON(wantJSON)
	if err != nil {
		return "", fmt.Errorf("the expectation is not JSON: %v", err)
	}
	got, err := decodeJSON(gotJSON)
	if err != nil {
		return "", fmt.Errorf("got body %q, not JSON: %v", gotJSON, err)
	}
	if w, ok := want.([]any); ok {
		if g, ok := got.([]any); ok {
			got = m.reorder(w, g)
		}
	}
	aligned, err := m.align(want, got)
	if err != nil {
		return "", err
	}
	return cmp.Diff(aligned, got), nil
}

// ---------------------------------------------------------------------------
// The rules every response follows (API.md sections 1 and 7).

// checkWire checks a response against the rules that hold for every
// response of its endpoint, whatever the case expects.
func checkWire(method, path string, reqBody []byte, resp *http.Response, body []byte) []error {
	var errs []error
	jsonBody := len(body) > 0 && resp.StatusCode != http.StatusMethodNotAllowed
	if jsonBody {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			errs = append(errs, fmt.Errorf("got Content-Type %q, want application/json", ct))
		}
	}
	switch {
	case method == http.MethodPost && path == "/rpc":
		switch resp.StatusCode {
		case http.StatusNoContent:
			if len(body) != 0 {
				errs = append(errs, fmt.Errorf("got a body with HTTP 204"))
			}
		case http.StatusOK, http.StatusRequestEntityTooLarge:
			errs = append(errs, checkRPCBody(body)...)
			if resp.StatusCode == http.StatusOK {
				errs = append(errs, checkIDs(reqBody, body)...)
			}
		case http.StatusUnsupportedMediaType:
			if len(body) > 0 {
				errs = append(errs, checkRPCBody(body)...)
			}
		default:
			errs = append(errs, fmt.Errorf("got HTTP %d, want one of 200 204 413 415", resp.StatusCode))
		}
	case method == http.MethodPost && strings.HasPrefix(path, "/api/"):
		if resp.StatusCode != http.StatusOK {
			var data map[string]any
			if err := json.Unmarshal(body, &data); err != nil {
				errs = append(errs, fmt.Errorf("error body is not a JSON object: %v", err))
			} else if err := checkErrorData(data); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// checkRPCBody checks a JSON-RPC response body: one response object, or a
// non-empty array of them.
func checkRPCBody(body []byte) []error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return []error{fmt.Errorf("body is not JSON: %v", err)}
	}
	var objs []any
	switch v := v.(type) {
	case map[string]any:
		objs = []any{v}
	case []any:
		if len(v) == 0 {
			return []error{errors.New("got an empty array")}
		}
		objs = v
	default:
		return []error{fmt.Errorf("got %T, want a response object or an array of them", v)}
	}
	var errs []error
	for _, o := range objs {
		if err := checkResponse(o); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// checkResponse checks one JSON-RPC response object.
func checkResponse(v any) error {
	r, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("got %T in the response, want an object", v)
	}
	for k := range r {
		switch k {
		case "jsonrpc", "id", "result", "error":
		default:
			return fmt.Errorf("response has a member %q", k)
		}
	}
	if r["jsonrpc"] != "2.0" {
		return fmt.Errorf("got jsonrpc %#v, want \"2.0\"", r["jsonrpc"])
	}
	id, ok := r["id"]
	if !ok {
		return errors.New("response has no id")
	}
	switch id.(type) {
	case nil, string, float64:
	default:
		return fmt.Errorf("got id %#v, want a string, a number or null", id)
	}
	_, hasResult := r["result"]
	e, hasError := r["error"]
	if hasResult == hasError {
		return fmt.Errorf("got result %t and error %t, want exactly one", hasResult, hasError)
	}
	if !hasError {
		return nil
	}
	eo, ok := e.(map[string]any)
	if !ok {
		return fmt.Errorf("got error %#v, want an object", e)
	}
	code, ok := eo["code"].(float64)
	if !ok || code != math.Trunc(code) {
		return fmt.Errorf("got error code %#v, want an integer", eo["code"])
	}
	if _, ok := eo["message"].(string); !ok {
		return fmt.Errorf("got error message %#v, want a string", eo["message"])
	}
	data, ok := eo["data"].(map[string]any)
	if !ok {
		return fmt.Errorf("got error data %#v, want an object", eo["data"])
	}
	return checkErrorData(data)
}

// checkErrorData checks Brite's error body: the data of a JSON-RPC error,
// and the body of a failed /api call.
func checkErrorData(d map[string]any) error {
	for k, v := range d {
		switch k {
		case "error_name", "error_message", "field":
			if _, ok := v.(string); !ok {
				return fmt.Errorf("got data.%s %#v, want a string", k, v)
			}
		case "state":
			if v != "APPLICATION_ERROR" {
				return fmt.Errorf("got data.state %#v, want \"APPLICATION_ERROR\"", v)
			}
		default:
			return fmt.Errorf("error data has a member %q", k)
		}
	}
	for _, k := range []string{"error_name", "error_message", "state"} {
		if _, ok := d[k]; !ok {
			return fmt.Errorf("error data has no %s", k)
		}
	}
	return nil
}

// rawMembers decodes a JSON object keeping each member's bytes as sent;
// ok is false if b is not an object.
func rawMembers(b []byte) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// validID reports whether raw is an id the server must echo: a string, a
// number or null.
func validID(raw json.RawMessage) bool {
	return len(raw) > 0 && (raw[0] == '"' || raw[0] == 'n' || raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9')
}

// checkIDs checks that ids are echoed byte for byte: the response to one
// request object has its id (or null, for a request the server could not
// take as valid); each response of a batch has the id of one of its
// requests, or null.
func checkIDs(reqBody, body []byte) []error {
	var errs []error
	req := bytes.TrimSpace(reqBody)
	if len(req) > 0 && req[0] == '{' {
		r, ok := rawMembers(req)
		resp, ok2 := rawMembers(body)
		if !ok || !ok2 {
			return nil
		}
		id, hasID := r["id"]
		if !hasID || !validID(id) {
			if g := string(resp["id"]); g != "null" {
				errs = append(errs, fmt.Errorf("got id %s, want null for a request without a valid id", g))
			}
			return errs
		}
		if g := resp["id"]; !bytes.Equal(g, id) && !(string(g) == "null" && resp["error"] != nil) {
			errs = append(errs, fmt.Errorf("got id %s, want %s byte for byte", g, id))
		}
		return errs
	}
	var reqs, resps []json.RawMessage
	if json.Unmarshal(req, &reqs) != nil || json.Unmarshal(body, &resps) != nil {
		return nil
	}
	sent := map[string]bool{"null": true}
	for _, r := range reqs {
		if m, ok := rawMembers(r); ok && validID(m["id"]) {
			sent[string(m["id"])] = true
		}
	}
	for _, r := range resps {
		m, _ := rawMembers(r)
		if id := string(m["id"]); !sent[id] {
			errs = append(errs, fmt.Errorf("got id %s in a batch response, which no request of the batch has byte for byte", id))
		}
	}
	return errs
}

// ---------------------------------------------------------------------------
// Go tests of what the scripts cannot say.

// TestCasesParse checks that the case files parse and keep to the format.
func TestCasesParse(t *testing.T) {
	total := 0
	for _, file := range caseFiles(t) {
		cases := loadCases(t, file)
		total += len(cases)
		t.Logf("%s: %d cases", file, len(cases))
	}
	if total == 0 {
		t.Fatal("got no cases")
	}
}

type stateResult struct {
	ID        string  `json:"id"`
	State     int     `json:"state"`
	StateName string  `json:"state_name"`
	ErrorCode *string `json:"error_code"`
	Version   int     `json:"version"`
}

// TestConcurrentTransitions sends one move of one session at the same
// version from many clients at once: exactly one applies.
func TestConcurrentTransitions(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)

	const n = 16
	body := fmt.Appendf(nil, `{"jsonrpc":"2.0","id":1,"method":"client.transition","params":{"token":%q,"state":1,"version":1}}`, fx["session_token"])
	type outcome struct {
		status int
		body   []byte
	}
	start := make(chan struct{})
	outcomes := make([]outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, ts.URL+"/rpc", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.HTTP.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Error(err)
			}
			outcomes[i] = outcome{resp.StatusCode, b}
		})
	}
	close(start)
	wg.Wait()

	results := 0
	for i, o := range outcomes {
		if o.status != http.StatusOK {
			t.Errorf("client %d: got HTTP %d, want 200", i, o.status)
			continue
		}
		var r struct {
			Result *stateResult `json:"result"`
			Error  *rpcError    `json:"error"`
		}
		if err := json.Unmarshal(o.body, &r); err != nil {
			t.Errorf("client %d: %v", i, err)
			continue
		}
		switch {
		case r.Result != nil:
			results++
			if r.Result.State != 1 || r.Result.Version != 2 {
				t.Errorf("client %d: got state %d version %d, want state 1 version 2", i, r.Result.State, r.Result.Version)
			}
		case r.Error != nil:
			if name := r.Error.name(); r.Error.Code != rpc.CodeConflict || (name != "VersionConflict" && name != "InvalidStateTransition") {
				t.Errorf("client %d: got error %d %s, want %d VersionConflict or InvalidStateTransition", i, r.Error.Code, name, rpc.CodeConflict)
			}
		default:
			t.Errorf("client %d: got neither result nor error: %s", i, o.body)
		}
	}
	if results != 1 {
		t.Errorf("got %d results, want exactly 1 (and %d conflicts)", results, n-1)
	}
	var st stateResult
	ts.mustCall(t, fx["token"], "session.state", map[string]string{"id": fx["session_id"]}, &st)
	if got, want := st, (stateResult{ID: fx["session_id"], State: 1, StateName: "STATE_AUTHENTICATION_STARTED", Version: 2}); !cmp.Equal(got, want) {
		t.Errorf("session.state after the race: got %+v, want %+v", got, want)
	}
}

// TestNotFoundIndistinguishable checks that another merchant's session or
// transaction gets the very error object that an id nobody has gets
// (API.md section 2), on every method that takes one.
func TestNotFoundIndistinguishable(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)

	// Take beta's session to 5, where it has a transaction.
	for _, st := range []int{1, 2, 3, 4, 5} {
		ts.mustCall(t, "", "client.transition", map[string]any{"token": fx["other_session_token"], "state": st}, nil)
	}
	var other struct {
		TransactionID string `json:"transaction_id"`
	}
	ts.mustCall(t, fx["other_token"], "session.state", map[string]string{"id": fx["other_session_id"]}, &other)
	if other.TransactionID == "" {
		t.Fatal("beta's session at state 5 has no transaction_id")
	}
	// A well-formed token (43 base64url characters) of no session.
	nobodysToken := base64.RawURLEncoding.EncodeToString([]byte(randomUUID(t))[:32])
	tests := []struct {
		method            string
		param             string
		others, nobodys   string
		nobodyDescription string
	}{
		{"session.get", "id", fx["other_session_id"], fx["random_uuid"], "random uuid"},
		{"session.state", "id", fx["other_session_id"], fx["random_uuid"], "random uuid"},
		{"session.callbacks", "id", fx["other_session_id"], fx["random_uuid"], "random uuid"},
		{"session.approve", "id", fx["other_session_id"], fx["random_uuid"], "random uuid"},
		{"session.reject", "id", fx["other_session_id"], fx["random_uuid"], "random uuid"},
		{"session.get_by_token", "token", fx["other_session_token"], nobodysToken, "token of no session"},
		{"transaction.get", "id", other.TransactionID, fx["random_uuid"], "random uuid"},
		{"transaction.state", "id", other.TransactionID, fx["random_uuid"], "random uuid"},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			errorOf := func(v string) json.RawMessage {
				_, b := ts.rawCall(t, fx["token"], fmt.Appendf(nil, `{"jsonrpc":"2.0","id":1,"method":%q,"params":{%q:%q}}`, tt.method, tt.param, v))
				var r struct{ Error json.RawMessage }
				if err := json.Unmarshal(b, &r); err != nil || r.Error == nil {
					t.Fatalf("got %s, want an error", b)
				}
				return r.Error
			}
			others, nobodys := errorOf(tt.others), errorOf(tt.nobodys)
			if string(others) != string(nobodys) {
				t.Errorf("another merchant's: got %s; %s: got %s; want the same bytes", others, tt.nobodyDescription, nobodys)
			}
			var e rpcError
			if err := json.Unmarshal(others, &e); err != nil {
				t.Fatal(err)
			}
			if e.Code != rpc.CodeNotFound || e.name() != "NotFound" {
				t.Errorf("got %d %s, want %d NotFound", e.Code, e.name(), rpc.CodeNotFound)
			}
		})
	}
	// The other merchant's session is as it was: alpha's reads and
	// attempts changed nothing.
	var st stateResult
	ts.mustCall(t, fx["other_token"], "session.state", map[string]string{"id": fx["other_session_id"]}, &st)
	if st.State != 5 || st.Version != 6 {
		t.Errorf("beta's session: got state %d version %d, want 5 and 6", st.State, st.Version)
	}
}

// TestSessionExpired drives the clock past a session's deadline: a move
// expires it first and answers -32009 SessionExpired (API.md section 3).
func TestSessionExpired(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)

	var cg struct {
		ViewState struct {
			SessionManagement struct {
				Active  bool  `json:"active"`
				Warning int64 `json:"warning"`
				End     int64 `json:"end"`
			} `json:"session_management"`
		} `json:"view_state"`
	}
	ts.Clock.Advance(29 * time.Minute)
	ts.mustCall(t, "", "client.get", map[string]string{"token": fx["session_token"]}, &cg)
	if sm := cg.ViewState.SessionManagement; !sm.Active || sm.Warning != 0 {
		t.Errorf("29m in: got active %t warning %d, want true 0 (the 2m warning has passed)", sm.Active, sm.Warning)
	}

	ts.Clock.Advance(time.Minute)
	_, e := ts.call(t, "", "client.transition", map[string]any{"token": fx["session_token"], "state": 1})
	if e == nil || e.Code != rpc.CodeConflict || e.name() != "SessionExpired" {
		t.Fatalf("30m in: got error %+v, want %d SessionExpired", e, rpc.CodeConflict)
	}
	var st stateResult
	ts.mustCall(t, fx["token"], "session.state", map[string]string{"id": fx["session_id"]}, &st)
	code := "expired_session"
	if got, want := st, (stateResult{ID: fx["session_id"], State: 10, StateName: "STATE_ABORTED", ErrorCode: &code, Version: 2}); !cmp.Equal(got, want) {
		t.Errorf("after expiry: got %+v, want %+v", got, want)
	}
}

// TestTokenLifetimes drives the clock past an access token's life: the
// bearer stops working, the refresh token (an hour longer) still trades
// for a new pair, once (API.md section 2).
func TestTokenLifetimes(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)
	params := map[string]string{"id": fx["session_id"]}

	ts.Clock.Advance(session.DefaultTokenTTL - time.Second)
	ts.mustCall(t, fx["token"], "session.state", params, nil)

	ts.Clock.Advance(time.Second)
	if _, e := ts.call(t, fx["token"], "session.state", params); e == nil || e.Code != rpc.CodeUnauthorized || e.name() != "Unauthorized" {
		t.Fatalf("expired bearer: got error %+v, want %d Unauthorized", e, rpc.CodeUnauthorized)
	}

	ts.Clock.Advance(59 * time.Minute)
	pair := map[string]string{"access_token": fx["token"], "refresh_token": fx["refresh_token"]}
	var fresh struct {
		AccessToken string      `json:"access_token"`
		Expires     json.Number `json:"expires"`
	}
	ts.mustCall(t, "", "merchant.token", pair, &fresh)
	exp, err := fresh.Expires.Float64()
	if want := float64(ts.Clock.Now().Add(session.DefaultTokenTTL).UnixMicro()) / 1e6; err != nil || math.Abs(exp-want) > 0.001 {
		t.Errorf("got expires %s, want %f", fresh.Expires, want)
	}
	ts.mustCall(t, fresh.AccessToken, "session.state", params, nil)
	if _, e := ts.call(t, "", "merchant.token", pair); e == nil || e.Code != rpc.CodeUnauthorized {
		t.Errorf("spent refresh token: got error %+v, want %d", e, rpc.CodeUnauthorized)
	}
}

// TestNoInternalDetailReachesClient makes the service fail and panic
// inside a method: the client gets -32603 InternalError (HTTP 500 on
// /api) with no detail, and the log has the detail, once.
func TestNoInternalDetailReachesClient(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode int32
	}{
		{"error", randomFails},
		{"panic", randomPanics},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := mustServer(t, testConfig())
			ts.Srv.SetReady(true)
			fx := mustFixture(t, ts)
			ts.Random.mode.Store(tt.mode)
			create := `{"amount":1,"country_id":"se"}`

			status, b := ts.rawCall(t, fx["token"], []byte(`[{"jsonrpc":"2.0","id":1,"method":"session.create_deposit","params":`+create+`},
				{"jsonrpc":"2.0","id":2,"method":"session.state","params":{"id":"`+fx["session_id"]+`"}}]`))
			if status != http.StatusOK {
				t.Fatalf("got HTTP %d, want 200", status)
			}
			if bytes.Contains(b, []byte(secretDetail)) || bytes.Contains(b, []byte("random")) {
				t.Errorf("the response tells the internal detail: %s", b)
			}
			var resps []struct {
				ID     int             `json:"id"`
				Result json.RawMessage `json:"result"`
				Error  *rpcError       `json:"error"`
			}
			if err := json.Unmarshal(b, &resps); err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			sort.Slice(resps, func(i, j int) bool { return resps[i].ID < resps[j].ID })
			if len(resps) != 2 {
				t.Fatalf("got %d responses, want 2: %s", len(resps), b)
			}
			if e := resps[0].Error; e == nil || e.Code != -32603 || e.name() != "InternalError" {
				t.Errorf("create: got error %+v, want -32603 InternalError", e)
			}
			if resps[1].Error != nil {
				t.Errorf("the batch's other entry: got error %+v, want a result", resps[1].Error)
			}

			req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/session.create_deposit", strings.NewReader(create))
			req.Header.Set("Authorization", "Bearer "+fx["token"])
			resp, err := ts.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			ab, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var data map[string]any
			_ = json.Unmarshal(ab, &data)
			want := map[string]any{"error_name": "InternalError", "error_message": data["error_message"], "state": "APPLICATION_ERROR"}
			if resp.StatusCode != http.StatusInternalServerError || !cmp.Equal(data, want) || bytes.Contains(ab, []byte(secretDetail)) {
				t.Errorf("/api: got HTTP %d %s, want 500 and InternalError without detail", resp.StatusCode, ab)
			}

			if got := strings.Count(ts.log.String(), secretDetail); got != 2 {
				t.Errorf("got the detail %d times in the log, want 2 (once per failed call):\n%s", got, ts.log.String())
			}
			ts.Random.mode.Store(randomOK)
			ts.mustCall(t, fx["token"], "session.create_deposit", json.RawMessage(create), nil)
		})
	}
}

// TestReadyz follows /readyz through a server's life: not ready until
// SetReady(true), ready, then not ready again while shutting down.
func TestReadyz(t *testing.T) {
	ts := mustServer(t, testConfig())
	get := func(path string) (int, map[string]any) {
		resp, err := ts.HTTP.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		return resp.StatusCode, v
	}
	for _, step := range []struct {
		ready      *bool
		path       string
		wantStatus int
		wantBody   map[string]any
	}{
		{nil, "/healthz", 200, map[string]any{"status": "ok"}},
		{nil, "/readyz", 503, nil},
		{ptr(true), "/readyz", 200, map[string]any{"status": "ready"}},
		{ptr(true), "/healthz", 200, map[string]any{"status": "ok"}},
		{ptr(false), "/readyz", 503, nil},
		{ptr(false), "/healthz", 200, map[string]any{"status": "ok"}},
	} {
		if step.ready != nil {
			ts.Srv.SetReady(*step.ready)
		}
		status, body := get(step.path)
		if status != step.wantStatus {
			t.Errorf("ready %v: GET %s: got HTTP %d, want %d", step.ready != nil && *step.ready, step.path, status, step.wantStatus)
		}
		if step.wantBody != nil && !cmp.Equal(body, step.wantBody) {
			t.Errorf("GET %s: got %v, want %v", step.path, body, step.wantBody)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestMatching checks the comparison the replay relies on.
func TestMatching(t *testing.T) {
	now := time.Unix(1763775600, 123000000)
	tests := []struct {
		want, got string
		same      bool
	}{
		{`{"a":50.00}`, `{"a":50.00}`, true},
		{`{"a":50.00}`, `{"a":50}`, false},
		{`{"a":"{{any}}"}`, `{"a":null}`, true},
		{`{"a":"{{any}}"}`, `{}`, false},
		{`{"a":"{{any-string}}"}`, `{"a":1}`, false},
		{`{"a":"{{any-number}}"}`, `{"a":1.5}`, true},
		{`{"a":"{{uuid}}"}`, `{"a":"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}`, true},
		{`{"a":"{{uuid}}"}`, `{"a":"0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B"}`, false},
		{`{"a":"{{re:^x+$}}"}`, `{"a":"xxx"}`, true},
		{`{"a":"{{time}}"}`, `{"a":1763775600.123}`, true},
		{`{"a":"{{time:+30m}}"}`, `{"a":1763777400.123}`, true},
		{`{"a":"{{time}}"}`, `{"a":"1763775600.123"}`, false},
		{`[{"id":1},{"id":2}]`, `[{"id":2},{"id":1}]`, true},
		{`[{"id":null,"x":"{{any}}"},{"id":null,"x":1}]`, `[{"id":null,"x":1},{"id":null,"x":2}]`, true},
		{`[{"id":1}]`, `[{"id":1},{"id":1}]`, false},
		{`{"a":[1,2]}`, `{"a":[2,1]}`, false},
	}
	for _, tt := range tests {
		m := &matching{now: now}
		diff, err := m.diff([]byte(tt.want), []byte(tt.got))
		if err != nil {
			t.Errorf("%s vs %s: %v", tt.want, tt.got, err)
			continue
		}
		if got := diff == ""; got != tt.same {
			t.Errorf("%s vs %s: got same %t, want %t; diff:\n%s", tt.want, tt.got, got, tt.same, diff)
		}
	}
}
