package session_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

// TestSecretChangeRevokesTokens: a new secret, by --merchant or by
// rotation, and an explicit revocation each end every token the merchant
// held, refresh tokens included, while the other merchants' live on.
func TestSecretChangeRevokesTokens(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	other, err := f.svc.Authorize(ctx, mustCredentials(t, f, "other").PublicKey, "sk_other")
	if err != nil {
		t.Fatal(err)
	}
	cr := session.Credentials{PublicKey: "pk_shop", Secret: "first"}
	m, _, _, err := f.svc.EnsureMerchant(ctx, cr)
	if err != nil {
		t.Fatal(err)
	}

	revokers := []struct {
		name   string
		revoke func() string // returns the secret that works afterwards
	}{
		{"EnsureMerchant with a new secret", func() string {
			cr.Secret = "second"
			if _, _, _, err := f.svc.EnsureMerchant(ctx, cr); err != nil {
				t.Fatal(err)
			}
			return cr.Secret
		}},
		{"RotateSecret", func() string {
			got, err := f.svc.RotateSecret(ctx, m.ID)
			if err != nil || got.Secret == "" || got.PublicKey != "pk_shop" {
				t.Fatalf("RotateSecret: %+v, %v", got, err)
			}
			return got.Secret
		}},
		{"RevokeTokens", func() string {
			if err := f.svc.RevokeTokens(ctx, m.ID); err != nil {
				t.Fatal(err)
			}
			return cr.Secret
		}},
	}
	for _, r := range revokers {
		tok, err := f.svc.Authorize(ctx, "pk_shop", cr.Secret)
		if err != nil {
			t.Fatalf("%s: authorize before: %v", r.name, err)
		}
		// Remembered by Authenticate's cache, and refreshed once, before.
		if _, err := f.svc.Authenticate(ctx, tok.AccessToken); err != nil {
			t.Fatal(err)
		}
		tok, err = f.svc.Refresh(ctx, tok.AccessToken, tok.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Authenticate(ctx, tok.AccessToken); err != nil {
			t.Fatal(err)
		}

		cr.Secret = r.revoke()

		if _, err := f.svc.Authenticate(ctx, tok.AccessToken); !errors.Is(err, session.ErrUnauthorized) {
			t.Errorf("%s: access token after: %v, want unauthorized", r.name, err)
		}
		if _, err := f.svc.Refresh(ctx, tok.AccessToken, tok.RefreshToken); !errors.Is(err, session.ErrUnauthorized) {
			t.Errorf("%s: refresh token after: %v, want unauthorized", r.name, err)
		}
		if _, err := f.svc.Authorize(ctx, "pk_shop", cr.Secret); err != nil {
			t.Errorf("%s: authorize with the secret in force: %v", r.name, err)
		}
	}
	if _, err := f.svc.Authorize(ctx, "pk_shop", "first"); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("the first secret after two changes: %v, want unauthorized", err)
	}
	if _, err := f.svc.Authenticate(ctx, other.AccessToken); err != nil {
		t.Errorf("another merchant's token: %v, want it alive", err)
	}
	if err := f.svc.RevokeTokens(ctx, "no-such-merchant"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("RevokeTokens of nobody: %v, want not found", err)
	}
	if _, err := f.svc.RotateSecret(ctx, "no-such-merchant"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("RotateSecret of nobody: %v, want not found", err)
	}
	for _, ref := range []string{m.ID, "pk_shop"} {
		if got, err := f.svc.FindMerchant(ctx, ref); err != nil || got.ID != m.ID {
			t.Errorf("FindMerchant(%q): %v, %v", ref, got, err)
		}
	}
}

func mustCredentials(t *testing.T, f *fixture, name string) session.Credentials {
	t.Helper()
	_, cr, err := f.svc.AddMerchant(context.Background(), name, session.Credentials{Secret: "sk_" + name})
	if err != nil {
		t.Fatal(err)
	}
	return cr
}

