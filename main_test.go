package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/server"
	"github.com/sessiond/sessiond/session"
)

// binary is the sessiond binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sessiond-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sessiond")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running sessiond serve.
type proc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	ch  chan string
	buf bytes.Buffer
}

// startServer runs `sessiond serve` on a free port with the args and waits
// until it logs that it listens.
func startServer(t *testing.T, args ...string) *proc {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerEnv is startServer with env added to the environment.
func startServerEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startBinary(t, binary, env, args...)
}

// startBinary is startServerEnv with the sessiond binary at bin.
func startBinary(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	cmd.Env = append(append(os.Environ(), "GORACE=halt_on_error=1"), env...)
	return startCmd(t, cmd)
}

// startCmd runs cmd, which runs `sessiond serve` logging JSON to its
// stderr, and waits until it logs that it listens.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &syncBuffer{ch: make(chan string, 1000)}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var rec struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Message == "listening" {
				addr <- rec.Addr
			}
			select {
			case p.logs.ch <- line:
			default:
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case err := <-p.done:
		t.Fatalf("sessiond exited before listening: %v\n%s", err, p.drain())
	case <-time.After(30 * time.Second):
		t.Fatalf("sessiond did not listen within 30s\n%s", p.drain())
	}
	return p
}

// drain returns the log lines read so far.
func (p *proc) drain() string {
	for {
		select {
		case l := <-p.logs.ch:
			p.logs.buf.WriteString(l + "\n")
		default:
			return p.logs.buf.String()
		}
	}
}

