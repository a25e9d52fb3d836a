package rpc_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBriteIntegrations replays testdata/brite at the repository's root:
// the requests that real Brite integrations send (a payment provider of
// a TypeScript commerce platform, a .NET cashier, a Node casino backend),
// in Brite's wire style on /api, with the answers they rely on.
func TestBriteIntegrations(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "brite", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no case files in testdata/brite (%v)", err)
	}
	for _, file := range files {
		cases := loadCases(t, file)
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					if c.skip != "" && os.Getenv("SESSIOND_RUN_SKIPPED") == "" {
						t.Skipf("%s:%d: %s", file, c.line, c.skip)
					}
					cfg := testConfig()
					cfg.StrictParams = c.strict
					ts := mustServer(t, cfg)
					fx := mustFixture(t, ts)
					for _, ex := range c.exchanges {
						ts.replay(t, fx, file, ex)
					}
					if lines := ts.log.errorLines(); len(lines) > 0 {
						t.Errorf("%s:%d: the server logged errors:\n%s", file, c.line, strings.Join(lines, "\n"))
					}
				})
			}
		})
	}
}
