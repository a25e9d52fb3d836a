package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Credentials are a merchant's secrets as generated or given, shown once
// when the merchant is made and never stored in the clear (but for the
// callback secret, which signs callbacks).
type Credentials struct {
	MerchantID     string `json:"merchant_id"`
	PublicKey      string `json:"public_key"`
	Secret         string `json:"secret"`
	CallbackSecret string `json:"callback_secret"`
}

// Tokens is the answer to merchant.authorize and merchant.token.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	Expires      time.Time `json:"-"`
}

// DefaultTokenChainTTL is the default of Service.TokenChainTTL: a merchant
// authorizes with its secret at least once a day.
const DefaultTokenChainTTL = 24 * time.Hour

// CallbackSecretPrefix starts every callback secret, as in Standard Webhooks.
const CallbackSecretPrefix = "whsec_"

// AddMerchant makes a merchant named name, generating every credential
// left empty, and returns the credentials. CodeConflict if the public key
// is taken.
func (s *Service) AddMerchant(ctx context.Context, name string, cr Credentials) (*Merchant, Credentials, error) {
	if strings.TrimSpace(name) == "" {
		return nil, cr, FieldError(NameMissingParameter, "name", "a merchant needs a name")
	}
	if err := s.generate(&cr); err != nil {
		return nil, cr, err
	}
	id, _, err := s.newID()
	if err != nil {
		return nil, cr, err
	}
	m := &Merchant{ID: id, Name: name, PublicKey: cr.PublicKey, CallbackSecret: cr.CallbackSecret, Created: s.Now()}
	if err := s.setSecret(m, cr.Secret); err != nil {
		return nil, cr, err
	}
	if err := s.store.CreateMerchant(ctx, m); err != nil {
		return nil, cr, err
	}
	cr.MerchantID = m.ID
	return m, cr, nil
}

// EnsureMerchant makes the merchant with cr's public key, or brings a stored
// one up to date with cr's secret (and callback secret, if given). A new
// secret revokes every token the merchant holds. It reports whether it made
// one; generated credentials are in the returned Credentials.
func (s *Service) EnsureMerchant(ctx context.Context, cr Credentials) (*Merchant, Credentials, bool, error) {
	if cr.PublicKey == "" || cr.Secret == "" {
		return nil, cr, false, FieldError(NameInvalidParams, "merchant", "a merchant needs PUBLIC_KEY:SECRET")
	}
	if cr.CallbackSecret != "" && !strings.HasPrefix(cr.CallbackSecret, CallbackSecretPrefix) {
		return nil, cr, false, FieldError(NameInvalidParams, "merchant", "a callback secret starts with %s", CallbackSecretPrefix)
	}
	found, err := s.store.MerchantByPublicKey(ctx, cr.PublicKey)
	if errors.Is(err, ErrNotFound) {
		m, made, addErr := s.AddMerchant(ctx, cr.PublicKey, cr)
		if !errors.Is(addErr, ErrPublicKeyTaken) {
			return m, made, addErr == nil, addErr
		}
		// Another replica, starting with the same merchant, made it
		// between the lookup and the create: update its record instead.
		found, err = s.store.MerchantByPublicKey(ctx, cr.PublicKey)
	}
	if err != nil {
		return nil, cr, false, err
	}
	cr.MerchantID = found.ID
	m, err := s.updateMerchant(ctx, found.ID, func(m *Merchant) (bool, error) {
		changed := false
		same, err := s.verifySecret(ctx, m, cr.Secret)
		if err != nil {
			return false, err
		}
		if !same || m.SecretKDF != s.SecretCost.kdf() {
			if err := s.setSecret(m, cr.Secret); err != nil {
				return false, err
			}
			changed = true
		}
		if !same {
			m.TokenGeneration++
		}
		if cr.CallbackSecret != "" && cr.CallbackSecret != m.CallbackSecret {
			m.CallbackSecret, changed = cr.CallbackSecret, true
		}
		return changed, nil
	})
	if err != nil {
		return nil, cr, false, err
	}
	cr.CallbackSecret = m.CallbackSecret
	return m, cr, false, nil
}

