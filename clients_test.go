package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGoClients runs the suite of third-party Go JSON-RPC clients
// (go-ethereum's rpc, ybbus/jsonrpc, filecoin's go-jsonrpc) in
// testdata/goclients, a module of its own so that their dependencies stay
// out of sessiond's, against the binary built for these tests.
func TestGoClients(t *testing.T) {
	if testing.Short() {
		t.Skip("the client suite is not short")
	}
	bin, err := filepath.Abs(binary)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "test", "-count=1", "-v", "./...")
	cmd.Dir = filepath.Join("testdata", "goclients")
	cmd.Env = append(os.Environ(), "SESSIOND_BINARY="+bin, "GORACE=halt_on_error=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test in %s: %v\n%s", cmd.Dir, err, out)
	}
	t.Logf("go test in %s:\n%s", cmd.Dir, tail(out, 30))
}
