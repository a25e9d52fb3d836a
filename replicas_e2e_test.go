package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sessiond/sessiond/postgres/pgtest"
)

// Two replicas of the real binary on one PostgreSQL database.

const (
	replicaPK     = "pk_rep"
	replicaSecret = "sk_rep"
)

// startReplicas starts n servers on one fresh database, one after the
// other (the first creates the merchant), with args added to each.
func startReplicas(t *testing.T, n int, args ...string) []*proc {
	t.Helper()
	url := pgtest.URL(t)
	var ps []*proc
	for range n {
		ps = append(ps, startReplica(t, url, args...))
	}
	return ps
}

// startReplica starts a server on the database at url.
func startReplica(t *testing.T, url string, args ...string) *proc {
	t.Helper()
	return startServer(t, append([]string{"--db", url, "--merchant", replicaPK + ":" + replicaSecret + ":" + e2eWhsec}, args...)...)
}

type created struct{ ID, Token, URL string }

func replicaDeposit(t *testing.T, url, bearer string, extra map[string]any) created {
	t.Helper()
	c, err := tryDeposit(url, bearer, extra)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryDeposit creates a deposit; it may run on any goroutine.
func tryDeposit(url, bearer string, extra map[string]any) (created, error) {
	p := map[string]any{"amount": "10.00", "country_id": "se", "merchant_reference": "rep"}
	for k, v := range extra {
		p[k] = v
	}
	var c created
	return c, rpcTry(url, bearer, "session.create_deposit", p, &c)
}

// rpcTry makes one JSON-RPC call and decodes its result into out; it may run
// on any goroutine. A JSON-RPC error is returned as an error with its code.
func rpcTry(url, bearer, method string, params, out any) error {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, url+"/rpc", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *rpcErr
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if r.Error != nil {
		return r.Error
	}
	if out != nil {
		return json.Unmarshal(r.Result, out)
	}
	return nil
}

type rpcErr struct {
	Code    int
	Message string
}

func (e *rpcErr) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

type sessionView struct {
	ID       string
	State    int
	Version  int
	Approval string
}

// TestReplicasShareSessions: a session created on A is read, moved and
// approved on B, and A reads what B did.
func TestReplicasShareSessions(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	ps := startReplicas(t, 2)
	a, b := ps[0].url, ps[1].url
	ta, tb := authorize(t, a, replicaPK, replicaSecret), authorize(t, b, replicaPK, replicaSecret)

	c := replicaDeposit(t, a, ta, map[string]any{"approval_required": true})
	var s sessionView
	mustCall(t, b, tb, "session.get", map[string]string{"id": c.ID}, &s)
	if s.ID != c.ID || s.Version != 1 {
		t.Fatalf("B read %+v, want the session A created at version 1", s)
	}
	for _, st := range []int{1, 2, 3, 4} {
		mustCall(t, b, "", "client.transition", map[string]any{"token": c.Token, "state": st}, nil)
	}
	mustCall(t, b, tb, "session.approve", map[string]string{"id": c.ID}, nil)
	mustCall(t, a, "", "client.transition", map[string]any{"token": c.Token, "state": 5}, nil)
	mustCall(t, a, ta, "session.get", map[string]string{"id": c.ID}, &s)
	if s.State != 5 || s.Version != 7 || s.Approval != "approved" {
		t.Errorf("A read %+v, want state 5 at version 7, approved", s)
	}
	// A token issued by A works on B, and one revoked on B stops working on A.
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	mustCall(t, a, "", "merchant.authorize", map[string]string{"public_key": replicaPK, "secret": replicaSecret}, &tok)
	mustCall(t, b, tok.AccessToken, "session.get", map[string]string{"id": c.ID}, nil)
	mustCall(t, b, "", "merchant.token", map[string]string{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken}, nil)
	if e := rpcCall(t, a, "", "merchant.token", map[string]string{"access_token": tok.AccessToken, "refresh_token": tok.RefreshToken}, nil); e == nil {
		t.Error("a refresh token used on B still works on A")
	}
}

// TestReplicasRacingMoves: two moves from one version, one on each
// replica at the same moment: one applies, the other gets -32009.
func TestReplicasRacingMoves(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	ps := startReplicas(t, 2)
	a, b := ps[0].url, ps[1].url
	ta := authorize(t, a, replicaPK, replicaSecret)
	for round := range 20 {
		c := replicaDeposit(t, a, ta, nil)
		codes := make([]int, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, url := range []string{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				err := rpcTry(url, "", "client.transition", map[string]any{"token": c.Token, "state": 1, "version": 1}, nil)
				if e, ok := err.(*rpcErr); ok {
					codes[i] = e.Code
				} else if err != nil {
					codes[i] = -1
				}
			}()
		}
		close(start)
		wg.Wait()
		if !(codes[0] == 0 && codes[1] == -32009 || codes[0] == -32009 && codes[1] == 0) {
			t.Fatalf("round %d: codes %v, want one success and one -32009", round, codes)
		}
		var s sessionView
		mustCall(t, b, ta, "session.get", map[string]string{"id": c.ID}, &s)
		if s.Version != 2 {
			t.Fatalf("round %d: version %d after the race, want 2", round, s.Version)
		}
	}
}

// TestReplicasWebSocketFeed: a subscriber on A sees every move made on B,
// in version order.
func TestReplicasWebSocketFeed(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	ps := startReplicas(t, 2)
	a, b := ps[0].url, ps[1].url
	ta := authorize(t, a, replicaPK, replicaSecret)
	const n = 5
	var cs []created
	for range n {
		cs = append(cs, replicaDeposit(t, a, ta, nil))
	}
	h := http.Header{"Authorization": {"Bearer " + ta}}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(a, "http")+"/rpc/ws", h)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for i, c := range cs {
		if err := ws.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": i + 1, "method": "session.subscribe", "params": map[string]string{"id": c.ID}}); err != nil {
			t.Fatal(err)
		}
	}
	// Every subscription is in place before B moves anything.
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for subscribed := 0; subscribed < n; {
		var msg struct {
			ID     *int
			Result *struct{ Subscription string }
		}
		if err := ws.ReadJSON(&msg); err != nil {
			t.Fatal(err)
		}
		if msg.ID == nil || msg.Result == nil {
			t.Fatalf("subscribe answered %+v", msg)
		}
		subscribed++
	}
	path := []int{1, 2, 3, 4, 5, 8, 9, 12}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, st := range path {
				if err := rpcTry(b, "", "client.transition", map[string]any{"token": c.Token, "state": st}, nil); err != nil {
					t.Errorf("move to %d on B: %v", st, err)
					return
				}
			}
		}()
	}
	got := map[string][]int{} // session → versions notified
	ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for total := 0; total < n*len(path); {
		var msg struct {
			ID     *int
			Method string
			Params struct {
				SessionID string `json:"session_id"`
				State     int
				Version   int
			}
		}
		if err := ws.ReadJSON(&msg); err != nil {
			t.Fatalf("after %d notifications: %v", total, err)
		}
		if msg.Method != "session.changed" {
			continue
		}
		got[msg.Params.SessionID] = append(got[msg.Params.SessionID], msg.Params.Version)
		total++
	}
	wg.Wait()
	want := fmt.Sprint([]int{2, 3, 4, 5, 6, 7, 8, 9})
	for _, c := range cs {
		if g := fmt.Sprint(got[c.ID]); g != want {
			t.Errorf("session %s: A notified versions %s, want %s", c.ID, g, want)
		}
	}
}