// FindMerchant returns the merchant whose id or public key is ref;
// ErrNotFound.
func (s *Service) FindMerchant(ctx context.Context, ref string) (*Merchant, error) {
	m, err := s.store.Merchant(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		m, err = s.store.MerchantByPublicKey(ctx, ref)
	}
	return m, err
}

// RotateSecret gives the merchant with the id a new generated secret and
// revokes every token it holds; the returned Credentials carry the new
// secret, shown only now. ErrNotFound if there is no such merchant.
func (s *Service) RotateSecret(ctx context.Context, merchantID string) (Credentials, error) {
	var cr Credentials
	if err := s.generate(&cr); err != nil {
		return cr, err
	}
	m, err := s.updateMerchant(ctx, merchantID, func(m *Merchant) (bool, error) {
		if err := s.setSecret(m, cr.Secret); err != nil {
			return false, err
		}
		m.TokenGeneration++
		return true, nil
	})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{MerchantID: m.ID, PublicKey: m.PublicKey, Secret: cr.Secret, CallbackSecret: m.CallbackSecret}, nil
}

// RevokeTokens revokes every access and refresh token of the merchant with
// the id, at once: calls with them get ErrUnauthorized and the merchant
// authorizes again with its secret. ErrNotFound if there is no such
// merchant.
func (s *Service) RevokeTokens(ctx context.Context, merchantID string) error {
	_, err := s.updateMerchant(ctx, merchantID, func(m *Merchant) (bool, error) {
		m.TokenGeneration++
		return true, nil
	})
	return err
}

// updateMerchant re-reads the merchant with the id, lets change modify it
// and stores it if change reports a change, then forgets the tokens
// remembered for it. Writes of merchants are serialized, so a revocation
// is never lost to a concurrent write of the record it read before.
func (s *Service) updateMerchant(ctx context.Context, id string, change func(*Merchant) (bool, error)) (*Merchant, error) {
	s.merchantMu.Lock()
	defer s.merchantMu.Unlock()
	m, err := s.store.Merchant(ctx, id)
	if err != nil {
		return nil, err
	}
	changed, err := change(m)
	if err != nil || !changed {
		return m, err
	}
	if err := s.store.PutMerchant(ctx, m); err != nil {
		return nil, err
	}
	s.auth.forget(m.ID)
	return m, nil
}

func (s *Service) generate(cr *Credentials) error {
	var err error
	gen := func(dst *string, prefix string, n int) {
		if *dst == "" && err == nil {
			*dst, err = randomString(s.Random, prefix, n)
		}
	}
	gen(&cr.PublicKey, "pk_", 12)
	gen(&cr.Secret, "sk_", 32)
	if cr.CallbackSecret == "" && err == nil {
		b := make([]byte, 24)
		if _, err = s.Random.Read(b); err == nil {
			cr.CallbackSecret = CallbackSecretPrefix + stdBase64(b)
		}
	}
	if err != nil {
		return fmt.Errorf("session: generate credentials: %w", err)
	}
	return nil
}

// setSecret stores secret's argon2id hash, with a new salt, in m, and
// remembers the secret as verified for m's new record.
func (s *Service) setSecret(m *Merchant, secret string) error {
	salt := make([]byte, 16)
	if _, err := s.Random.Read(salt); err != nil {
		return fmt.Errorf("session: salt: %w", err)
	}
	h, err := deriveSecret(s.argon2id, s.SecretCost.kdf(), salt, secret)
	if err != nil {
		return err
	}
	m.SecretSalt, m.SecretHash, m.SecretKDF = salt, h, s.SecretCost.kdf()
	s.verified.remember(m, secret)
	return nil
}

// verifySecret reports whether secret is m's: from the verified-credentials
// cache when it was verified before, else by the slow hash.
func (s *Service) verifySecret(ctx context.Context, m *Merchant, secret string) (bool, error) {
	if s.verified.check(m, secret) {
		return true, nil
	}
	if err := acquireKDF(ctx); err != nil {
		return false, err
	}
	h, err := deriveSecret(s.argon2id, m.SecretKDF, m.SecretSalt, secret)
	releaseKDF()
	if err != nil {
		return false, fmt.Errorf("session: merchant %s: %w", m.ID, err)
	}
	ok := equalHash(m.SecretHash, h)
	if ok {
		s.verified.remember(m, secret)
	}
	return ok, nil
}

