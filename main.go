// Command sessiond serves payment sessions over JSON-RPC 2.0, mirroring the
// Brite merchant API, with its state in one bbolt file.
//
// This package is wiring only: one file per command, each turning flags and
// environment into calls of the packages that do the work (server for
// serve, bench for bench, session and store for the offline commands).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `sessiond serves payment sessions over JSON-RPC 2.0 (Brite's merchant API).

Usage:
  sessiond serve    [flags]                       run the server
  sessiond merchant add NAME [--db PATH]          make a merchant; prints its credentials once
  sessiond merchant list [--db PATH]              list merchants
  sessiond call [--url URL] [--token T] METHOD [PARAMS_JSON]
                                                  make one JSON-RPC call and print the result
  sessiond bench [--url URL] [--method M] [-c 64] [-d 10s] [--merchant PK:SECRET] [--baseline]
                                                  load-test a running server: req/s, p50/p90/p99/max
  sessiond seed [--db PATH] [--sessions N] [--due N] [--merchant PK:SECRET]
                                                  store N deposit sessions at once, for scale tests
  sessiond version                                print the version

Run "sessiond COMMAND --help" for a command's flags. Every flag also reads
SESSIOND_<FLAG> from the environment (SESSIOND_ADDR, SESSIOND_DB, ...).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serve(rest, stderr)
	case "merchant":
		err = merchant(rest, stdout, stderr)
	case "call":
		err = call(rest, stdout, stderr)
	case "bench":
		err = runBench(rest, stdout, stderr)
	case "seed":
		err = seed(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "sessiond", versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "sessiond: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(reportedError)):
		return 2
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "sessiond:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "sessiond:", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// reportedError is a usage error already printed with the usage.
type reportedError struct{ error }
