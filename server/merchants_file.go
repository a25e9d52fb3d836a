package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
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
		if parts[2] != "" && !strings.HasPrefix(parts[2], session.CallbackSecretPrefix) {
			return session.Credentials{}, fmt.Errorf("a callback secret starts with %s", session.CallbackSecretPrefix)
		}
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

// reloadMerchants reads --merchants-file again and applies it as Open
// does: merchants it adds are created, and those whose secret or callback
// secret changed are updated (a new secret revokes their tokens). A
// merchant left out of the file stays as it is (sessiond merchant disable
// stops one). If the file cannot be read, or a line is bad, nothing is
// applied. Each merchant's outcome is logged by id and public key, never
// with a secret the file gave; a callback secret the server generates for
// a new merchant is logged once, as at start-up.
func (m *Main) reloadMerchants(ctx context.Context) error {
	given, err := ReadMerchantsFile(m.cfg.MerchantsFile)
	if err != nil {
		return err
	}
	var created, updated, unchanged int
	for _, cr := range given {
		before, err := m.svc.FindMerchant(ctx, cr.PublicKey)
		if err != nil && !errors.Is(err, session.ErrNotFound) {
			return fmt.Errorf("merchant %s: %w", cr.PublicKey, err)
		}
		withCallbackSecret := cr.CallbackSecret != ""
		after, used, made, err := m.svc.EnsureMerchant(ctx, cr)
		if err != nil {
			return fmt.Errorf("merchant %s: %w", cr.PublicKey, err)
		}
		e := m.log.Info().Str("merchant_id", after.ID).Str("public_key", after.PublicKey)
		switch {
		case made:
			created++
			e = e.Str("merchant", "created").Bool("callback_secret_generated", !withCallbackSecret)
			if !withCallbackSecret {
				// Generated here, and shown only now, as at start-up.
				e = e.Str("callback_secret", used.CallbackSecret)
			}
		case before != nil && (!bytes.Equal(before.SecretHash, after.SecretHash) || before.CallbackSecret != after.CallbackSecret):
			updated++
			e = e.Str("merchant", "updated").
				Bool("secret_changed", before.TokenGeneration != after.TokenGeneration).
				Bool("callback_secret_changed", before.CallbackSecret != after.CallbackSecret)
		default:
			unchanged++
			continue
		}
		e.Msg("reload: merchants file")
	}
	m.log.Info().Int("created", created).Int("updated", updated).Int("unchanged", unchanged).
		Msg("reload: merchants file applied")
	return nil
}