// Merchants returns every merchant, oldest first.
func (s *Service) Merchants(ctx context.Context) ([]*Merchant, error) {
	return s.store.Merchants(ctx)
}

// Authorize trades a merchant's public key and secret for tokens, for a
// caller whose address is unknown; see AuthorizeFrom.
func (s *Service) Authorize(ctx context.Context, publicKey, secret string) (*Tokens, error) {
	return s.AuthorizeFrom(ctx, Client{}, publicKey, secret)
}

// AuthorizeFrom trades a merchant's public key and secret for tokens,
// beginning a new refresh chain. ErrUnauthorized if they do not match;
// CodeRateLimited, with RetryAfter, once the public key or the client's
// address has used up its failed attempts (KeyAttempts, AddressAttempts).
// Every attempt counts until it succeeds, so neither concurrency nor
// batches multiply guesses; a success gives its attempt back. Stored
// SHA-256 secrets are upgraded to argon2id on success.
func (s *Service) AuthorizeFrom(ctx context.Context, c Client, publicKey, secret string) (*Tokens, error) {
	now := s.Now()
	key, addr := attemptKey(publicKey), addressKey(c.IP)
	if wait, ok := s.attempts.reserve(s.KeyAttempts, s.AddressAttempts, key, addr, now); !ok {
		return nil, &Error{Code: CodeRateLimited, Name: NameRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("too many failed attempts; retry in %ds", int(wait.Round(time.Second)/time.Second))}
	}
	m, err := s.store.MerchantByPublicKey(ctx, publicKey)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		s.attempts.refund(s.KeyAttempts, s.AddressAttempts, key, addr, now)
		return nil, err
	}
	ok, err := s.verifySecret(ctx, m, secret)
	if err != nil {
		s.attempts.refund(s.KeyAttempts, s.AddressAttempts, key, addr, now)
		return nil, err
	}
	if !ok {
		return nil, ErrUnauthorized
	}
	s.attempts.refund(s.KeyAttempts, s.AddressAttempts, key, addr, now)
	if m.Disabled {
		return nil, ErrUnauthorized
	}
	if m.SecretKDF != s.SecretCost.kdf() {
		if m, err = s.upgradeSecret(ctx, m.ID, secret); err != nil {
			return nil, err
		}
	}
	return s.issue(ctx, m, now, nil)
}

// upgradeSecret rehashes a verified secret kept in an older form.
func (s *Service) upgradeSecret(ctx context.Context, id, secret string) (*Merchant, error) {
	return s.updateMerchant(ctx, id, func(m *Merchant) (bool, error) {
		if m.SecretKDF == s.SecretCost.kdf() {
			return false, nil // upgraded meanwhile
		}
		if ok, err := s.verifySecret(ctx, m, secret); err != nil || !ok {
			return false, err // changed meanwhile: the caller still verified the one it read
		}
		return true, s.setSecret(m, secret)
	})
}

