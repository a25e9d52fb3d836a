// Command sessiond serves payment sessions over JSON-RPC 2.0, mirroring the
// Brite merchant API, with its state in one bbolt file.
//
// This package is wiring only: one file per command, each turning flags and
// environment into calls of the packages that do the work (server for
// serve, bench for bench, session and store for the offline commands).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// root is `sessiond` itself; its subcommands are the commands.
var root = &command{
	name:    "sessiond",
	summary: "payment sessions over JSON-RPC 2.0 (Brite's merchant API), in one bbolt file",
	args:    "COMMAND [flags]",
}

func init() {
	root.sub = []*command{serveCmd, merchantCmd, backupCmd, restoreCmd, compactCmd, checkCmd, callCmd, benchCmd, seedCmd, versionCmd, helpCmd}
}

var helpCmd = &command{
	name:    "help",
	summary: "show the help of sessiond or of a command",
	args:    "[COMMAND [SUBCOMMAND]]",
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit code: 0 done,
// 1 failed, 2 called wrongly.
func run(args []string, stdout, stderr io.Writer) int {
	env := &cmdEnv{stdout: stdout, stderr: stderr}
	var err error
	switch {
	case len(args) == 0:
		writeHelp(stderr, "sessiond", root, nil)
		return 2
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		err = helpFor(env, "sessiond", root, args[1:])
	case args[0] == "--version":
		err = runCommand(env, "sessiond version", versionCmd, args[1:])
	default:
		err = runCommand(env, "sessiond", root, args)
	}
	switch {
	case err == nil:
		return 0
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, err)
		return 2
	default:
		fmt.Fprintln(stderr, "sessiond:", err)
		return 1
	}
}
