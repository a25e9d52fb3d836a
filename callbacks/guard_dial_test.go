package callbacks_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/callbacks"
	"github.com/sessiond/sessiond/session"
)

// TestBlockedSaysNoAddress: a delivery the guard refuses records
// last_error "blocked", without the address a hostname resolved to.
func TestBlockedSaysNoAddress(t *testing.T) {
	for _, url := range []string{"http://localhost:9/cb", "http://127.0.0.1:9/cb", "http://[::1]:9/cb"} {
		db := mustOpen(t)
		m := addMerchant(t, db)
		d := addDelivery(t, db, m.ID, url, t0)
		flush(t, callbacks.New(db, callbacks.Config{Now: func() time.Time { return t0 }}))
		got := stored(t, db, d)
		if got.Status != session.DeliveryBlocked || got.LastError != "blocked" {
			t.Errorf("%s: %s, last_error %q; want blocked, last_error \"blocked\"", url, got.Status, got.LastError)
		}
	}
}

// TestGuardInNamespace dials through the real dispatcher to addresses
// that are not loopback, so it runs inside a private network namespace
// (unshare -n) where no packet can leave: the registry's non-global
// addresses are blocked before any connect, while global ones get as far
// as connecting (and fail, there being no route), and stay pending.
func TestGuardInNamespace(t *testing.T) {
	if os.Getenv("SESSIOND_TEST_NETNS") != "1" {
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			t.Skip("unshare not installed")
		}
		if err := exec.Command(unshare, "-n", "true").Run(); err != nil {
			t.Skipf("unshare -n: %v (needs CAP_SYS_ADMIN)", err)
		}
		cmd := exec.Command(unshare, "-n", "--", os.Args[0], "-test.run=^TestGuardInNamespace$", "-test.v")
		cmd.Env = append(os.Environ(), "SESSIOND_TEST_NETNS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestGuardInNamespace") {
			t.Fatalf("in the namespace: %v\n%s", err, out)
		}
		t.Logf("in the namespace:\n%s", out)
		return
	}
	for _, tc := range []struct {
		url     string
		blocked bool
	}{
		{"http://[::10.0.0.1]/cb", true},
		{"http://[::ffff:0:10.0.0.1]/cb", true},
		{"http://[64:ff9b:1::a00:1]/cb", true},
		{"http://[2001::1]/cb", true},
		{"http://[fec0::1]/cb", true},
		{"http://[100::1]/cb", true},
		{"http://192.0.0.1/cb", true},
		{"http://192.0.2.1/cb", true},
		{"http://[2001:db8::1]/cb", true},
		{"http://8.8.8.8/cb", false},
		{"http://[2a00:1450:4001::1]/cb", false},
		{"http://[64:ff9b::808:808]/cb", false},
	} {
		db := mustOpen(t)
		m := addMerchant(t, db)
		d := addDelivery(t, db, m.ID, tc.url, t0)
		flush(t, callbacks.New(db, callbacks.Config{Timeout: 2 * time.Second, Now: func() time.Time { return t0 }}))
		got := stored(t, db, d)
		if blocked := got.Status == session.DeliveryBlocked; blocked != tc.blocked {
			t.Errorf("%s: %s (last_error %q), want blocked %v", tc.url, got.Status, got.LastError, tc.blocked)
		}
		if strings.Contains(got.LastError, strings.Trim(strings.TrimSuffix(strings.TrimPrefix(tc.url, "http://"), "/cb"), "[]")) {
			t.Errorf("%s: last_error %q names the address", tc.url, got.LastError)
		}
		t.Logf("%s: %s, last_error %q", tc.url, got.Status, got.LastError)
	}
}