// countingReceiver answers 200 to every callback and counts the POSTs of
// each webhook id and of each session.
type countingReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	byID     map[string]int
	sessions map[string]int
	total    atomic.Int64
}

func newCountingReceiver(t *testing.T) *countingReceiver {
	r := &countingReceiver{byID: map[string]int{}, sessions: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var cb callback
		json.Unmarshal(body, &cb)
		r.mu.Lock()
		r.byID[req.Header.Get("webhook-id")]++
		r.sessions[cb.SessionID]++
		r.mu.Unlock()
		r.total.Add(1)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitTotal waits until n POSTs arrived, or fails after timeout.
func (r *countingReceiver) waitTotal(t *testing.T, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for r.total.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d callbacks arrived within %v, want %d", r.total.Load(), timeout, n)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising
	}
}

// settle waits until no POST has arrived for quiet, so that duplicates
// that were going to come have come.
func (r *countingReceiver) settle(quiet time.Duration) {
	last := r.total.Load()
	for {
		time.Sleep(quiet) // observing that nothing more arrives
		if n := r.total.Load(); n == last {
			return
		} else {
			last = n
		}
	}
}

// TestReplicasExpireOnce: 200 sessions expiring at once on two replicas
// that both sweep: each aborts once, with one callback.
func TestReplicasExpireOnce(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	recv := newCountingReceiver(t)
	ps := startReplicas(t, 2, "--session-ttl", "3s", "--expiry-interval", "100ms", "--callback-allow-private")
	a, b := ps[0].url, ps[1].url
	ta := authorize(t, a, replicaPK, replicaSecret)
	const n = 200
	cbs := callbackParams(recv.srv.URL+"/cb", []int{10}, nil)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tryDeposit([]string{a, b}[i%2], ta, map[string]any{"callbacks": cbs})
			if err != nil {
				t.Error(err)
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	recv.waitTotal(t, n, 60*time.Second)
	recv.settle(2 * time.Second)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if got := recv.total.Load(); got != n {
		t.Errorf("%d callbacks for %d expiries, want one each", got, n)
	}
	for _, id := range ids {
		if recv.sessions[id] != 1 {
			t.Errorf("session %s: %d callbacks, want 1", id, recv.sessions[id])
		}
		var s sessionView
		mustCall(t, b, ta, "session.get", map[string]string{"id": id}, &s)
		if s.State != 10 || s.Version != 2 {
			t.Errorf("session %s: state %d version %d, want aborted once (version 2)", id, s.State, s.Version)
		}
	}
}

// TestReplicasDeliverOnce: 2 000 deliveries made on both replicas, both
// dispatching: each is POSTed exactly once.
func TestReplicasDeliverOnce(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	recv := newCountingReceiver(t)
	ps := startReplicas(t, 2, "--callback-allow-private")
	a, b := ps[0].url, ps[1].url
	ta := authorize(t, a, replicaPK, replicaSecret)
	const sessions = 1000 // two callbacks each on the move to state 1
	cbs := []map[string]any{
		{"url": recv.srv.URL + "/cb?n=1", "session_state": 1},
		{"url": recv.srv.URL + "/cb?n=2", "session_state": 1},
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				url := []string{a, b}[i%2]
				c, err := tryDeposit(url, ta, map[string]any{"callbacks": cbs})
				if err == nil {
					err = rpcTry([]string{b, a}[i%2], "", "client.transition", map[string]any{"token": c.Token, "state": 1}, nil)
				}
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for i := range sessions {
		work <- i
	}
	close(work)
	wg.Wait()
	recv.waitTotal(t, 2*sessions, 120*time.Second)
	recv.settle(2 * time.Second)
	recv.mu.Lock()
	defer recv.mu.Unlock()
	if got := recv.total.Load(); got != 2*sessions || len(recv.byID) != 2*sessions {
		t.Errorf("%d POSTs of %d webhook ids, want %d of %d", got, len(recv.byID), 2*sessions, 2*sessions)
	}
	for id, n := range recv.byID {
		if n != 1 {
			t.Errorf("%s POSTed %d times", id, n)
		}
	}
}

// TestReplicasKillUnderLoad: SIGKILL of A while 32 connections create on
// it: every create A answered is read back from B.
func TestReplicasKillUnderLoad(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	ps := startReplicas(t, 2)
	a, b := ps[0], ps[1].url
	ta := authorize(t, a.url, replicaPK, replicaSecret)
	var mu sync.Mutex
	var acked []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id, ok := tryCreate(client, a.url, ta)
				if !ok {
					return // A is gone
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d creates answered in 30s", n)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, not synchronising
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d creates answered before SIGKILL", len(acked))
	for _, id := range acked {
		var s sessionView
		if e := rpcCall(t, b, ta, "session.get", map[string]string{"id": id}, &s); e != nil || s.ID != id {
			t.Errorf("session %s answered by A is not on B: %+v", id, e)
		}
	}
}

// tryCreate creates a deposit and returns its id; false if the request
// failed (the server died).
func tryCreate(client *http.Client, url, bearer string) (string, bool) {
	body := `{"jsonrpc":"2.0","id":1,"method":"session.create_deposit","params":{"amount":"10.00","country_id":"se","merchant_reference":"kill"}}`
	req, _ := http.NewRequest(http.MethodPost, url+"/rpc", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := client.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var r struct {
		Result struct{ ID string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Result.ID == "" {
		return "", false
	}
	return r.Result.ID, true
}

// TestReplicasTakeOverClaims: A claims deliveries and is killed while its
// attempts hang; B posts them once their lease has run out, and not before.
func TestReplicasTakeOverClaims(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	var answering atomic.Bool
	hung := make(chan struct{}, 16)
	var mu sync.Mutex
	posted := map[string]time.Time{} // webhook id → when answered 200
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.ReadAll(req.Body)
		if !answering.Load() {
			hung <- struct{}{}
			<-req.Context().Done() // held until the poster goes away
			return
		}
		mu.Lock()
		posted[req.Header.Get("webhook-id")] = time.Now()
		mu.Unlock()
	}))
	defer recv.Close()
	// Deliveries are held for --callback-timeout plus a minute.
	const timeout = 5 * time.Second
	args := []string{"--callback-allow-private", "--callback-timeout", timeout.String()}
	url := pgtest.URL(t)
	a := startReplica(t, url, args...)
	ta := authorize(t, a.url, replicaPK, replicaSecret)
	const n = 4 // A's attempts in flight to one host
	cbs := []map[string]any{{"url": recv.URL + "/cb", "session_state": 1}}
	for range n {
		c := replicaDeposit(t, a.url, ta, map[string]any{"callbacks": cbs})
		mustCall(t, a.url, "", "client.transition", map[string]any{"token": c.Token, "state": 1}, nil)
	}
	for range n {
		select {
		case <-hung:
		case <-time.After(30 * time.Second):
			t.Fatal("A did not attempt its deliveries")
		}
	}
	startReplica(t, url, args...) // B
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
	killed := time.Now()
	answering.Store(true)
	deadline := killed.Add(timeout + time.Minute + 30*time.Second)
	for {
		mu.Lock()
		got := len(posted)
		mu.Unlock()
		if got == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B posted %d of A's %d claimed deliveries within the lease and 30s", got, n)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition, not synchronising
	}
	mu.Lock()
	defer mu.Unlock()
	for id, at := range posted {
		if d := at.Sub(killed); d < 30*time.Second {
			t.Errorf("%s posted %v after A died, before A's lease could have ended", id, d)
		}
	}
}
