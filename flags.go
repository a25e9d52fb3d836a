package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// parseFlags parses args with flags and positional arguments in any
// order, then fills every flag not given from SESSIOND_<FLAG>. It returns
// the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, reportedError{err} // the flag package printed it
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "SESSIOND_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if f.Name == "merchant" {
			env = "SESSIOND_MERCHANTS"
		}
		v, ok := os.LookupEnv(env)
		if set[f.Name] || !ok || err != nil {
			return
		}
		values := []string{v}
		if f.Name == "merchant" {
			values = strings.Split(v, ",")
		}
		for _, v := range values {
			if e := fs.Set(f.Name, strings.TrimSpace(v)); e != nil {
				err = usageError{fmt.Sprintf("%s=%q: %v", env, v, e)}
			}
		}
	})
	return pos, err
}

// durationList is a flag of comma-separated durations.
type durationList []time.Duration

func (l *durationList) String() string {
	var parts []string
	for _, d := range *l {
		parts = append(parts, d.String())
	}
	return strings.Join(parts, ",")
}

func (l *durationList) Set(v string) error {
	var out durationList
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration", part)
		}
		if len(out) > 0 && d <= out[len(out)-1] {
			return errors.New("offsets must grow")
		}
		out = append(out, d)
	}
	*l = out
	return nil
}

// byteSize is a size flag that takes 1048576, 1MiB, 512KiB or 1MB.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

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
		return errors.New("want a positive size such as 1MiB")
	}
	*b = byteSize(n * mult)
	return nil
}
