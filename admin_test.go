package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/admin"
	"github.com/sessiond/sessiond/server"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// sessiond runs the command line in this process and returns stdout; it
// fails the test unless the exit code is want.
func sessiond(t *testing.T, want int, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != want {
		t.Fatalf("sessiond %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out.String(), errOut.String())
	}
	return out.String() + errOut.String()
}

// fields reads the "key  value" lines the merchant commands print.
func fields(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// withAdminSocket serves the admin socket beside the data file.
func withAdminSocket(c *server.Config) { c.AdminSocket = admin.DefaultSocket(c.DB) }

// TestAdminLive changes merchants through the admin socket while a client
// keeps calling: a merchant added is usable at once, a disabled one's
// token stops working and it cannot authorize until enabled, a rotated
// secret replaces the old one, and revoked tokens stop working.
func TestAdminLive(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	p := startMain(t, db, func(c *server.Config) { withAdminSocket(c) })
	if fi, err := os.Stat(admin.DefaultSocket(db)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, mode %v; want 0600", err, fi.Mode())
	}

	add := fields(sessiond(t, 0, "merchant", "add", "shop", "--db", db))
	pk, secret := add["public_key"], add["secret"]
	token := authorize(t, p.url, pk, secret)

	// A client that keeps creating sessions, and counts how its calls end.
	var ok, refused atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if e := rpcCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "1", "country_id": "se"}, nil); e == nil {
				ok.Add(1)
			} else if e.Code == -32001 {
				refused.Add(1)
			}
		}
	}()
	waitUntil(t, "the client's first creates", func() bool { return ok.Load() > 5 })

	out := sessiond(t, 0, "merchant", "disable", pk, "--db", db)
	if !strings.Contains(out, "disabled") {
		t.Errorf("disable printed %q", out)
	}
	waitUntil(t, "the client's calls refused after disable", func() bool { return refused.Load() > 0 })
	close(stop)
	wg.Wait()
	if e := rpcCall(t, p.url, "", "merchant.authorize", map[string]string{"public_key": pk, "secret": secret}, nil); e == nil {
		t.Errorf("a disabled merchant authorized")
	}
	if out := sessiond(t, 0, "merchant", "list", "--db", db); !strings.Contains(out, pk) || !strings.Contains(out, "disabled") {
		t.Errorf("list after disable:\n%s", out)
	}
	sessiond(t, 0, "merchant", "enable", pk, "--db", db)
	token = authorize(t, p.url, pk, secret)

	rot := fields(sessiond(t, 0, "merchant", "rotate-secret", pk, "--db", db))
	if rot["secret"] == "" || rot["secret"] == secret {
		t.Fatalf("rotate-secret gave %q", rot["secret"])
	}
	if e := rpcCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "1", "country_id": "se"}, nil); e == nil {
		t.Errorf("a token from before rotate-secret still works")
	}
	if e := rpcCall(t, p.url, "", "merchant.authorize", map[string]string{"public_key": pk, "secret": secret}, nil); e == nil {
		t.Errorf("the old secret still authorizes")
	}
	token = authorize(t, p.url, pk, rot["secret"])

	sessiond(t, 0, "merchant", "revoke-tokens", add["merchant_id"], "--db", db)
	if e := rpcCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "1", "country_id": "se"}, nil); e == nil || e.Code != -32001 {
		t.Errorf("a revoked token: %+v, want -32001", e)
	}

	if out := sessiond(t, 1, "merchant", "show", "pk_nobody", "--db", db); !strings.Contains(out, `no merchant with id or public key "pk_nobody"`) {
		t.Errorf("show of a missing merchant said %q", out)
	}
}

// TestRotateCallbackSecret: after a rotation each callback carries a
// signature by the new and by the old secret, so a receiver that knows
// either verifies it; with --overlap 0 only the new one signs.
func TestRotateCallbackSecret(t *testing.T) {
	type got struct {
		header http.Header
		body   []byte
	}
	posts := make(chan got, 100)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		posts <- got{r.Header.Clone(), body}
	}))
	defer rcv.Close()
	db := filepath.Join(t.TempDir(), "sessiond.db")
	p := startMain(t, db, func(c *server.Config) {
		withAdminSocket(c)
		withMerchant("pk_rc", "sk_rc", e2eWhsec)(c)
		c.CallbackAllowPrivate = true
	})
	token := authorize(t, p.url, "pk_rc", "sk_rc")
	next := func() got {
		t.Helper()
		var s struct{ Token string }
		mustCall(t, p.url, token, "session.create_deposit", map[string]any{
			"amount": "1", "country_id": "se", "callbacks": callbackParams(rcv.URL, []int{1}, nil),
		}, &s)
		mustCall(t, p.url, "", "client.transition", map[string]any{"token": s.Token, "state": 1}, nil)
		select {
		case g := <-posts:
			return g
		case <-time.After(30 * time.Second):
			t.Fatal("no callback within 30s")
			return got{}
		}
	}
	verifies := func(secret string, g got) bool {
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		return wh.Verify(g.body, g.header) == nil
	}

	newSecret := fields(sessiond(t, 0, "merchant", "rotate-callback-secret", "pk_rc", "--db", db))["callback_secret"]
	if !strings.HasPrefix(newSecret, "whsec_") {
		t.Fatalf("rotate-callback-secret printed %q", newSecret)
	}
	g := next()
	if n := len(strings.Fields(g.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature %q: %d signatures, want 2", g.header.Get("webhook-signature"), n)
	}
	if !verifies(e2eWhsec, g) || !verifies(newSecret, g) {
		t.Errorf("during the overlap: old verifies %v, new verifies %v; want both", verifies(e2eWhsec, g), verifies(newSecret, g))
	}
	if out := sessiond(t, 0, "merchant", "show", "pk_rc", "--db", db); !strings.Contains(out, "old callback secret signs until") {
		t.Errorf("show during the overlap:\n%s", out)
	}

	newer := fields(sessiond(t, 0, "merchant", "rotate-callback-secret", "pk_rc", "--overlap", "0", "--db", db))["callback_secret"]
	g = next()
	if verifies(newSecret, g) || !verifies(newer, g) {
		t.Errorf("after --overlap 0: previous verifies %v, newest %v; want only the newest", verifies(newSecret, g), verifies(newer, g))
	}
}