// Refresh trades a token pair for a new one; the old refresh token stops
// working, the old access token lives out its time. ErrUnauthorized unless
// the refresh token is live, was issued with the access token, has not
// been revoked, and its chain is younger than TokenChainTTL.
func (s *Service) Refresh(ctx context.Context, access, refresh string) (*Tokens, error) {
	rt, err := s.token(ctx, refresh, TokenRefresh)
	if err != nil {
		return nil, err
	}
	if !equalHash(rt.Pair, hashToken(access)) {
		return nil, ErrUnauthorized
	}
	m, err := s.store.Merchant(ctx, rt.MerchantID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if rt.Generation != m.TokenGeneration {
		return nil, ErrUnauthorized
	}
	start := rt.ChainStart
	if start.IsZero() { // issued before chains were recorded: its chain starts at its own issue
		start = rt.Expires.Add(-refreshExtra - s.TokenTTL)
	}
	if s.TokenChainTTL > 0 && !s.Now().Before(start.Add(s.TokenChainTTL)) {
		return nil, Errorf(CodeUnauthorized, NameUnauthorized, "the refresh chain has ended; authorize again")
	}
	return s.issue(ctx, m, start, [][]byte{rt.Hash})
}

func (s *Service) issue(ctx context.Context, m *Merchant, chainStart time.Time, revoke [][]byte) (*Tokens, error) {
	now := s.Now()
	var t Tokens
	var err error
	if t.AccessToken, err = randomString(s.Random, "at_", 32); err != nil {
		return nil, fmt.Errorf("session: new token: %w", err)
	}
	if t.RefreshToken, err = randomString(s.Random, "rt_", 32); err != nil {
		return nil, fmt.Errorf("session: new token: %w", err)
	}
	t.Expires = now.Add(s.TokenTTL)
	ah, rh := hashToken(t.AccessToken), hashToken(t.RefreshToken)
	add := []*Token{
		{Hash: ah, Kind: TokenAccess, MerchantID: m.ID, Expires: t.Expires, Pair: rh, Generation: m.TokenGeneration, ChainStart: chainStart},
		{Hash: rh, Kind: TokenRefresh, MerchantID: m.ID, Expires: t.Expires.Add(refreshExtra), Pair: ah, Generation: m.TokenGeneration, ChainStart: chainStart},
	}
	if err := s.store.PutTokens(ctx, add, revoke); errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized // the refresh token was used meanwhile
	} else if err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *Service) token(ctx context.Context, token string, kind TokenKind) (*Token, error) {
	if token == "" {
		return nil, ErrUnauthorized
	}
	t, err := s.store.Token(ctx, hashToken(token))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if t.Kind != kind || !s.Now().Before(t.Expires) {
		return nil, ErrUnauthorized
	}
	return t, nil
}

// Authenticate returns the merchant an access token belongs to.
// ErrUnauthorized for a missing, unknown, expired or revoked token.
//
// It runs on every merchant call, so it remembers the tokens and merchants
// it has read: merchants change, and their tokens are revoked, only
// through this Service, which forgets them then.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (*Merchant, error) {
	if accessToken == "" {
		return nil, ErrUnauthorized
	}
	h := hashToken(accessToken)
	now := s.Now()
	if m, ok := s.auth.lookup(h, now); ok {
		return m, nil
	}
	epoch := s.auth.epoch()
	t, err := s.token(ctx, accessToken, TokenAccess)
	if err != nil {
		return nil, err
	}
	m, err := s.store.Merchant(ctx, t.MerchantID)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if t.Generation != m.TokenGeneration {
		return nil, ErrUnauthorized
	}
	s.auth.remember(h, m, t.Expires, epoch)
	return m, nil
}

// authCache maps access-token hashes to their merchants until the tokens
// expire. It holds at most authCacheSize tokens, dropping one at random to
// make room.
type authCache struct {
	mu     sync.RWMutex
	tokens map[[32]byte]cachedToken
	names  map[string]string // merchant id → name, for the hosted page
	forgot uint64            // how many times forget ran
}

type cachedToken struct {
	m       *Merchant
	expires time.Time
}

const authCacheSize = 10000

func (c *authCache) lookup(hash []byte, now time.Time) (*Merchant, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, ok := c.tokens[[32]byte(hash)]
	if !ok || !now.Before(t.expires) {
		return nil, false
	}
	return t.m, true
}

// epoch returns a value to give remember: a token read after it is
// remembered only if nothing was forgotten meanwhile, so a revocation
// racing with a read is never undone by the read's stale merchant.
func (c *authCache) epoch() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.forgot
}

func (c *authCache) remember(hash []byte, m *Merchant, expires time.Time, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.forgot {
		return
	}
	if c.tokens == nil {
		c.tokens = map[[32]byte]cachedToken{}
	}
	if len(c.tokens) >= authCacheSize {
		for h := range c.tokens { // map order is random
			delete(c.tokens, h)
			break
		}
	}
	c.tokens[[32]byte(hash)] = cachedToken{m, expires}
}

// name returns the remembered name of the merchant with the id.
func (c *authCache) name(merchantID string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.names[merchantID]
	return n, ok
}

