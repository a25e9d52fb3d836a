package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

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
