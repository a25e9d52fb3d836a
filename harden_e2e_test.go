package main

// Attacks on the real binary, each bounded in count and time and sent to
// loopback only. Figures (latency percentiles, RSS) are printed with t.Log
// for the README's Reliability section; what is asserted is correctness
// (no refusals, the right statuses, memory under its bound), never a time.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var plain struct {
	once sync.Once
	path string
	err  error
}

// plainBinary builds sessiond without the race detector, whose shadow
// memory and slowdown would make RSS and latency figures meaningless.
func plainBinary(t *testing.T) string {
	t.Helper()
	plain.once.Do(func() {
		plain.path = filepath.Join(filepath.Dir(binary), "sessiond-plain")
		if out, err := exec.Command("go", "build", "-o", plain.path, ".").CombinedOutput(); err != nil {
			plain.err = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if plain.err != nil {
		t.Fatal(plain.err)
	}
	return plain.path
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

// procStatus returns a field of /proc/PID/status in KiB (VmRSS, VmHWM).
func procStatus(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kib
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestSlowBodyAttack holds 520 connections (more than --max-inflight's
// 512 slots) that send their headers and one byte of a 100-byte body,
// then nothing. Meanwhile a normal client's session.get calls must all
// succeed; a declared body far over --max-body is refused with 413 at
// once; and a stalled body is cut off with 408 after --body-timeout.
func TestSlowBodyAttack(t *testing.T) {
	p := startBinary(t, plainBinary(t), nil, "--db", filepath.Join(t.TempDir(), "sessiond.db"), "--merchant", "pk_slow:sk_slow")
	addr := strings.TrimPrefix(p.url, "http://")
	bearer := authorize(t, p.url, "pk_slow", "sk_slow")
	var created struct{ ID string }
	mustCall(t, p.url, bearer, "session.create_deposit", map[string]string{"amount": "5", "country_id": "se"}, &created)

	const attackers = 520
	conns := make([]net.Conn, 0, attackers)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range attackers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /rpc HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", addr)
	}
	// The server has read every attacker's headers once a request on a
	// fresh connection behind them all is answered; from then on, each
	// holds whatever a stalled body holds.
	mustCall(t, p.url, bearer, "session.state", map[string]string{"id": created.ID}, nil)

	client := &http.Client{Timeout: 30 * time.Second}
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"session.get","params":{"id":%q}}`, created.ID)
	const calls = 500
	var lat []time.Duration
	refused := 0
	for range calls {
		req, _ := http.NewRequest(http.MethodPost, p.url+"/rpc", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+bearer)
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("session.get during the attack: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, time.Since(start))
		if resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"result":{`)) {
			refused++
		}
	}
	t.Logf("%d session.get calls during %d slow-body connections: %d refused; p50 %v, p99 %v, max %v",
		calls, attackers, refused, percentile(lat, .5), percentile(lat, .99), percentile(lat, 1))
	if refused > 0 {
		t.Errorf("%d of %d session.get calls refused during the attack, want none", refused, calls)
	}

	// A declared length over --max-body: 413 without waiting for the body.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /rpc HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{", addr)
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); !strings.Contains(line, " 413 ") {
		t.Errorf("Content-Length 10e9: %q (%v), want 413 before the body", line, err)
	}

	// The stalled bodies are cut off after --body-timeout (10s).
	conns[0].SetReadDeadline(time.Now().Add(20 * time.Second))
	if line, err := bufio.NewReader(conns[0]).ReadString('\n'); !strings.Contains(line, " 408 ") {
		t.Errorf("a stalled body: %q (%v), want 408 after --body-timeout", line, err)
	}
}

// TestBatchAmplification has 64 clients send a batch of 100 rpc.discover
// (5 KB in, 6.5 MB of results were it answered whole) for 10 seconds, and
// checks that the server's peak RSS stays under 256 MiB, and that the
// answers are capped by --max-response.
func TestBatchAmplification(t *testing.T) {
	p := startBinary(t, plainBinary(t), nil, "--db", filepath.Join(t.TempDir(), "sessiond.db"), "--merchant", "pk_amp:sk_amp")
	pid := p.cmd.Process.Pid
	var batch bytes.Buffer
	batch.WriteByte('[')
	for i := range 100 {
		if i > 0 {
			batch.WriteByte(',')
		}
		fmt.Fprintf(&batch, `{"jsonrpc":"2.0","id":%d,"method":"rpc.discover"}`, i)
	}
	batch.WriteByte(']')
	before := procStatus(t, pid, "VmRSS")

	const clients, duration = 64, 10 * time.Second
	var batches, answered, largest atomic.Int64
	var failed atomic.Int64
	end := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for time.Now().Before(end) {
				req, _ := http.NewRequest(http.MethodPost, p.url+"/rpc", bytes.NewReader(batch.Bytes()))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				batches.Add(1)
				answered.Add(n)
				for old := largest.Load(); n > old && !largest.CompareAndSwap(old, n); old = largest.Load() {
				}
			}
		})
	}
	wg.Wait()
	peak := procStatus(t, pid, "VmHWM")
	t.Logf("%d clients × batches of 100 rpc.discover (%d bytes) for %v: %d batches, %.0f MB answered, largest answer %d KB, %d failed; RSS %d MiB before, peak %d MiB",
		clients, batch.Len(), duration, batches.Load(), float64(answered.Load())/1e6, largest.Load()/1000, failed.Load(), before/1024, peak/1024)
	if peak >= 256*1024 {
		t.Errorf("peak RSS %d MiB, want under 256 MiB", peak/1024)
	}
	if limit := int64(2<<20) + 100*512; largest.Load() > limit {
		t.Errorf("largest answer %d bytes, want at most --max-response plus the refusals (%d)", largest.Load(), limit)
	}
	if batches.Load() == 0 || failed.Load() > 0 {
		t.Errorf("%d batches answered, %d failed", batches.Load(), failed.Load())
	}
}

