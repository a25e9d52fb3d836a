package session

import (
	"context"
	"errors"
	"fmt"
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
// one up to date with cr's secret (and callback secret, if given). It
// reports whether it made one; generated credentials are in the returned
// Credentials.
func (s *Service) EnsureMerchant(ctx context.Context, cr Credentials) (*Merchant, Credentials, bool, error) {
	if cr.PublicKey == "" || cr.Secret == "" {
		return nil, cr, false, FieldError(NameInvalidParams, "merchant", "a merchant needs PUBLIC_KEY:SECRET")
	}
	if cr.CallbackSecret != "" && !strings.HasPrefix(cr.CallbackSecret, CallbackSecretPrefix) {
		return nil, cr, false, FieldError(NameInvalidParams, "merchant", "a callback secret starts with %s", CallbackSecretPrefix)
	}
	m, err := s.store.MerchantByPublicKey(ctx, cr.PublicKey)
	if errors.Is(err, ErrNotFound) {
		m, cr, err := s.AddMerchant(ctx, cr.PublicKey, cr)
		return m, cr, err == nil, err
	}
	if err != nil {
		return nil, cr, false, err
	}
	cr.MerchantID = m.ID
	changed := false
	if !equalHash(m.SecretHash, hashSecret(m.SecretSalt, cr.Secret)) {
		if err := s.setSecret(m, cr.Secret); err != nil {
			return nil, cr, false, err
		}
		changed = true
	}
	if cr.CallbackSecret != "" && cr.CallbackSecret != m.CallbackSecret {
		m.CallbackSecret, changed = cr.CallbackSecret, true
	}
	cr.CallbackSecret = m.CallbackSecret
	if changed {
		if err := s.store.PutMerchant(ctx, m); err != nil {
			return nil, cr, false, err
		}
		s.auth.forget(m.ID)
	}
	return m, cr, false, nil
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

func (s *Service) setSecret(m *Merchant, secret string) error {
	salt := make([]byte, 16)
	if _, err := s.Random.Read(salt); err != nil {
		return fmt.Errorf("session: salt: %w", err)
	}
	m.SecretSalt, m.SecretHash = salt, hashSecret(salt, secret)
	return nil
}

// Merchants returns every merchant, oldest first.
func (s *Service) Merchants(ctx context.Context) ([]*Merchant, error) {
	return s.store.Merchants(ctx)
}

// Authorize trades a merchant's public key and secret for tokens.
// ErrUnauthorized if they do not match.
func (s *Service) Authorize(ctx context.Context, publicKey, secret string) (*Tokens, error) {
	m, err := s.store.MerchantByPublicKey(ctx, publicKey)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if !equalHash(m.SecretHash, hashSecret(m.SecretSalt, secret)) {
		return nil, ErrUnauthorized
	}
	return s.issue(ctx, m.ID, nil)
}

// Refresh trades a token pair for a new one; the old refresh token stops
// working, the old access token lives out its time. ErrUnauthorized unless
// the refresh token is live and was issued with the access token.
func (s *Service) Refresh(ctx context.Context, access, refresh string) (*Tokens, error) {
	rt, err := s.token(ctx, refresh, TokenRefresh)
	if err != nil {
		return nil, err
	}
	if !equalHash(rt.Pair, hashToken(access)) {
		return nil, ErrUnauthorized
	}
	return s.issue(ctx, rt.MerchantID, [][]byte{rt.Hash})
}

func (s *Service) issue(ctx context.Context, merchantID string, revoke [][]byte) (*Tokens, error) {
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
		{Hash: ah, Kind: TokenAccess, MerchantID: merchantID, Expires: t.Expires, Pair: rh},
		{Hash: rh, Kind: TokenRefresh, MerchantID: merchantID, Expires: t.Expires.Add(refreshExtra), Pair: ah},
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
// ErrUnauthorized for a missing, unknown or expired token.
//
// It runs on every merchant call, so it remembers the tokens and merchants
// it has read: access tokens are never revoked before they expire, and
// merchants change only through this Service, which forgets them then.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (*Merchant, error) {
	if accessToken == "" {
		return nil, ErrUnauthorized
	}
	h := hashToken(accessToken)
	now := s.Now()
	if m, ok := s.auth.lookup(h, now); ok {
		return m, nil
	}
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
	s.auth.remember(h, m, t.Expires)
	return m, nil
}

// authCache maps access-token hashes to their merchants until the tokens
// expire. It holds at most authCacheSize tokens, dropping one at random to
// make room.
type authCache struct {
	mu     sync.RWMutex
	tokens map[[32]byte]cachedToken
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

func (c *authCache) remember(hash []byte, m *Merchant, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
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

// forget drops every remembered token of the merchant with the id.
func (c *authCache) forget(merchantID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, t := range c.tokens {
		if t.m.ID == merchantID {
			delete(c.tokens, h)
		}
	}
}
