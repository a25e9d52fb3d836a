package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version, if set at build time with -ldflags "-X main.version=…", wins
// over the module version in the build info.
var version = ""

var versionCmd = &command{
	name:    "version",
	summary: "print the version, VCS revision and Go version of this binary",
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		return func(env *cmdEnv, pos []string) error {
			if len(pos) > 0 {
				return usagef("sessiond version: takes no arguments")
			}
			fmt.Fprintln(env.stdout, "sessiond", versionLine())
			return nil
		}
	},
}

// versionString is the module version alone, as logged at start.
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// versionLine is the version with the VCS revision and time the binary
// was built from, such as "v1.2.0 (revision 4ea0529c1a2b, 2026-12-01T08:55:10Z) go1.23.4".
func versionLine() string {
	var vcs []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		var rev, at, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = "modified"
				}
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" {
			vcs = append(vcs, "revision "+rev)
		}
		for _, s := range []string{at, modified} {
			if s != "" {
				vcs = append(vcs, s)
			}
		}
	}
	out := versionString()
	if len(vcs) > 0 {
		out += " (" + strings.Join(vcs, ", ") + ")"
	}
	return out + " " + runtime.Version()
}
