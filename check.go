package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/store"
)

// errProblems is check's failure once it has printed the problems.
var errProblems = errors.New("the data file has problems")

var checkCmd = &command{
	name:    "check",
	summary: "check a data file for damage: its header, every page and every record",
	args:    "FILE",
	long: `Reads FILE read-only and prints what it found: "ok" and exit code 0, or one
problem per line and exit code 1. Stop the server first (or check a backup):
a file a running server holds is reported as in use.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		return func(env *cmdEnv, pos []string) error {
			if len(pos) != 1 {
				return usagef("sessiond check: want exactly one FILE, such as: sessiond check ./sessiond.db")
			}
			rep, err := store.Check(pos[0], time.Second)
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%s is in use by a running server; stop it first, or check a backup", pos[0])
			}
			if err != nil {
				return err
			}
			if len(rep.Problems) == 0 {
				fmt.Fprintf(env.stdout, "%s: ok (%d pages, %d buckets, %d keys)\n", pos[0], rep.Pages, rep.Buckets, rep.Keys)
				return nil
			}
			for _, p := range rep.Problems {
				fmt.Fprintf(env.stdout, "%s: %s\n", pos[0], p)
			}
			return fmt.Errorf("%s: %d problems found: %w", pos[0], len(rep.Problems), errProblems)
		}
	},
}