// TestBackupUnderLoad backs up a running server while clients create
// sessions, restores the backup on another path and serves it: every
// create answered before the backup began is in it. A backup of a file
// in use cannot be restored over it, and compact of the backup keeps
// everything.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "live", "sessiond.db")
	os.MkdirAll(filepath.Dir(db), 0o700)
	p := startMain(t, db, func(c *server.Config) {
		withAdminSocket(c)
		withMerchant("pk_bk", "sk_bk", "")(c)
	})
	bearer := authorize(t, p.url, "pk_bk", "sk_bk")
	stop, answered := make(chan struct{}), make(chan struct{}, 1)
	var mu sync.Mutex
	var acked []string
	wait := load(t, p.url, bearer, 16, stop, answered, func(id string) {
		mu.Lock()
		acked = append(acked, id)
		mu.Unlock()
	})
	for range 300 {
		<-answered
	}
	mu.Lock()
	before := append([]string(nil), acked...) // acknowledged before the backup began
	mu.Unlock()
	out := filepath.Join(dir, "backup.db")
	res := sessiond(t, 0, "backup", out, "--db", db)
	if !strings.Contains(res, "from the running server") {
		t.Errorf("backup said %q", res)
	}
	close(stop)
	wait()
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".backup.db.tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	sessiond(t, 1, "restore", out, "--db", db) // in use: refused
	restored := filepath.Join(dir, "other", "sessiond.db")
	sessiond(t, 0, "restore", out, "--db", restored)
	sessiond(t, 1, "restore", out, "--db", restored) // exists: refused without --force
	compacted := filepath.Join(dir, "compact.db")
	sessiond(t, 0, "compact", restored, compacted)

	for _, f := range []string{restored, compacted} {
		q := startMain(t, f, withMerchant("pk_bk", "sk_bk", ""))
		checkAll(t, q.url, authorize(t, q.url, "pk_bk", "sk_bk"), before)
		t.Logf("%s: %d sessions acknowledged before the backup, all found", filepath.Base(f), len(before))
		q.stop()
	}
}

// waitUntil waits for cond for up to 30s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}
}

// TestSetFrameAncestorsStopped: on a stopped data file the merchant's
// frame ancestors are checked, kept and shown; a bad origin changes
// nothing, and "" clears them. (The live path, through the admin socket,
// is walked by the browser tests, which frame the page.)
func TestSetFrameAncestorsStopped(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	add := fields(sessiond(t, 0, "merchant", "add", "Nordic Shoes AB", "--db", db))
	id := add["merchant_id"]

	out := sessiond(t, 0, "merchant", "set-frame-ancestors", id, "--origins", "https://Shop.example, https://*.nordic.example", "--db", db)
	if !strings.Contains(out, "frame_ancestors  https://shop.example https://*.nordic.example\n") {
		t.Errorf("set-frame-ancestors printed\n%s", out)
	}
	for _, bad := range []string{"https://shop.example/path", "'none'", "https://shop.example; script-src *"} {
		if out := sessiond(t, 1, "merchant", "set-frame-ancestors", id, "--origins", bad, "--db", db); !strings.Contains(out, "frame ancestor") {
			t.Errorf("--origins %q: %q", bad, out)
		}
	}
	if out := sessiond(t, 0, "merchant", "show", add["public_key"], "--db", db); !strings.Contains(out, "frame_ancestors  https://shop.example https://*.nordic.example\n") {
		t.Errorf("after bad origins, show printed\n%s", out)
	}
	sessiond(t, 1, "merchant", "set-frame-ancestors", id, "--db", db) // --origins is required
	out = sessiond(t, 0, "merchant", "set-frame-ancestors", id, "--origins", "", "--db", db)
	if strings.Contains(out, "frame_ancestors") {
		t.Errorf("after clearing, printed\n%s", out)
	}
}
