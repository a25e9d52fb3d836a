package server

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/sessiond/sessiond/session"
)

// ParseMerchant parses PUBLIC_KEY:SECRET[:CALLBACK_SECRET], as --merchant
// and the lines of a merchants file give it.
func ParseMerchant(spec string) (session.Credentials, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return session.Credentials{}, fmt.Errorf("want PUBLIC_KEY:SECRET or PUBLIC_KEY:SECRET:CALLBACK_SECRET")
	}
	cr := session.Credentials{PublicKey: parts[0], Secret: parts[1]}
	if len(parts) == 3 {
		cr.CallbackSecret = parts[2]
	}
	return cr, nil
}

// ReadMerchantsFile reads the merchants of --merchants-file: one
// PUBLIC_KEY:SECRET[:CALLBACK_SECRET] per line; blank lines and lines
// starting with # are skipped. The file holds secrets, so one that its
// group or others may read or write is refused. Errors name the line,
// never its content.
func ReadMerchantsFile(path string) ([]session.Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("merchants file: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("merchants file: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("merchants file %s has mode %04o: it holds secrets, so its group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	var out []session.Credentials
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		cr, err := ParseMerchant(string(line))
		if err != nil {
			return nil, fmt.Errorf("merchants file %s, line %d: %w", path, n, err)
		}
		out = append(out, cr)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("merchants file %s: %w", path, err)
	}
	return out, nil
}
