// Package sessiondtest starts a real sessiond inside a Go test: the same
// server.Main that `sessiond serve` runs, on a bbolt file in a temporary
// directory (committed without fsync, see server.Config.UnsafeNoFsync)
// and a free loopback port, in sandbox mode, with callbacks to loopback
// allowed. It hands the test the server's URL, a merchant's
// credentials and bearer token, the server's Clock to advance, and a
// callback Receiver that checks every callback's Standard Webhooks
// signature.
//
//	srv := sessiondtest.New(t)
//	var created struct{ ID, Token string }
//	srv.MustCall("session.create_deposit", map[string]any{
//		"amount": "10.00", "country_id": "se", "merchant_reference": "completed",
//		"callbacks": []map[string]any{{"url": srv.Callbacks.URL, "session_state": 12}},
//	}, &created)
//	cb := srv.Callbacks.Wait(1)[0]
//
// New closes the server when the test ends. Start and Close do the same
// outside a test.
package sessiondtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
)

// Server is a running sessiond. Its fields are set by New or Start and
// must not be changed.
type Server struct {
	// URL is the server's base URL, such as http://127.0.0.1:41234; JSON-RPC
	// is served at URL+"/rpc", Brite style at URL+"/api/<method>".
	URL string
	// PublicKey, Secret and CallbackSecret are the merchant's credentials;
	// CallbackSecret (whsec_…) signs its callbacks.
	PublicKey, Secret, CallbackSecret string
	// Clock is the server's clock: advancing it moves expiry, callback
	// retries, token lifetimes and the sandbox's steps.
	Clock *Clock
	// Callbacks receives the callbacks sent to Callbacks.URL.
	Callbacks *Receiver

	main   *server.Main
	logs   *syncBuffer
	dir    string // removed by Close, if set
	cancel context.CancelFunc
	done   chan error
	fail   func(error)

	mu    sync.Mutex
	token string
}

// Option changes how New and Start set up the server.
type Option func(*server.Config)

// WithSandboxDelay sets the time between the sandbox's steps of sessions
// with a magic merchant reference (default 50ms).
func WithSandboxDelay(d time.Duration) Option {
	return func(c *server.Config) { c.SandboxDelay = d }
}

// WithConfig lets f change any setting of the server before it opens.
func WithConfig(f func(*server.Config)) Option { return Option(f) }

// New starts a server for the test and closes it when the test ends; a
// callback whose signature does not verify fails the test. Failures to
// start, and of the Must methods, end the test with Fatal.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := start(t.TempDir(), opts)
	if err != nil {
		t.Fatalf("sessiondtest: %v", err)
	}
	s.fail = func(err error) { t.Helper(); t.Fatalf("sessiondtest: %v", err) }
	s.Callbacks.fail = s.fail
	s.Callbacks.onBad = func(err error) { t.Errorf("sessiondtest: %v", err) }
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("sessiondtest: close: %v", err)
		}
		if t.Failed() {
			t.Logf("sessiond log:\n%s", s.logs)
		}
	})
	return s
}

// Start starts a server outside a test, on a data file in a new temporary
// directory. Call Close when finished. The Must methods panic on failure.
func Start(opts ...Option) (*Server, error) {
	dir, err := os.MkdirTemp("", "sessiondtest")
	if err != nil {
		return nil, err
	}
	s, err := start(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.dir = dir
	s.fail = func(err error) { panic("sessiondtest: " + err.Error()) }
	s.Callbacks.fail = s.fail
	return s, nil
}

func start(dir string, opts []Option) (*Server, error) {
	whsec, err := newCallbackSecret()
	if err != nil {
		return nil, err
	}
	s := &Server{PublicKey: "pk_test", Secret: "sk_test", CallbackSecret: whsec, logs: &syncBuffer{}, done: make(chan error, 1)}
	c := server.DefaultConfig()
	c.Addr, c.DB = "127.0.0.1:0", filepath.Join(dir, "sessiond.db")
	c.Sandbox, c.SandboxDelay, c.CallbackAllowPrivate = true, 50*time.Millisecond, true
	// The file is thrown away with the test: no commit waits for the
	// disk (a power cut is no test's concern; WithConfig can undo it).
	c.UnsafeNoFsync = true
	c.Merchants = []session.Credentials{{PublicKey: s.PublicKey, Secret: s.Secret, CallbackSecret: whsec}}
	c.Log = zerolog.New(s.logs).With().Timestamp().Logger()
	c.ShutdownTimeout = 5 * time.Second
	for _, o := range opts {
		o(&c)
	}
	s.main = server.New(c)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if err := s.main.Open(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("open: %w\n%s", err, s.logs)
	}
	s.URL = s.main.LocalURL()
	go func() { s.done <- s.main.Run(ctx) }()
	if err := s.waitReady(); err != nil {
		s.Close()
		return nil, err
	}
	s.Clock = &Clock{s: s}
	s.Callbacks = newReceiver(whsec)
	return s, nil
}

// waitReady waits until /readyz answers 200, or Run ends.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within 30s: %v\n%s", err, s.logs)
		}
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("stopped before it was ready: %v\n%s", err, s.logs)
		case <-tick.C:
		}
	}
}

