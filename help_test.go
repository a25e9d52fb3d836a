package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/help")

// TestHelpGolden compares the help of every command with its golden file
// in testdata/help (go test -run TestHelpGolden -update . rewrites them).
func TestHelpGolden(t *testing.T) {
	var walk func(path []string, c *command)
	cases := map[string][]string{"sessiond": {"help"}}
	walk = func(path []string, c *command) {
		for _, sub := range c.sub {
			p := append(append([]string(nil), path...), sub.name)
			cases[strings.Join(append([]string{"sessiond"}, p...), " ")] = append(p, "--help")
			walk(p, sub)
		}
	}
	walk(nil, root)
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 0 {
				t.Fatalf("run(%q) = %d, %s", args, code, errOut.String())
			}
			golden := filepath.Join("testdata", "help", strings.ReplaceAll(name, " ", "_")+".txt")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestHelpGolden -update . writes it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("run(%q) printed\n%s\nwant (%s)\n%s", args, got, golden, want)
			}
		})
	}
}

// TestHelpForms: help COMMAND, COMMAND --help and COMMAND -h print the
// same text.
func TestHelpForms(t *testing.T) {
	for _, forms := range [][][]string{
		{{"help", "serve"}, {"serve", "--help"}, {"serve", "-h"}},
		{{"help", "merchant", "add"}, {"merchant", "add", "--help"}, {"merchant", "help", "add"}},
		{{"help", "merchant"}, {"merchant", "--help"}},
	} {
		var first string
		for i, args := range forms {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 0 {
				t.Errorf("run(%q) = %d, %s", args, code, errOut.String())
			}
			if i == 0 {
				first = out.String()
			} else if out.String() != first {
				t.Errorf("run(%q) printed\n%s\nwant the same as run(%q):\n%s", args, out.String(), forms[0], first)
			}
		}
	}
}

// TestUsageErrors: a mistyped command or flag, or a bad value, exits 2
// with one line that says what would work, and prints no usage dump.
func TestUsageErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "Usage:"},
		{[]string{"sever"}, nil, `sessiond: unknown command "sever"; did you mean "serve"?`},
		{[]string{"help", "mrchant"}, nil, `did you mean "merchant"?`},
		{[]string{"merchant", "lst"}, nil, `sessiond merchant: unknown command "lst"; did you mean "list"?`},
		{[]string{"merchant"}, nil, "sessiond merchant: want a command"},
		{[]string{"serve", "--adr", "x"}, nil, "sessiond serve: unknown flag --adr; did you mean --addr?"},
		{[]string{"serve", "--session-ttl", "30"}, nil, "sessiond serve: --session-ttl 30: want a duration such as 30m"},
		{[]string{"serve", "--max-body", "lots"}, nil, "--max-body lots: want a positive size such as 1MiB"},
		{[]string{"serve", "--max-batch", "-1"}, nil, "--max-batch -1: want a whole number such as 100"},
		{[]string{"serve", "--callback-retry", "10m,5m"}, nil, "offsets must grow, such as 10m,30m,60m"},
		{[]string{"serve", "--addr"}, nil, "sessiond serve: --addr needs a value: --addr ADDRESS"},
		{[]string{"serve", "--log-format", "xml"}, nil, "--log-format xml: want json or console"},
		{[]string{"serve", "--public-url", "127.0.0.1:8080"}, nil, "--public-url 127.0.0.1:8080: want an absolute http or https URL"},
		{[]string{"serve", "--merchant", "pk_only"}, nil, "--merchant pk_only: want PUBLIC_KEY:SECRET"},
		{[]string{"serve", "--db", "postgres://127.0.0.1:1/sessiond", "--unsafe-no-fsync"}, nil, "--unsafe-no-fsync: applies to a bbolt data file; on PostgreSQL, set synchronous_commit"},
		{[]string{"serve"}, map[string]string{"SESSIOND_SESSION_TTL": "30"}, `SESSIOND_SESSION_TTL="30": want a duration such as 30m`},
		{[]string{"serve"}, map[string]string{"SESSIOND_MERCHANT": "pk_only"}, `SESSIOND_MERCHANT="pk_only": want PUBLIC_KEY:SECRET`},
		{[]string{"call"}, nil, "sessiond call: want METHOD [PARAMS_JSON]"},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			if code := run(tt.args, &out, &errOut); code != 2 {
				t.Errorf("run(%q) = %d, want 2", tt.args, code)
			}
			got := errOut.String()
			if !strings.Contains(got, tt.want) {
				t.Errorf("run(%q) said %q, want it to contain %q", tt.args, got, tt.want)
			}
			if tt.args != nil && strings.Contains(got, "Usage:") {
				t.Errorf("run(%q) printed the usage with its error:\n%s", tt.args, got)
			}
		})
	}
}

func TestHumanValues(t *testing.T) {
	for _, tt := range []struct {
		v    interface{ String() string }
		want string
	}{
		{ptr(byteSize(1 << 20)), "1MiB"},
		{ptr(byteSize(512 << 10)), "512KiB"},
		{ptr(byteSize(1000)), "1000"},
		{ptr(durationValue(30 * 60e9)), "30m"},
		{ptr(durationValue(6 * 3600e9)), "6h"},
		{ptr(durationValue(90 * 24 * 3600e9)), "90d"},
		{ptr(durationValue(1500e6)), "1.5s"},
		{ptr(durationList{600e9, 1800e9, 3600e9}), "10m,30m,1h"},
	} {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%v).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
	}
	var d durationValue
	if err := d.Set("1d12h"); err != nil || d != durationValue(36*3600e9) {
		t.Errorf("Set(1d12h) = %v, %v; want 36h", err, d)
	}
}

func ptr[T any](v T) *T { return &v }
