package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/server"
)

// command is one `sessiond` command: its help text, its flags and what it
// runs. A command with subcommands runs none of its own.
type command struct {
	name    string // as typed, such as "serve" or "add"
	summary string // one line, lower case, no full stop
	args    string // what follows the name in the usage line, such as "NAME [flags]"
	long    string // optional paragraphs after the usage
	sub     []*command
	// setup defines the command's flags on f and returns what runs once
	// they are parsed, with the positional arguments.
	setup func(f *flagSet) func(env *cmdEnv, pos []string) error
}

// cmdEnv is what a running command writes to.
type cmdEnv struct {
	stdout, stderr io.Writer
}

// usageError is a mistake in how a command was called: exit code 2. Its
// text starts with the command, as in "sessiond serve: …".
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// flagSet is a flag.FlagSet whose flags are shown in titled groups, with
// value types that say what a valid value looks like.
type flagSet struct {
	fs      *flag.FlagSet
	groups  []*flagGroup
	metavar map[string]string
	split   map[string]bool     // repeatable flags: env values are comma-separated
	envs    map[string][]string // extra env names of a flag
	// envFile, if set, points at the --env-file flag's value: a file of
	// SESSIOND_<FLAG>=VALUE lines read after the environment.
	envFile *string
	// given holds, after parse, the flags set on the command line or in
	// the environment (not those from the env file).
	given map[string]bool
}

// readEnvFile reads KEY=VALUE lines; blank lines and lines starting with
// # are skipped, and a value may be in single or double quotes.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE, such as SESSIOND_LOG_LEVEL=debug", path, i+1)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

type flagGroup struct {
	title string
	names []string
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{fs: fs, metavar: map[string]string{}, split: map[string]bool{}, envs: map[string][]string{}}
}

// group starts a titled group; the flags defined next belong to it.
func (f *flagSet) group(title string) { f.groups = append(f.groups, &flagGroup{title: title}) }

// Var defines a flag shown as --name METAVAR (no metavar for a boolean).
func (f *flagSet) Var(v flag.Value, name, metavar, usage string) {
	if len(f.groups) == 0 {
		f.group("Flags")
	}
	g := f.groups[len(f.groups)-1]
	g.names = append(g.names, name)
	f.metavar[name] = metavar
	f.fs.Var(v, name, usage)
}

func (f *flagSet) String(p *string, name, metavar, usage string) {
	f.Var((*stringValue)(p), name, metavar, usage)
}

func (f *flagSet) Duration(p *time.Duration, name, usage string) {
	f.Var((*durationValue)(p), name, "DURATION", usage)
}

func (f *flagSet) Int(p *int, name, metavar, usage string) {
	f.Var((*intValue)(p), name, metavar, usage)
}

func (f *flagSet) Float(p *float64, name, metavar, usage string) {
	f.Var((*floatValue)(p), name, metavar, usage)
}

func (f *flagSet) Bool(p *bool, name, usage string) { f.Var((*boolValue)(p), name, "", usage) }

// envNames returns the environment variables that set flag name:
// SESSIOND_<NAME> first, then any extra ones.
func (f *flagSet) envNames(name string) []string {
	return append([]string{"SESSIOND_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}, f.envs[name]...)
}

// parse parses the args of the command at path (such as "sessiond serve"), flags and positional arguments in any order, then
// fills each flag not given from its environment variable. It returns
// the positional arguments, or flag.ErrHelp for -h/--help.
func (f *flagSet) parse(path string, args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, f.explain(path, err)
		}
		args = f.fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	f.given = map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { f.given[fl.Name] = true })
	var err error
	var file map[string]string
	if f.envFile != nil {
		if *f.envFile == "" {
			*f.envFile = os.Getenv("SESSIOND_ENV_FILE")
		}
		if *f.envFile != "" {
			if file, err = readEnvFile(*f.envFile); err != nil {
				return nil, usagef("%s: --env-file %v", path, err)
			}
		}
	}
	f.fs.VisitAll(func(fl *flag.Flag) {
		if f.given[fl.Name] || err != nil {
			return
		}
		for _, env := range f.envNames(fl.Name) {
			v, ok := os.LookupEnv(env)
			if ok {
				f.given[fl.Name] = true
			} else if v, ok = file[env]; !ok {
				continue
			}
			values := []string{v}
			if f.split[fl.Name] {
				values = strings.Split(v, ",")
			}
			for _, v := range values {
				if e := fl.Value.Set(strings.TrimSpace(v)); e != nil {
					err = usagef("%s: %s=%q: %v", path, env, v, e)
					return
				}
			}
		}
	})
	return pos, err
}