// Close stops the server and the callback receiver and removes what Start
// created.
func (s *Server) Close() error {
	s.cancel()
	err := <-s.done
	s.done <- err // a second Close returns the same
	if s.Callbacks != nil {
		s.Callbacks.close()
	}
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
	return err
}

// Logs returns what the server has logged so far (JSON lines).
func (s *Server) Logs() string { return s.logs.String() }

// Error is a JSON-RPC error answer.
type Error struct {
	Code    int    // such as -32004
	Name    string // error_name, such as "NotFound"
	Message string
	Field   string // the param at fault, for -32602
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Code, e.Name, e.Message)
}

// Token returns a bearer token of the merchant, authorizing on first use.
func (s *Server) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" {
		return s.token, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := s.call(context.Background(), "", "merchant.authorize", map[string]string{"public_key": s.PublicKey, "secret": s.Secret}, &tok); err != nil {
		return "", err
	}
	s.token = tok.AccessToken
	return s.token, nil
}

// Call makes one JSON-RPC call as the merchant and decodes its result into
// result (if not nil). A JSON-RPC error comes back as *Error. If the token
// has expired (the clock was advanced past its lifetime), Call authorizes
// again once.
func (s *Server) Call(method string, params, result any) error {
	for try := 0; ; try++ {
		tok, err := s.Token()
		if err != nil {
			return err
		}
		err = s.call(context.Background(), tok, method, params, result)
		var e *Error
		if try == 0 && errors.As(err, &e) && e.Code == -32001 {
			s.mu.Lock()
			s.token = ""
			s.mu.Unlock()
			continue
		}
		return err
	}
}

// MustCall is Call that fails the test (or panics, after Start) on error.
func (s *Server) MustCall(method string, params, result any) {
	if err := s.Call(method, params, result); err != nil {
		s.fail(fmt.Errorf("%s: %w", method, err))
	}
}

// ClientCall makes one call of the end user's (client.get,
// client.transition), without the merchant's bearer.
func (s *Server) ClientCall(method string, params, result any) error {
	return s.call(context.Background(), "", method, params, result)
}

func (s *Server) call(ctx context.Context, bearer, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/rpc", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *struct {
			Code    int
			Message string
			Data    struct {
				ErrorName string `json:"error_name"`
				Field     string `json:"field"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: HTTP %s: %w", method, resp.Status, err)
	}
	if r.Error != nil {
		return &Error{Code: r.Error.Code, Name: r.Error.Data.ErrorName, Message: r.Error.Message, Field: r.Error.Data.Field}
	}
	if result != nil {
		return json.Unmarshal(r.Result, result)
	}
	return nil
}

// Reset deletes the merchant's sessions, transactions, deliveries and bank
// accounts (sandbox.reset) and forgets the callbacks received, so that one
// server can serve many tests.
func (s *Server) Reset() {
	s.MustCall("sandbox.reset", nil, nil)
	s.Callbacks.Reset()
}

// Clock is the server's clock.
type Clock struct{ s *Server }

// Now returns the time the server's clock reads.
func (c *Clock) Now() time.Time { return c.s.main.Clock().Now() }

// Advance moves the server's clock forward by d (sandbox.advance_time):
// before it returns, the sessions that fell due have expired, the sandbox
// steps that fell due are taken and one attempt has been made at each
// callback that fell due. It returns the time the clock then reads.
func (c *Clock) Advance(d time.Duration) time.Time {
	var out struct {
		Now float64 `json:"now"`
	}
	c.s.MustCall("sandbox.advance_time", map[string]any{"seconds": d.Seconds()}, &out)
	sec := int64(out.Now)
	return time.Unix(sec, int64((out.Now-float64(sec))*1e9))
}

func newCallbackSecret() (string, error) {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	return session.CallbackSecretPrefix + base64.StdEncoding.EncodeToString(key), nil
}

// syncBuffer is a log sink safe for concurrent writes.
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