// TestRefreshChainEnds: refreshing cannot extend a chain past
// TokenChainTTL from the authorize that began it.
func TestRefreshChainEnds(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	cr := mustCredentials(t, f, "chain")
	tok, err := f.svc.Authorize(ctx, cr.PublicKey, cr.Secret)
	if err != nil {
		t.Fatal(err)
	}
	// Refresh every 5 hours, within each pair's lifetime, until the day
	// since authorize is over.
	refreshes := 0
	for {
		f.clock.Add(5 * time.Hour)
		next, err := f.svc.Refresh(ctx, tok.AccessToken, tok.RefreshToken)
		if err != nil {
			if session.ErrorCode(err) != session.CodeUnauthorized {
				t.Fatalf("refresh %d: %v, want unauthorized", refreshes+1, err)
			}
			break
		}
		tok = next
		refreshes++
		if refreshes > 10 {
			t.Fatal("refreshes went on past a day")
		}
	}
	if want := int(session.DefaultTokenChainTTL / (5 * time.Hour)); refreshes != want {
		t.Errorf("%d refreshes in the chain, want %d (one day / 5h)", refreshes, want)
	}
	if _, err := f.svc.Authorize(ctx, cr.PublicKey, cr.Secret); err != nil {
		t.Errorf("authorize after the chain ended: %v", err)
	}
}

