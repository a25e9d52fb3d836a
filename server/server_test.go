package server_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/server"
)

func testConfig(t *testing.T, db string) server.Config {
	c := server.DefaultConfig()
	c.Addr, c.DB = "127.0.0.1:0", db
	return c
}

// TestCloseWithoutRun: an opened Main that never ran closes cleanly and
// releases the data file and the port.
func TestCloseWithoutRun(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	m := server.New(testConfig(t, db))
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	addr := m.URL()[len("http://"):]
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c := testConfig(t, db)
	c.Addr, c.LockTimeout = addr, 100*time.Millisecond
	again := server.New(c)
	if err := again.Open(context.Background()); err != nil {
		t.Fatalf("Open after Close, same port and file: %v", err)
	}
	if err := again.Close(); err != nil {
		t.Fatal(err)
	}
	if err := again.Run(context.Background()); err == nil {
		t.Error("Run after Close: nil error, want one")
	}
}

// TestCloseWhileRunning: Close from another goroutine ends Run with nil,
// after which the server answers no more.
func TestCloseWhileRunning(t *testing.T) {
	m := server.New(testConfig(t, filepath.Join(t.TempDir(), "sessiond.db")))
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(m.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 10s: %v", err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run after Close: %v, want nil", err)
	}
	if resp, err := http.Get(m.URL() + "/readyz"); err == nil {
		resp.Body.Close()
		t.Errorf("served after Close: %s", resp.Status)
	}
}

// TestWildcardAddr: bound to every address without --public-url, links
// use this host's name and the port, and a warning says so.
func TestWildcardAddr(t *testing.T) {
	var logs bytes.Buffer
	c := testConfig(t, filepath.Join(t.TempDir(), "sessiond.db"))
	c.Addr, c.Log = "0.0.0.0:0", zerolog.New(&logs)
	m := server.New(c)
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(m.URL()[len("http://"):])
	if want := "http://" + net.JoinHostPort(host, port); m.PublicURL() != want {
		t.Errorf("PublicURL() = %q, want %q", m.PublicURL(), want)
	}
	if !strings.Contains(logs.String(), `"public_url":"`+m.PublicURL()+`"`) || !strings.Contains(logs.String(), "--public-url is not set") {
		t.Errorf("no warning naming the URL used:\n%s", logs.String())
	}
}

// TestBadPublicURL: a --public-url that is not an absolute http(s) URL is
// refused before anything is bound or created.
func TestBadPublicURL(t *testing.T) {
	for _, u := range []string{"127.0.0.1:8080", "pay.example.com", "ftp://pay.example.com", "/client", "https://"} {
		db := filepath.Join(t.TempDir(), "sessiond.db")
		c := testConfig(t, db)
		c.PublicURL = u
		err := server.New(c).Open(context.Background())
		if err == nil || !strings.Contains(err.Error(), "want an absolute http or https URL") {
			t.Errorf("--public-url %q: %v, want a refusal", u, err)
		}
		if _, err := os.Stat(db); !os.IsNotExist(err) {
			t.Errorf("--public-url %q: a data file was created", u)
		}
	}
	c := testConfig(t, filepath.Join(t.TempDir(), "sessiond.db"))
	c.PublicURL = "https://pay.example.com/base/"
	m := server.New(c)
	if err := m.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.PublicURL() != "https://pay.example.com/base" {
		t.Errorf("PublicURL() = %q, want the trailing slash trimmed", m.PublicURL())
	}
}

func TestRetainString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "keep everything", 90 * 24 * time.Hour: "90d", 24 * time.Hour: "24h", 48 * time.Hour: "2d", 36 * time.Hour: "36h",
		30 * time.Minute: "30m", 90 * time.Second: "1m30s", 4 * time.Second: "4s",
	} {
		if got := server.RetainString(d); got != want {
			t.Errorf("RetainString(%v) = %q, want %q", d, got, want)
		}
	}
}