// rememberName keeps the name of a merchant read after epoch, unless
// something was forgotten meanwhile.
func (c *authCache) rememberName(merchantID, name string, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.forgot {
		return
	}
	if c.names == nil {
		c.names = map[string]string{}
	}
	if len(c.names) >= authCacheSize {
		for id := range c.names { // map order is random
			delete(c.names, id)
			break
		}
	}
	c.names[merchantID] = name
}

// forget drops every remembered token and the name of the merchant with
// the id.
func (c *authCache) forget(merchantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgot++
	delete(c.names, merchantID)
	for h, t := range c.tokens {
		if t.m.ID == merchantID {
			delete(c.tokens, h)
		}
	}
}

// AttemptLimit is a budget of failed merchant.authorize attempts: Burst at
// once, then one more each Every.
type AttemptLimit struct {
	Burst int
	Every time.Duration
}

// Default limits of failed merchant.authorize attempts: 10 per public key
// and then one per 6 s (10 a minute), 20 per client address and then one
// per 3 s (20 a minute).
var (
	DefaultKeyAttempts     = AttemptLimit{Burst: 10, Every: 6 * time.Second}
	DefaultAddressAttempts = AttemptLimit{Burst: 20, Every: 3 * time.Second}
)

// attemptLimiter holds a token bucket per public key and per client
// address. Each map holds at most maxAttemptBuckets buckets; full buckets
// (which remember nothing) are dropped first to make room.
type attemptLimiter struct {
	mu    sync.Mutex
	keys  map[string]*attemptBucket
	addrs map[string]*attemptBucket
}

const maxAttemptBuckets = 10000

type attemptBucket struct {
	tokens float64
	at     time.Time
}

// level refills b for now and returns its tokens.
func (b *attemptBucket) level(l AttemptLimit, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+float64(d)/float64(l.Every))
		b.at = now
	}
	return b.tokens
}

func bucketOf(m map[string]*attemptBucket, l AttemptLimit, k string, now time.Time) *attemptBucket {
	if b := m[k]; b != nil {
		return b
	}
	if len(m) >= maxAttemptBuckets {
		for k, b := range m {
			if b.level(l, now) >= float64(l.Burst) {
				delete(m, k)
			}
		}
		for k := range m { // still full: drop one at random
			if len(m) < maxAttemptBuckets {
				break
			}
			delete(m, k)
		}
	}
	b := &attemptBucket{tokens: float64(l.Burst), at: now}
	m[k] = b
	return b
}

// reserve takes one attempt from both the key's and the address's budget,
// or from neither; when it cannot, it says how long until it could.
func (a *attemptLimiter) reserve(kl, al AttemptLimit, key, addr string, now time.Time) (time.Duration, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys == nil {
		a.keys, a.addrs = map[string]*attemptBucket{}, map[string]*attemptBucket{}
	}
	var kb, ab *attemptBucket
	var wait time.Duration
	if kl.Burst > 0 {
		kb = bucketOf(a.keys, kl, key, now)
		if t := kb.level(kl, now); t < 1 {
			wait = max(wait, time.Duration((1-t)*float64(kl.Every)))
		}
	}
	if al.Burst > 0 {
		ab = bucketOf(a.addrs, al, addr, now)
		if t := ab.level(al, now); t < 1 {
			wait = max(wait, time.Duration((1-t)*float64(al.Every)))
		}
	}
	if wait > 0 {
		return max(wait, time.Second), false
	}
	if kb != nil {
		kb.tokens--
	}
	if ab != nil {
		ab.tokens--
	}
	return 0, true
}

// refund gives back an attempt that did not fail.
func (a *attemptLimiter) refund(kl, al AttemptLimit, key, addr string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if b := a.keys[key]; b != nil && kl.Burst > 0 {
		b.tokens = min(float64(kl.Burst), b.level(kl, now)+1)
	}
	if b := a.addrs[addr]; b != nil && al.Burst > 0 {
		b.tokens = min(float64(al.Burst), b.level(al, now)+1)
	}
}

// attemptKey bounds the memory an attacker's public keys take: any length
// in, 32 bytes kept.
func attemptKey(publicKey string) string {
	h := sha256.Sum256([]byte(publicKey))
	return string(h[:])
}

// addressKey groups IPv6 clients by /64, what one host usually holds.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
