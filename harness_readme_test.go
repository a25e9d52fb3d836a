package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// readmeSnippets are the files the README shows verbatim, by the language
// of their fenced block.
var readmeSnippets = map[string]string{
	"testdata/harness/suite.sh":      "sh",
	"sessiondtest/readme_test.go":    "go",
	"testdata/node/harness.test.mjs": "js",
}

// TestReadmeSnippets: the README's three test snippets are the files that
// run (the shell suite here, the Go test in sessiondtest, the Node test in
// TestNodeSuites), character for character.
func TestReadmeSnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for file, lang := range readmeSnippets {
		b, err := os.ReadFile(filepath.FromSlash(file))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), "```"+lang+"\n"+string(b)+"```\n") {
			t.Errorf("README.md does not show %s verbatim in a ```%s block", file, lang)
		}
	}
}

// TestReadmeShellSuite runs the README's shell suite against the binary.
func TestReadmeShellSuite(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is missing")
		}
		t.Skip("curl is missing")
	}
	cmd := exec.Command("bash", filepath.Join("testdata", "harness", "suite.sh"))
	cmd.Env = append(os.Environ(), "SESSIOND="+binary)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("suite.sh: %v\n%s", err, out)
	}
	if got := strings.Count(string(out), "ok - "); got != 2 || strings.Contains(string(out), "not ok") {
		t.Errorf("suite.sh printed\n%s\nwant two ok lines", out)
	}
}

// scenario is one row of the README's table of magic references.
type scenario struct {
	ref       string
	end       int
	errorCode string // "" for null
}

// readmeScenarios reads the table of magic references from the README;
// the aborted:<error_code> row becomes one row per error code of API.md.
func readmeScenarios(t *testing.T) []scenario {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z:<>_]+)` \\| [^|]+ \\| (\\d+) \\| `?([a-z_<>]+)`?[^|]*\\|$")
	var out []scenario
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		end, _ := strconv.Atoi(m[2])
		code := m[3]
		if code == "null" {
			code = ""
		}
		if m[1] == "aborted:<error_code>" {
			codes := []string{session.ErrorCodeExpired, session.ErrorCodeMerchantRejected}
			for c := range session.ErrorCodes {
				codes = append(codes, c)
			}
			slices.Sort(codes)
			for _, c := range codes {
				out = append(out, scenario{"aborted:" + c, end, c})
			}
			continue
		}
		out = append(out, scenario{m[1], end, code})
	}
	if len(out) < 6 {
		t.Fatalf("found %d rows of magic references in README.md, want the table", len(out))
	}
	return out
}

// TestMagicScenarios: each magic merchant reference of the README's table
// ends where the table says, with its callbacks; "approval" waits at 4 for
// session.approve.
func TestMagicScenarios(t *testing.T) {
	rcv := newRecorder(t)
	p := sandboxServer(t, "--sandbox-delay", "20ms")
	tok := authorize(t, p.url, "pk_a", "sk_a")
	all := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, sc := range readmeScenarios(t) {
		t.Run(sc.ref, func(t *testing.T) {
			id, _ := createDeposit(t, p.url, tok, map[string]any{
				"merchant_reference": sc.ref, "callbacks": callbackParams(rcv.srv.URL, all, nil),
			})
			if sc.ref == "approval" {
				eventually(t, "approval waits at 4", func() bool { return stateOf(t, p.url, tok, id).State == 4 })
				var s struct{ Approval string }
				mustCall(t, p.url, tok, "session.get", map[string]string{"id": id}, &s)
				if s.Approval != "pending" {
					t.Fatalf("approval %q at 4, want pending", s.Approval)
				}
				mustCall(t, p.url, tok, "session.approve", map[string]string{"id": id}, nil)
			}
			if sc.ref == "expire" {
				// At once: the create answered after the expiry.
				if s := stateOf(t, p.url, tok, id); s.State != sc.end {
					t.Fatalf("right after create: state %d, want %d", s.State, sc.end)
				}
			}
			eventually(t, "the final state", func() bool { return stateOf(t, p.url, tok, id).State >= 10 })
			s := stateOf(t, p.url, tok, id)
			code := ""
			if s.ErrorCode != nil {
				code = *s.ErrorCode
			}
			if s.State != sc.end || code != sc.errorCode {
				t.Fatalf("ended at %d %q, want %d %q", s.State, code, sc.end, sc.errorCode)
			}
			eventually(t, "the final state's callback", func() bool { return journalHas(t, p.url, tok, id, sc.end) })
		})
	}
}

// journalHas reports whether the journal has a delivered callback of the
// session for the state.
func journalHas(t *testing.T, url, token, id string, state int) bool {
	for _, a := range journal(t, url, token, map[string]any{"session_id": id}) {
		if a.Outcome == "delivered" && strings.Contains(string(a.Body), `"session_state":`+strconv.Itoa(state)+`}`) {
			return true
		}
	}
	return false
}