var (
	reUndefined = regexp.MustCompile(`^flag provided but not defined: -+(.*)$`)
	reInvalid   = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -(\S+): (.*)$`)
	reNoValue   = regexp.MustCompile(`^flag needs an argument: -+(.*)$`)
)

// explain turns the flag package's error into one line that names the
// flag as typed and says what would work.
func (f *flagSet) explain(cmdName string, err error) error {
	msg := err.Error()
	if m := reUndefined.FindStringSubmatch(msg); m != nil {
		var names []string
		f.fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
		out := fmt.Sprintf("%s: unknown flag %s", cmdName, dashes(m[1]))
		if s := closest(m[1], names); s != "" {
			out += fmt.Sprintf("; did you mean %s?", dashes(s))
		}
		return usagef("%s\nRun '%s --help' for its flags.", out, cmdName)
	}
	if m := reInvalid.FindStringSubmatch(msg); m != nil {
		return usagef("%s: %s %s: %s", cmdName, dashes(m[2]), m[1], m[3])
	}
	if m := reNoValue.FindStringSubmatch(msg); m != nil {
		mv := f.metavar[m[1]]
		if mv == "" {
			mv = "VALUE"
		}
		return usagef("%s: %s needs a value: %s %s", cmdName, dashes(m[1]), dashes(m[1]), mv)
	}
	return usagef("%s: %s", cmdName, msg)
}

// dashes writes a flag name as typed: -c, --addr.
func dashes(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// closest returns the candidate nearest to s if it is near enough to be a
// typo (two edits at most, fewer than s has letters) or s is a prefix of
// it, else "".
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		d := editDistance(s, c)
		if len(s) >= 3 && strings.HasPrefix(c, s) {
			d = min(d, 1)
		}
		if d < bestD && d < len(s) {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, with a swap of two adjacent
// letters counted as one edit.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// writeHelp prints a command's help: summary, usage, subcommands, and
// its flags in groups with their defaults.
func writeHelp(w io.Writer, path string, c *command, f *flagSet) {
	fmt.Fprintf(w, "%s: %s\n\nUsage:\n  %s", path, c.summary, path)
	if c.args != "" {
		fmt.Fprintf(w, " %s", c.args)
	}
	fmt.Fprintln(w)
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(c.long, "\n"))
	}
	if len(c.sub) > 0 {
		fmt.Fprintln(w, "\nCommands:")
		writeCommandList(w, c.sub)
		fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags.\n", path)
	}
	if f == nil {
		return
	}
	width := 0
	label := func(name string) string {
		l := dashes(name)
		if mv := f.metavar[name]; mv != "" {
			l += " " + mv
		}
		return l
	}
	f.fs.VisitAll(func(fl *flag.Flag) { width = max(width, len(label(fl.Name))) })
	width = min(width, 26) // a longer label gets its own line
	for _, g := range f.groups {
		if len(g.names) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", g.title)
		for _, name := range g.names {
			fl := f.fs.Lookup(name)
			line := fmt.Sprintf("  %-*s  %s", width, label(name), fl.Usage)
			if l := label(name); len(l) > width {
				line = fmt.Sprintf("  %s\n  %-*s  %s", l, width, "", fl.Usage)
			}
			if d := fl.DefValue; d != "" && d != "0" && d != "false" {
				line += fmt.Sprintf(" (default %s)", d)
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(f.groups) > 0 {
		fmt.Fprintln(w, "\nEvery flag can also be set in the environment as SESSIOND_<FLAG>, such as")
		var example string
		for _, g := range f.groups {
			for _, name := range g.names {
				if example == "" && len(name) > 1 {
					example = name
				}
			}
		}
		fmt.Fprintf(w, "%s for %s; a flag given wins over the environment.\n", f.envNames(example)[0], dashes(example))
	}
}

func writeCommandList(w io.Writer, cs []*command) {
	width := 0
	for _, c := range cs {
		width = max(width, len(c.name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
	}
}

// runCommand runs c (reached as path, such as "sessiond merchant") with args.
func runCommand(env *cmdEnv, path string, c *command, args []string) error {
	if len(c.sub) > 0 {
		if len(args) == 0 {
			var names []string
			for _, sub := range c.sub {
				names = append(names, sub.name)
			}
			return usagef("%s: want a command: %s\nRun '%s --help' for what each does.", path, strings.Join(names, ", "), path)
		}
		switch args[0] {
		case "-h", "-help", "--help", "help":
			if len(args) > 1 && args[0] == "help" {
				return helpFor(env, path, c, args[1:])
			}
			writeHelp(env.stdout, path, c, nil)
			return nil
		}
		sub, err := findCommand(c.sub, args[0], path)
		if err != nil {
			return err
		}
		return runCommand(env, path+" "+sub.name, sub, args[1:])
	}
	f := newFlagSet(path)
	do := c.setup(f)
	pos, err := f.parse(path, args)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(env.stdout, path, c, f)
		return nil
	}
	if err != nil {
		return err
	}
	return do(env, pos)
}

// helpFor prints the help of the command that args name under c.
func helpFor(env *cmdEnv, path string, c *command, args []string) error {
	for _, a := range args {
		if a == "-h" || a == "--help" { // help --help: the help of help
			a = "help"
		}
		sub, err := findCommand(c.sub, a, path)
		if err != nil {
			return err
		}
		path, c = path+" "+sub.name, sub
	}
	var f *flagSet
	if c.setup != nil {
		f = newFlagSet(path)
		c.setup(f)
	}
	writeHelp(env.stdout, path, c, f)
	return nil
}

// findCommand returns the command named name among cs, or an error that
// suggests the nearest one.
func findCommand(cs []*command, name, path string) (*command, error) {
	var names []string
	for _, c := range cs {
		if c.name == name {
			return c, nil
		}
		names = append(names, c.name)
	}
	msg := fmt.Sprintf("%s: unknown command %q", path, name)
	if s := closest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return nil, usagef("%s\nRun '%s help' for the commands.", msg, path)
}

// Flag values. Each Set error says what a valid value looks like; String
// gives the default as a person would write it.

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v = boolValue(b)
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil || n < 0 {
		return errors.New("want a whole number such as 100")
	}
	*v = intValue(n)
	return nil
}

type floatValue float64

func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Set(s string) error {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return errors.New("want a number such as 50 or 2.5")
	}
	*v = floatValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return humanDuration(time.Duration(*v)) }
func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		return errors.New("want a duration such as 30m, 90s, 6h or 90d")
	}
	*v = durationValue(d)
	return nil
}

// parseDuration is time.ParseDuration plus days: 90d, 1d12h.
func parseDuration(s string) (time.Duration, error) {
	if days, rest, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		d := time.Duration(n) * 24 * time.Hour
		if rest != "" {
			r, err := time.ParseDuration(rest)
			if err != nil {
				return 0, err
			}
			d += r
		}
		return d, nil
	}
	return time.ParseDuration(s)
}

// humanDuration writes d as server.FormatDuration does, and 0 as 0.
func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return server.FormatDuration(d)
}

// durationList is a flag of comma-separated growing positive durations.
type durationList []time.Duration

func (l *durationList) String() string {
	var parts []string
	for _, d := range *l {
		parts = append(parts, humanDuration(d))
	}
	return strings.Join(parts, ",")
}

func (l *durationList) Set(v string) error {
	var out durationList
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, err := parseDuration(part)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration; want offsets such as 10m,30m,60m", part)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return errors.New("offsets must grow, such as 10m,30m,60m")
		}
		out = append(out, d)
	}
	*l = out
	return nil
}

// byteSize is a size flag that takes 1048576, 1MiB, 512KiB or 1MB.
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(v string) error {
	units := []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = s, u.n
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		return errors.New("want a positive size such as 1MiB, 512KiB or 1048576")
	}
	*b = byteSize(n * mult)
	return nil
}
