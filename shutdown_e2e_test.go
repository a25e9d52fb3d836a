package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestShutdownBoundedWithCallbackInFlight is the defect as reported: a
// callback in flight held shutdown past --shutdown-timeout (9.5 s
// measured, up to the timeout plus the callback timeout). With a receiver
// that never answers and a callback timeout of a minute, SIGTERM with
// --shutdown-timeout 1s exits 0 well before the callback could time out;
// the attempt cut off is made again after the restart, with the same
// webhook id, and delivered.
func TestShutdownBoundedWithCallbackInFlight(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	got := make(chan string, 16)
	release := make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- r.Header.Get("webhook-id")
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer rcv.Close()
	defer close(release) // before rcv.Close, which waits for handlers

	db := filepath.Join(t.TempDir(), "sessiond.db")
	args := []string{"--db", db, "--merchant", "pk_sd:sk_sd:" + e2eWhsec, "--callback-allow-private",
		"--shutdown-timeout", "1s", "--callback-timeout", "60s"}
	// The race detector sleeps a second at exit unless told not to.
	env := []string{"GORACE=halt_on_error=1 atexit_sleep_ms=0"}
	p := startServerEnv(t, env, args...)
	token := authorize(t, p.url, "pk_sd", "sk_sd")
	var s struct{ ID, Token string }
	mustCall(t, p.url, token, "session.create_deposit", map[string]any{
		"amount": "5", "country_id": "se", "callbacks": callbackParams(rcv.URL, []int{1}, nil),
	}, &s)
	mustCall(t, p.url, "", "client.transition", map[string]any{"token": s.Token, "state": 1}, nil)
	var first string
	select {
	case first = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no callback attempt within 30s")
	}

	start := time.Now()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, p.drain())
	}
	took := time.Since(start)
	t.Logf("SIGTERM with a callback in flight: exited after %s (--shutdown-timeout 1s, --callback-timeout 60s)", took.Round(time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("shutdown took %s: it waited for the callback", took)
	}
	logs := p.drain()
	if !strings.Contains(logs, "cut off at the shutdown timeout") {
		t.Errorf("no log line says the attempt was cut off:\n%s", logs)
	}

	hang.Store(false)
	p = startServer(t, args...)
	select {
	case again := <-got:
		if again != first {
			t.Errorf("after the restart webhook-id %s, want the cut-off attempt's %s", again, first)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cut-off attempt was not made again after the restart")
	}
	var res struct {
		Callbacks []struct {
			Status   string `json:"status"`
			Attempts int    `json:"attempts"`
		} `json:"deliveries"`
	}
	token = authorize(t, p.url, "pk_sd", "sk_sd")
	for end := time.Now().Add(30 * time.Second); ; {
		mustCall(t, p.url, token, "session.callbacks", map[string]string{"id": s.ID}, &res)
		cbs := res.Callbacks
		if len(cbs) == 1 && cbs[0].Status == "delivered" {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("callbacks after the restart: %+v, want one delivered", cbs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := res.Callbacks[0].Attempts; got != 1 {
		t.Errorf("attempts %d, want 1: the cut-off attempt is not counted", got)
	}
}

// readyz returns the status /readyz answers.
func readyz(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReadyz polls /readyz until it answers want.
func waitReadyz(t *testing.T, url string, want int, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); readyz(t, url) != want; {
		if time.Now().After(end) {
			t.Fatalf("/readyz not %d within %s", want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadyzWhileDiskFull is the defect as reported: /readyz said ready
// while every write failed. The binary runs on a small tmpfs in a private
// mount namespace (so it needs root, and is skipped without); a ballast
// file fills it until creates fail. /readyz then answers 503, and 200 again
// once the ballast is removed and a write succeeds.
func TestReadyzWhileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private mount namespace with a small tmpfs")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	// The shell mounts the tmpfs, fills most of it, runs sessiond and
	// removes the ballast on SIGUSR1; SIGTERM is passed on.
	script := `set -e
mount -t tmpfs -o size=4m tmpfs "$MNT"
dd if=/dev/zero of="$MNT/ballast" bs=64k count=52 2>/dev/null
"$BIN" serve --addr 127.0.0.1:0 --log-format json --db "$MNT/s.db" --merchant pk_df:sk_df &
pid=$!
trap 'rm -f "$MNT/ballast"' USR1
trap 'kill -TERM $pid' TERM
while kill -0 $pid 2>/dev/null; do wait $pid || true; done`
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "MNT="+mnt, "BIN="+binary)
	p := startCmd(t, cmd)
	if readyz(t, p.url) != http.StatusOK {
		t.Fatal("not ready at start")
	}
	token := authorize(t, p.url, "pk_df", "sk_df")
	create := func() int { // the error code, 0 for success
		e := rpcCall(t, p.url, token, "session.create_deposit", map[string]any{
			"amount": "5", "country_id": "se", "merchant_reference": strings.Repeat("x", 200),
		}, nil)
		if e == nil {
			return 0
		}
		return e.Code
	}
	failed := false
	for i := 0; i < 20000 && !failed; i++ {
		if code := create(); code != 0 {
			if code != -32603 {
				t.Fatalf("create on a full disk: %d, want -32603", code)
			}
			failed = true
		}
	}
	if !failed {
		t.Fatal("20 000 creates fit on the small tmpfs; the disk never filled")
	}
	// While creates fail, /readyz turns 503.
	for end := time.Now().Add(10 * time.Second); readyz(t, p.url) != http.StatusServiceUnavailable; {
		if time.Now().After(end) {
			t.Fatal("/readyz not 503 within 10s while creates fail")
		}
		create()
		time.Sleep(50 * time.Millisecond)
	}

	p.cmd.Process.Signal(syscall.SIGUSR1)
	waitReadyz(t, p.url, http.StatusOK, 20*time.Second)
	if e := rpcCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "5", "country_id": "se"}, nil); e != nil {
		t.Errorf("create after space was freed: %d", e.Code)
	}
	if logs := p.drain(); !strings.Contains(logs, `"message":"not ready"`) || !strings.Contains(logs, `"message":"ready again"`) {
		t.Errorf("readiness changes not logged:\n%s", logs)
	}
	p.stop(t, syscall.SIGTERM)
}
