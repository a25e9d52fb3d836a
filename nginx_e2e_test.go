package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const nginxBinary = "/usr/sbin/nginx"

// TestNginxReplicas runs the README's example: two replicas on one
// database behind Debian's nginx. A session created through the balancer
// is read through each replica directly, and read and moved through the
// balancer again; a create answered by one replica is read by the other.
func TestNginxReplicas(t *testing.T) {
	t.Parallel() // each on a database of its own, mostly waiting
	if _, err := os.Stat(nginxBinary); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("SESSIOND_REQUIRE_NGINX") == "1" {
			t.Fatalf("%s is missing (apt-get install nginx)", nginxBinary)
		}
		t.Skipf("%s is missing: install Debian's nginx to run the balancer example", nginxBinary)
	}
	ps := startReplicas(t, 2)
	front := freeAddr(t)
	conf, err := os.ReadFile("testdata/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf = bytes.Replace(conf, []byte("127.0.0.1:8081"), []byte(strings.TrimPrefix(ps[0].url, "http://")), 1)
	conf = bytes.Replace(conf, []byte("127.0.0.1:8082"), []byte(strings.TrimPrefix(ps[1].url, "http://")), 1)
	conf = bytes.Replace(conf, []byte("listen 127.0.0.1:8080"), []byte("listen "+front), 1)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o777); err != nil {
		t.Fatal(err)
	}
	// nginx's workers run as nobody when started by root and may spill
	// large responses to tmp/.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Join(dir, "tmp"), 0o777)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBinary, "-p", dir, "-c", "nginx.conf", "-g", "daemon off;")
	// A file, not a pipe: the workers hold it too, and a pipe would keep
	// Wait waiting for them.
	logs, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // the master stops its workers
		cmd.Wait()
	})
	lb := "http://" + front
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(lb + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(logs.Name())
			t.Fatalf("nginx did not answer /readyz within 20s: %v\n%s", err, out)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition, not synchronising
	}

	token := authorize(t, lb, replicaPK, replicaSecret)
	c := replicaDeposit(t, lb, token, nil)
	for i, p := range ps {
		var s sessionView
		mustCall(t, p.url, token, "session.get", map[string]string{"id": c.ID}, &s)
		if s.ID != c.ID {
			t.Errorf("replica %d read %+v, want the session created through nginx", i, s)
		}
	}
	// Through the balancer, requests alternate between the replicas: every
	// one of them sees the others' writes.
	for _, st := range []int{1, 2, 3, 4, 5} {
		mustCall(t, lb, "", "client.transition", map[string]any{"token": c.Token, "state": st}, nil)
		var s sessionView
		mustCall(t, lb, token, "session.get", map[string]string{"id": c.ID}, &s)
		if s.State != st {
			t.Fatalf("read through nginx after the move to %d: state %d", st, s.State)
		}
	}
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