// stop sends sig and waits for the process to exit, returning its code.
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("sessiond did not exit within 20s of %v", sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

// rpcCall makes one JSON-RPC call and decodes its result into out; it
// returns the error object, if any.
func rpcCall(t *testing.T, url, bearer, method string, params any, out any) *struct {
	Code int
	Data struct {
		ErrorName string `json:"error_name"`
	}
} {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, url+"/rpc", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	var r struct {
		Result json.RawMessage
		Error  *struct {
			Code int
			Data struct {
				ErrorName string `json:"error_name"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if r.Error == nil && out != nil {
		if err := json.Unmarshal(r.Result, out); err != nil {
			t.Fatalf("%s result: %v", method, err)
		}
	}
	return r.Error
}

func mustCall(t *testing.T, url, bearer, method string, params any, out any) {
	t.Helper()
	if e := rpcCall(t, url, bearer, method, params, out); e != nil {
		t.Fatalf("%s: error %d %s", method, e.Code, e.Data.ErrorName)
	}
}

func authorize(t *testing.T, url, pk, secret string) string {
	t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	mustCall(t, url, "", "merchant.authorize", map[string]string{"public_key": pk, "secret": secret}, &tok)
	return tok.AccessToken
}

// TestEndToEnd runs the server as serve does: authorize, create, move to
// completion, stop, start again on the same file, and read everything back.
func TestEndToEnd(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	merchant := withMerchant("pk_e2e", "sk_e2e", "")
	p := startMain(t, db, merchant)
	token := authorize(t, p.url, "pk_e2e", "sk_e2e")

	var created struct{ ID, Token, URL string }
	mustCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": 50, "country_id": "se", "merchant_reference": "order-1"}, &created)
	if !strings.HasPrefix(created.URL, p.url+"/client/") {
		t.Errorf("url %q, want it under %s/client/", created.URL, p.url)
	}
	for _, st := range []int{1, 2, 3, 4, 5, 8, 9, 12} {
		mustCall(t, p.url, "", "client.transition", map[string]any{"token": created.Token, "state": st}, nil)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	logs := p.logs.String()
	for _, secret := range []string{"sk_e2e", token, created.Token} {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret or token reached the log: %q", secret)
		}
	}

	p = startMain(t, db, merchant)
	if resp, err := http.Get(p.url + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("readyz: %v %v", resp, err)
	}
	var s struct {
		State         int
		StateName     string `json:"state_name"`
		Version       int
		TransactionID string `json:"transaction_id"`
		CurrentStep   int    `json:"current_step"`
	}
	mustCall(t, p.url, token, "session.get", map[string]string{"id": created.ID}, &s)
	if s.State != 12 || s.StateName != "STATE_COMPLETED" || s.Version != 9 || s.TransactionID == "" || s.CurrentStep != 8 {
		t.Errorf("session after restart: %+v, want completed at version 9 with a transaction", s)
	}
	var byRef struct{ Sessions []struct{ ID string } }
	mustCall(t, p.url, token, "session.get_by_merchant_reference", map[string]string{"merchant_reference": "order-1"}, &byRef)
	if len(byRef.Sessions) != 1 || byRef.Sessions[0].ID != created.ID {
		t.Errorf("by reference after restart: %+v", byRef)
	}
}

// TestStartupOrder: a port in use fails before the data file is touched,
// and a malformed --merchant fails before anything is bound or opened.
func TestStartupOrder(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	db := filepath.Join(t.TempDir(), "sessiond.db")
	c := server.DefaultConfig()
	c.Addr, c.DB = busy.Addr().String(), db
	if err := server.New(c).Open(context.Background()); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("Open on a port in use: %v, want a listen error", err)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a failed bind left a data file behind (stat: %v)", err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--db", db, "--addr", "127.0.0.1:0", "--merchant", "pk_only"}, &out, &errOut); code != 2 {
		t.Errorf("serve --merchant pk_only: exit %d, want 2\n%s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "PUBLIC_KEY:SECRET") {
		t.Errorf("serve --merchant pk_only said %q, want it to show PUBLIC_KEY:SECRET", errOut.String())
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("a malformed --merchant left a data file behind (stat: %v)", err)
	}
}

// withMerchant sets the one merchant of a server's config.
func withMerchant(pk, secret, callbackSecret string) func(*server.Config) {
	return func(c *server.Config) {
		c.Merchants = []session.Credentials{{PublicKey: pk, Secret: secret, CallbackSecret: callbackSecret}}
	}
}

// TestLockedDatabase starts a second server, and a merchant command, on a
// database in use by a server without an admin socket: each fails clearly
// with exit code 1, without hanging.
func TestLockedDatabase(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	startServer(t, "--db", db, "--admin-socket", "") // no live admin: the file alone

	cmd := exec.Command(binary, "serve", "--addr", "127.0.0.1:0", "--db", db, "--lock-timeout", "500ms")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("second serve: exit %d (%v), want 1", code, err)
	}
	if !strings.Contains(string(out), "locked by another process") {
		t.Errorf("second serve said %q, want it to say the database is locked", out)
	}

	cmd = exec.Command(binary, "merchant", "add", "shop", "--db", db)
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "stop it first") {
		t.Errorf("merchant add on a running server's database: exit %d, %q", code, out)
	}
}

// TestDefaultMerchant starts on an empty database and uses the logged
// credentials of the default merchant; a restart makes no second one.
func TestDefaultMerchant(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	p := startServer(t, "--db", db)
	var cred struct {
		Message   string `json:"message"`
		PublicKey string `json:"public_key"`
		Secret    string `json:"secret"`
	}
	for _, line := range strings.Split(p.drain(), "\n") {
		if strings.Contains(line, `"secret"`) {
			json.Unmarshal([]byte(line), &cred)
		}
	}
	if cred.Secret == "" {
		t.Fatalf("no default merchant credentials in the log:\n%s", p.logs.buf.String())
	}
	authorize(t, p.url, cred.PublicKey, cred.Secret)
	p.stop(t, syscall.SIGINT)

	p = startServer(t, "--db", db)
	if logs := p.drain(); strings.Contains(logs, `"secret"`) {
		t.Errorf("restart created another default merchant:\n%s", logs)
	}
	p.stop(t, syscall.SIGTERM)

	out, err := exec.Command(binary, "merchant", "list", "--db", db).Output()
	if err != nil || !strings.Contains(string(out), "default") || !strings.Contains(string(out), cred.PublicKey) {
		t.Errorf("merchant list: %v\n%s", err, out)
	}
}

// TestMerchantAddAndCall makes a merchant offline and uses it through the
// call command.
func TestMerchantAddAndCall(t *testing.T) {
	db := filepath.Join(t.TempDir(), "sessiond.db")
	out, err := exec.Command(binary, "merchant", "add", "shop", "--db", db).Output()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			fields[f[0]] = f[1]
		}
	}
	for _, k := range []string{"merchant_id", "public_key", "secret", "callback_secret"} {
		if fields[k] == "" {
			t.Fatalf("merchant add printed no %s:\n%s", k, out)
		}
	}
	if !strings.HasPrefix(fields["callback_secret"], "whsec_") {
		t.Errorf("callback_secret %q, want whsec_…", fields["callback_secret"])
	}

	p := startServer(t, "--db", db)
	params, _ := json.Marshal(map[string]string{"public_key": fields["public_key"], "secret": fields["secret"]})
	cmd := exec.Command(binary, "call", "--url", p.url, "merchant.authorize", string(params))
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(out, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("call printed %q", out)
	}
	cmd = exec.Command(binary, "call", "--url", p.url, "--token", tok.AccessToken, "session.get", `{"id":"nope"}`)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "-32004") {
		t.Errorf("call of a missing session: %v, %q; want exit 1 naming -32004", err, stderr.String())
	}
}

// TestMerchantFromEnv: SESSIOND_MERCHANT and SESSIOND_MERCHANTS (both
// comma-separated) make merchants, as --merchant does.
func TestMerchantFromEnv(t *testing.T) {
	p := startServerEnv(t, []string{"SESSIOND_MERCHANT=pk_env1:sk_env1,pk_env2:sk_env2", "SESSIOND_MERCHANTS=pk_env3:sk_env3"},
		"--db", filepath.Join(t.TempDir(), "sessiond.db"))
	for _, pk := range []string{"pk_env1", "pk_env2", "pk_env3"} {
		authorize(t, p.url, pk, "sk_"+pk[3:])
	}
}

// TestVersion: the version names the Go toolchain, and the module version
// from the build info.
func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "sessiond ") || !strings.Contains(string(out), runtime.Version()) || strings.Contains(string(out), "dev\n") {
		t.Errorf("version printed %q, want sessiond, the module version and %s", out, runtime.Version())
	}
}

// TestMetrics scrapes /metrics after known traffic.
func TestMetrics(t *testing.T) {
	p := startMain(t, filepath.Join(t.TempDir(), "sessiond.db"), withMerchant("pk_m", "sk_m", ""))
	token := authorize(t, p.url, "pk_m", "sk_m")
	var a, b struct{ ID, Token string }
	mustCall(t, p.url, token, "session.create_deposit", map[string]any{"amount": "1", "country_id": "se"}, &a)
	mustCall(t, p.url, token, "session.create_authentication", map[string]any{"country_id": "fi"}, &b)
	for _, st := range []int{1, 2, 12} {
		mustCall(t, p.url, "", "client.transition", map[string]any{"token": b.Token, "state": st}, nil)
	}
	rpcCall(t, p.url, token, "session.get", map[string]string{"id": "missing"}, nil)
	rpcCall(t, p.url, token, "no.such.method", map[string]any{}, nil)

	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`sessiond_sessions_created_total{type="deposit"} 1`,
		`sessiond_sessions_created_total{type="authentication"} 1`,
		`sessiond_session_moves_total{state="STATE_COMPLETED",type="authentication"} 1`,
		`sessiond_session_moves_total{state="STATE_AUTHENTICATION_STARTED",type="authentication"} 1`,
		`sessiond_rpc_requests_total{code="0",method="client.transition"} 3`,
		`sessiond_rpc_requests_total{code="-32004",method="session.get"} 1`,
		`sessiond_rpc_requests_total{code="-32601",method="unknown"} 1`,
		`sessiond_rpc_duration_seconds_count{method="session.create_deposit"} 1`,
		`sessiond_outbox_pending 0`,
		`sessiond_websocket_connections 0`,
		`sessiond_store_commit_writes_count`,
		`go_memstats_heap_inuse_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestNodeSuites runs the npm test suites under testdata (third-party
// JSON-RPC clients, the OpenRPC validator, the browser tests): npm ci, then
// npm test, each against binaries they build from this tree. Without npm
// (or, for the browser suite, without Chromium) they are skipped, unless
// SESSIOND_REQUIRE_NODE=1, as .ci/run sets, makes that a failure.
func TestNodeSuites(t *testing.T) {
	if testing.Short() {
		t.Skip("npm suites are not short")
	}
	require := os.Getenv("SESSIOND_REQUIRE_NODE") == "1"
	missing := func(what string) {
		if require {
			t.Fatalf("%s is missing and SESSIOND_REQUIRE_NODE=1", what)
		}
		t.Skipf("%s is missing; run .ci/run to install it", what)
	}
	if _, err := exec.LookPath("npm"); err != nil {
		missing("npm")
	}
	dirs, _ := filepath.Glob(filepath.Join("testdata", "*", "package.json"))
	if len(dirs) == 0 {
		t.Fatal("no npm suites under testdata")
	}
	for _, pkg := range dirs {
		dir := filepath.Dir(pkg)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			if filepath.Base(dir) == "browser" {
				if _, err := os.Stat("/usr/bin/chromium"); err != nil {
					missing("/usr/bin/chromium")
				}
			}
			for _, args := range [][]string{{"ci", "--no-audit", "--no-fund"}, {"test"}} {
				cmd := exec.Command("npm", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "SESSIOND="+binary) // for harness.test.mjs
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("npm %s in %s: %v\n%s", args[0], dir, err, out)
				}
				if args[0] == "test" {
					t.Logf("npm test in %s:\n%s", dir, tail(out, 40))
				}
			}
		})
	}
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startProcs is the runtime's own GOMAXPROCS for this process, as a
// child started without GOMAXPROCS gets it (go test -cpu changes it later).
var startProcs = runtime.GOMAXPROCS(0)

// TestRuntimeDefaults: serve runs with GOGC 400 and, with no CPU limit
// below the cores, one P more than them, unless GOGC or GOMAXPROCS say
// otherwise.
func TestRuntimeDefaults(t *testing.T) {
	gauge := func(p *proc, name string) string {
		t.Helper()
		resp, err := http.Get(p.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		t.Fatalf("/metrics lacks %s", name)
		return ""
	}
	args := []string{"--db", filepath.Join(t.TempDir(), "sessiond.db"), "--admin-socket", ""}
	if os.Getenv("GOMAXPROCS") == "" && os.Getenv("GOGC") == "" {
		want := startProcs // under a CPU limit below the cores, the runtime's own
		if startProcs == runtime.NumCPU() {
			want++
		}
		p := startServer(t, args...)
		if got, want := gauge(p, "go_sched_gomaxprocs_threads"), strconv.Itoa(want); got != want {
			t.Errorf("GOMAXPROCS %s, want %s", got, want)
		}
		if got := gauge(p, "go_gc_gogc_percent"); got != "400" {
			t.Errorf("GOGC %s, want 400", got)
		}
		p.stop(t, syscall.SIGTERM)
	}
	p := startServerEnv(t, []string{"GOMAXPROCS=1", "GOGC=50"}, args...)
	if got := gauge(p, "go_sched_gomaxprocs_threads"); got != "1" {
		t.Errorf("GOMAXPROCS=1: %s", got)
	}
	if got := gauge(p, "go_gc_gogc_percent"); got != "50" {
		t.Errorf("GOGC=50: %s", got)
	}
}