// TestLegacySecretUpgraded: a merchant stored with the salted SHA-256 of
// earlier versions still authorizes, and its record is rehashed with
// argon2id on that success.
func TestLegacySecretUpgraded(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	salt := []byte("0123456789abcdef")
	sum := sha256.Sum256(append(append([]byte{}, salt...), "sk_old"...))
	old := &session.Merchant{ID: "01a20000-0000-7000-8000-000000000001", Name: "old", PublicKey: "pk_old",
		SecretSalt: salt, SecretHash: sum[:], CallbackSecret: "whsec_AAAA", Created: f.clock.Now()}
	if err := f.db.CreateMerchant(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authorize(ctx, "pk_old", "sk_wrong"); !errors.Is(err, session.ErrUnauthorized) {
		t.Fatalf("wrong secret on a SHA-256 record: %v", err)
	}
	if m, _ := f.db.Merchant(ctx, old.ID); m.SecretKDF != "" {
		t.Fatalf("a failed attempt rehashed the record: %q", m.SecretKDF)
	}
	if _, err := f.svc.Authorize(ctx, "pk_old", "sk_old"); err != nil {
		t.Fatalf("right secret on a SHA-256 record: %v", err)
	}
	m, err := f.db.Merchant(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.SecretKDF == "" || string(m.SecretHash) == string(sum[:]) {
		t.Errorf("record after a success: kdf %q, want argon2id", m.SecretKDF)
	}
	for _, secret := range []string{"sk_old", "sk_wrong"} {
		_, err := f.svc.Authorize(ctx, "pk_old", secret)
		if got, want := err == nil, secret == "sk_old"; got != want {
			t.Errorf("upgraded record, secret %s: %v", secret, err)
		}
	}
}

// TestAuthorizeLimits brute-forces one public key from one address, then
// another key from the same address, and checks that guesses stop at the
// limits with a retry hint, that a success is not counted, and that the
// budget comes back with time.
func TestAuthorizeLimits(t *testing.T) {
	f := mustService(t)
	ctx := context.Background()
	cr := mustCredentials(t, f, "target")
	attacker := session.Client{IP: "203.0.113.9"}

	guesses := func(c session.Client, key string, n int) (unauthorized, limited int, retry time.Duration) {
		for i := range n {
			_, err := f.svc.AuthorizeFrom(ctx, c, key, fmt.Sprintf("guess-%d", i))
			var se *session.Error
			switch {
			case errors.Is(err, session.ErrUnauthorized):
				unauthorized++
			case errors.As(err, &se) && se.Code == session.CodeRateLimited:
				limited++
				retry = se.RetryAfter
			default:
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		return
	}
	kb := session.DefaultKeyAttempts.Burst
	if u, l, retry := guesses(attacker, cr.PublicKey, 100); u != kb || l != 100-kb || retry <= 0 {
		t.Errorf("100 guesses at one key: %d evaluated, %d limited (retry %v); want %d, %d and a hint", u, l, retry, kb, 100-kb)
	}
	// The key is locked for everyone, the right secret included, until
	// the budget refills.
	if _, err := f.svc.AuthorizeFrom(ctx, session.Client{IP: "198.51.100.1"}, cr.PublicKey, cr.Secret); session.ErrorCode(err) != session.CodeRateLimited {
		t.Errorf("right secret on a locked key: %v, want rate limited", err)
	}
	f.clock.Add(session.DefaultKeyAttempts.Every)
	if _, err := f.svc.AuthorizeFrom(ctx, session.Client{IP: "198.51.100.1"}, cr.PublicKey, cr.Secret); err != nil {
		t.Errorf("right secret after one refill: %v", err)
	}
	// Successes give their attempt back.
	for range 3 * kb {
		if _, err := f.svc.AuthorizeFrom(ctx, session.Client{IP: "198.51.100.1"}, cr.PublicKey, cr.Secret); err != nil {
			t.Fatalf("repeated successes: %v", err)
		}
	}

	// Spraying many keys from one address stops at the address's limit
	// (it spent kb above, and got back what one key refill's time
	// brings); another address in the same IPv6 /64 shares its budget.
	ab := session.DefaultAddressAttempts.Burst
	spray := 0
	for i := range 100 {
		_, err := f.svc.AuthorizeFrom(ctx, attacker, fmt.Sprintf("pk_random_%d", i), "x")
		if errors.Is(err, session.ErrUnauthorized) {
			spray++
		}
	}
	refilled := int(session.DefaultKeyAttempts.Every / session.DefaultAddressAttempts.Every)
	if want := ab - kb + refilled; spray != want {
		t.Errorf("spraying keys from one address: %d evaluated, want %d", spray, want)
	}
	v6 := func(host string) session.Client { return session.Client{IP: "2001:db8:1:2::" + host} }
	if u, _, _ := guesses(v6("1"), "pk_v6", ab/2); u != ab/2 {
		t.Fatalf("v6 guesses: %d", u)
	}
	for i := range ab {
		f.svc.AuthorizeFrom(ctx, v6(fmt.Sprint(i+2)), fmt.Sprintf("pk_v6_%d", i), "x")
	}
	if _, err := f.svc.AuthorizeFrom(ctx, v6("ffff"), "pk_v6_other", "x"); session.ErrorCode(err) != session.CodeRateLimited {
		t.Errorf("another host of the same /64 past its budget: %v, want rate limited", err)
	}
}

// raceStore is a store on which another replica creates the merchant with
// the public key pk between the caller's lookup of it and its create.
type raceStore struct {
	*store.DB
	pk    string
	other *session.Service
	raced bool
}

func (s *raceStore) MerchantByPublicKey(ctx context.Context, pk string) (*session.Merchant, error) {
	m, err := s.DB.MerchantByPublicKey(ctx, pk)
	if pk == s.pk && !s.raced && errors.Is(err, session.ErrNotFound) {
		s.raced = true
		if _, _, _, err := s.other.EnsureMerchant(ctx, session.Credentials{PublicKey: pk, Secret: "sk_race"}); err != nil {
			return nil, err
		}
	}
	return m, err
}

// TestEnsureMerchantRacingReplica: two replicas starting together with the
// same --merchant both find it missing; the one whose create loses to the
// other's brings the winner's record up to date instead of failing.
func TestEnsureMerchantRacingReplica(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "sessiond.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other := session.NewService(db, argon2.IDKey)
	other.SecretCost = session.SecretCost{MemoryKiB: 64, Passes: 1}
	svc := session.NewService(&raceStore{DB: db, pk: "pk_race", other: other}, argon2.IDKey)
	svc.SecretCost = other.SecretCost
	ctx := context.Background()

	m, _, created, err := svc.EnsureMerchant(ctx, session.Credentials{PublicKey: "pk_race", Secret: "sk_race"})
	if err != nil {
		t.Fatalf("EnsureMerchant after losing the create: %v", err)
	}
	if created || m.PublicKey != "pk_race" {
		t.Errorf("EnsureMerchant = %s, created %v; want the other replica's merchant, not created", m.PublicKey, created)
	}
	if _, err := svc.Authorize(ctx, "pk_race", "sk_race"); err != nil {
		t.Errorf("Authorize with the secret both were given: %v", err)
	}
	ms, err := svc.Merchants(ctx)
	if err != nil || len(ms) != 1 {
		t.Errorf("Merchants = %d, %v; want the one merchant", len(ms), err)
	}
}
