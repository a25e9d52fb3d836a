package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUP: SIGHUP does not kill the server; it reads the log level
// from --env-file again and logs what it reloaded. A request made after a
// reload to level error is not logged, one after the reload back to info
// is.
func TestSIGHUP(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "sessiond.env")
	setLevel := func(level string) {
		if err := os.WriteFile(envFile, []byte("# written by the test\nSESSIOND_LOG_LEVEL="+level+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setLevel("info")
	p := startServer(t, "--db", filepath.Join(dir, "sessiond.db"), "--env-file", envFile, "--merchant", "pk_h:sk_h")
	get := func(path string) {
		resp, err := http.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	setLevel("error")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"log_level":"error"`)
	get("/healthz") // at level error: not logged

	setLevel("info")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, `"log_level":"info"`)
	get("/readyz") // at level info: logged

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGHUP and SIGTERM, want 0\n%s", code, p.drain())
	}
	logs := p.drain()
	if strings.Count(logs, `"reloaded on SIGHUP"`) != 2 || !strings.Contains(logs, `"reloaded":["log_level"]`) {
		t.Errorf("the reload line does not say what it reloaded:\n%s", logs)
	}
	if strings.Contains(logs, `"path":"/healthz"`) {
		t.Errorf("a request at level error was logged:\n%s", logs)
	}
	if !strings.Contains(logs, `"path":"/readyz"`) {
		t.Errorf("a request after the reload to info was not logged:\n%s", logs)
	}
}

// waitLog waits until a log line containing s was read, for up to 20s.
func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(p.logs.buf.String(), s) {
		select {
		case l := <-p.logs.ch:
			p.logs.buf.WriteString(l + "\n")
		case <-deadline:
			t.Fatalf("no log line with %s within 20s:\n%s", s, p.logs.buf.String())
		}
	}
}