// TestMerchantsFile: serve takes merchants from --merchants-file, so no
// secret is in its command line, and refuses a file others may read.
func TestMerchantsFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "merchants")
	if err := os.WriteFile(file, []byte("# merchants\npk_file:sk_file_secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "sessiond.db")
	p := startServer(t, "--db", db, "--merchants-file", file)
	authorize(t, p.url, "pk_file", "sk_file_secret")
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid))
	if err != nil || bytes.Contains(cmdline, []byte("sk_file_secret")) {
		t.Errorf("/proc/PID/cmdline %q (%v) holds the secret", cmdline, err)
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}

	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--merchants-file", file).CombinedOutput()
	if code := exitCode(err); code != 1 || !bytes.Contains(out, []byte("chmod 600")) {
		t.Errorf("a world-readable merchants file: exit %d, %q; want 1 and a hint", code, out)
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// TestDamagedDataFile damages copies of a real data file and runs the
// binary on them: a truncated file makes serve exit 1 with a clear
// message (no SIGBUS, no goroutine dump) and check report it; a file with
// one page overwritten serves, a request that reads that page gets -32603,
// and the process goes on serving the rest.
func TestDamagedDataFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	p := startServer(t, "--db", good, "--merchant", "pk_dmg:sk_dmg")
	bearer := authorize(t, p.url, "pk_dmg", "sk_dmg")
	const marker = "DAMAGE-THIS-PAGE"
	var victim, other struct{ ID string }
	mustCall(t, p.url, bearer, "session.create_deposit", map[string]string{"amount": "5", "country_id": "se", "customer_firstname": marker}, &victim)
	for range 40 { // fill pages between the two
		mustCall(t, p.url, bearer, "session.create_deposit", map[string]string{"amount": "5", "country_id": "se", "customer_firstname": strings.Repeat("x", 40)}, nil)
	}
	mustCall(t, p.url, bearer, "session.create_deposit", map[string]string{"amount": "5", "country_id": "se"}, &other)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d", code)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	check := func(file string) (int, string) {
		out, err := exec.Command(binary, "check", file).CombinedOutput()
		return exitCode(err), string(out)
	}
	var pages int
	if code, out := check(good); code != 0 || !strings.Contains(out, ": ok (") {
		t.Fatalf("check of the sound file: exit %d, %s", code, out)
	} else if _, err := fmt.Sscanf(out[strings.Index(out, ": ok ("):], ": ok (%d pages", &pages); err != nil {
		t.Fatalf("check of the sound file: %v in %s", err, out)
	}
	data = data[:pages*os.Getpagesize()] // the pages, without the runway of zeros past them

	truncated := filepath.Join(dir, "truncated.db")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a serve that starts fails the test, not hangs it
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "serve", "--addr", "127.0.0.1:0", "--db", truncated).CombinedOutput()
	if code := exitCode(err); code != 1 || !bytes.Contains(out, []byte("truncated")) || bytes.Contains(out, []byte("goroutine")) {
		t.Errorf("serve on a truncated file: exit %d, %s; want 1 and a message that says truncated", code, out)
	}
	if code, out := check(truncated); code != 1 || !strings.Contains(out, "truncated") {
		t.Errorf("check of a truncated file: exit %d, %s", code, out)
	}

	damaged := filepath.Join(dir, "damaged.db")
	bad := bytes.Clone(data)
	const pageSize = 4096
	hit := 0
	for off := 0; ; {
		i := bytes.Index(bad[off:], []byte(marker))
		if i < 0 {
			break
		}
		page := (off + i) / pageSize
		for j := page * pageSize; j < (page+1)*pageSize; j++ {
			bad[j] = 0xA5
		}
		off, hit = (page+1)*pageSize, hit+1
	}
	if hit == 0 {
		t.Fatal("the marker is not in the file")
	}
	if err := os.WriteFile(damaged, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	p = startServer(t, "--db", damaged)
	bearer = authorize(t, p.url, "pk_dmg", "sk_dmg")
	for range 3 {
		if e := rpcCall(t, p.url, bearer, "session.get", map[string]string{"id": victim.ID}, nil); e == nil || e.Code != -32603 {
			t.Errorf("session.get of the session on the damaged page: %+v, want -32603", e)
		}
	}
	mustCall(t, p.url, bearer, "session.get", map[string]string{"id": other.ID}, nil)
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit %d after serving a damaged file, want 0 (it lived on)", code)
	}
	if code, out := check(damaged); code != 1 {
		t.Errorf("check of a damaged file: exit %d, %s", code, out)
	} else {
		t.Logf("check of the file with %d damaged pages:\n%s", hit, out)
	}
}
