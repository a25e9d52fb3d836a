package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRetainServe runs the binary with a short retention on the sandbox's
// clock: the start-up log says the retention in force, and a finished
// session disappears once the clock is past it while an unfinished one,
// created at the same time, stays.
func TestRetainServe(t *testing.T) {
	plain := startServer(t, "--db", filepath.Join(t.TempDir(), "sessiond.db"), "--merchant", "pk_k:sk_k")
	if code := plain.stop(t, syscall.SIGTERM); code != 0 || !strings.Contains(plain.drain(), `"message":"retention: keep everything"`) {
		t.Errorf("without --retain (exit %d) the start-up log does not say everything is kept:\n%s", code, plain.drain())
	}

	p := sandboxServer(t, "--retain", "4s")
	p.waitLog(t, `"message":"retention: 4s"`)
	token := authorize(t, p.url, "pk_a", "sk_a")
	done, _ := createDeposit(t, p.url, token, map[string]any{"merchant_reference": "completed"})
	open, _ := createDeposit(t, p.url, token, nil)
	eventually(t, "the sandbox completes the session", func() bool {
		advance(t, p.url, token, 2*time.Second)
		return stateOf(t, p.url, token, done).State == 12
	})
	advance(t, p.url, token, time.Minute) // past the retention, not past the other's expiry (30m)
	eventually(t, "retention deletes the finished session", func() bool {
		e := rpcCall(t, p.url, token, "session.state", map[string]string{"id": done}, nil)
		return e != nil && e.Code == -32004
	})
	if s := stateOf(t, p.url, token, open); s.ID != open {
		t.Errorf("the open session was touched: %+v", s)
	}
	p.waitLog(t, `"message":"retention: deleted final sessions older than the retention"`)
}

// TestSIGHUPMerchantsFile: SIGHUP reads --merchants-file again, adding and
// updating merchants and logging what it did without a secret; a bad file
// changes nothing and is logged as an error.
func TestSIGHUPMerchantsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "merchants")
	write := func(text string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(file, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("pk_m1:sk_m1_first\n", 0o600)
	p := startServer(t, "--db", filepath.Join(dir, "sessiond.db"), "--merchants-file", file)
	authorize(t, p.url, "pk_m1", "sk_m1_first")
	refused := func(pk, secret string) bool {
		return rpcCall(t, p.url, "", "merchant.authorize", map[string]string{"public_key": pk, "secret": secret}, nil) != nil
	}
	if !refused("pk_m2", "sk_m2_new") {
		t.Fatal("a merchant not in the file authorized")
	}

	// pk_m1's secret changes, pk_m2 is added, pk_m3 is as before.
	// pk_m4 comes without a callback secret: the server makes one and
	// shows it once, as at start-up.
	write("# rotated\npk_m1:sk_m1_second\npk_m2:sk_m2_new:"+e2eWhsec+"\npk_m4:sk_m4_new\n", 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"message":"reload: merchants file applied"`)
	authorize(t, p.url, "pk_m2", "sk_m2_new")
	authorize(t, p.url, "pk_m1", "sk_m1_second")
	if !refused("pk_m1", "sk_m1_first") {
		t.Error("pk_m1's old secret still authorizes after the reload")
	}
	logs := p.drain()
	if !strings.Contains(logs, `"created":2,"updated":1,"unchanged":0`) || !strings.Contains(logs, `"reloaded":["merchants_file"]`) {
		t.Errorf("the reload does not say what it did:\n%s", logs)
	}
	if n := len(regexp.MustCompile(`"public_key":"pk_m4"[^\n]*"callback_secret":"whsec_`).FindAllString(logs, -1)); n != 1 {
		t.Errorf("pk_m4's generated callback secret is logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs, e2eWhsec) || strings.Contains(logs, "sk_m4_new") {
		t.Errorf("a secret the file gave reached the log:\n%s", logs)
	}

	// A bad line: nothing in the file is applied, not even its good lines.
	write("pk_m3:sk_m3_never\npk_m1_broken_sk_leak\n", 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `line 2`)
	// A file others may read is refused too.
	write("pk_m3:sk_m3_never\n", 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `chmod 600`)
	if !refused("pk_m3", "sk_m3_never") {
		t.Error("a merchant of a refused file authorized")
	}
	authorize(t, p.url, "pk_m1", "sk_m1_second")
	authorize(t, p.url, "pk_m2", "sk_m2_new")

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGHUP and SIGTERM, want 0\n%s", code, p.drain())
	}
	logs = p.drain()
	if n := strings.Count(logs, `"reload failed; the rest stays as it was"`); n != 2 {
		t.Errorf("%d reload failures logged, want 2:\n%s", n, logs)
	}
	for _, secret := range []string{"sk_m1_first", "sk_m1_second", "sk_m2_new", "sk_m3_never", "sk_leak", e2eWhsec} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the secret %s:\n%s", secret, logs)
		}
	}
}
