// Package goclients drives a real sessiond with independent Go JSON-RPC 2.0
// client libraries: go-ethereum's rpc, ybbus/jsonrpc and filecoin's
// go-jsonrpc. It is a module of its own so that their dependencies stay out
// of sessiond's; the root package's TestGoClients runs it with the binary it
// built (SESSIOND_BINARY), or it builds one itself.
package goclients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The merchant every test uses.
const (
	publicKey = "pk_goclients"
	secret    = "sk_goclients_0123456789abcdefghijklmnopqrstuv"
)

// baseURL is the running server's, e.g. http://127.0.0.1:41234.
var baseURL string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sessiond-goclients")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin := os.Getenv("SESSIOND_BINARY")
	if bin == "" {
		bin = filepath.Join(dir, "sessiond")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build sessiond: %v\n%s", err, out)
			return 1
		}
	}
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", filepath.Join(dir, "sessiond.db"),
		"--merchant", publicKey+":"+secret, "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	addr := make(chan string, 1)
	var logs bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var rec struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Message == "listening" {
				addr <- rec.Addr
			}
			if logs.Len() < 1<<20 {
				logs.Write(append(sc.Bytes(), '\n'))
			}
		}
	}()
	select {
	case a := <-addr:
		baseURL = "http://" + a
	case <-time.After(60 * time.Second):
		fmt.Fprintf(os.Stderr, "sessiond did not listen within 60s\n%s", logs.String())
		return 1
	}
	return m.Run()
}

func rpcURL() string { return baseURL + "/rpc" }
func wsURL() string  { return "ws" + strings.TrimPrefix(baseURL, "http") + "/rpc/ws" }

// post sends one JSON-RPC request with net/http, for the fixtures the
// client libraries are not under test for.
func post(t *testing.T, bearer, method string, params any) json.RawMessage {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, _ := http.NewRequest(http.MethodPost, rpcURL(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r struct {
		Result json.RawMessage
		Error  json.RawMessage
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Error != nil {
		t.Fatalf("%s: %s (%v)", method, b, err)
	}
	return r.Result
}

// accessToken authorizes the merchant over plain HTTP.
func accessToken(t *testing.T) string {
	t.Helper()
	var tok tokens
	json.Unmarshal(post(t, "", "merchant.authorize", map[string]string{"public_key": publicKey, "secret": secret}), &tok)
	if tok.AccessToken == "" {
		t.Fatal("no access token")
	}
	return tok.AccessToken
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// The wire shapes the tests read (only the members they check).
type tokens struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	Expires      float64 `json:"expires"`
}

type created struct {
	ID    string `json:"id"`
	Token string `json:"token"`
	URL   string `json:"url"`
}

type sessionView struct {
	ID                string      `json:"id"`
	State             int         `json:"state"`
	StateName         string      `json:"state_name"`
	Amount            json.Number `json:"amount"`
	CountryID         string      `json:"country_id"`
	MerchantReference string      `json:"merchant_reference"`
	Version           int         `json:"version"`
}

type stateView struct {
	ID        string `json:"id"`
	State     int    `json:"state"`
	StateName string `json:"state_name"`
	Version   int    `json:"version"`
}

type errorData struct {
	ErrorName    string `json:"error_name"`
	ErrorMessage string `json:"error_message"`
	State        string `json:"state"`
	Field        string `json:"field"`
}

func deposit(ref string) map[string]any {
	return map[string]any{"amount": "50.00", "country_id": "se", "merchant_reference": ref}
}

// checkSession checks a session.get result of a fresh deposit.
func checkSession(t *testing.T, got sessionView, c created, ref string) {
	t.Helper()
	if got.ID != c.ID || got.State != 0 || got.StateName != "STATE_CREATED" || got.Amount != "50.00" ||
		got.CountryID != "se" || got.MerchantReference != ref || got.Version != 1 {
		t.Errorf("session.get: %+v, want deposit %s at 0, 50.00 se %s, version 1", got, c.ID, ref)
	}
}
