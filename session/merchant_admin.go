package session

import (
	"context"
	"time"
)

// DefaultCallbackOverlap is how long a rotated-out callback secret keeps
// signing beside the new one by default.
const DefaultCallbackOverlap = 24 * time.Hour

// CallbackSecrets returns the secrets that sign a callback sent at now:
// the current one, and the previous one during a rotation's overlap.
func (m *Merchant) CallbackSecrets(now time.Time) []string {
	out := []string{m.CallbackSecret}
	if m.PreviousCallbackSecret != "" && now.Before(m.PreviousCallbackUntil) {
		out = append(out, m.PreviousCallbackSecret)
	}
	return out
}

// RotateCallbackSecret gives the merchant with the id a new generated
// callback secret; the old one keeps signing beside it for overlap (0:
// not at all), so receivers can switch without rejecting a callback. The
// returned Credentials carry the new callback secret. ErrNotFound if there
// is no such merchant.
func (s *Service) RotateCallbackSecret(ctx context.Context, merchantID string, overlap time.Duration) (Credentials, error) {
	cr := Credentials{PublicKey: "-", Secret: "-"} // generate only the callback secret
	if err := s.generate(&cr); err != nil {
		return Credentials{}, err
	}
	now := s.Now()
	m, err := s.updateMerchant(ctx, merchantID, func(m *Merchant) (bool, error) {
		m.PreviousCallbackSecret, m.PreviousCallbackUntil = "", time.Time{}
		if overlap > 0 {
			m.PreviousCallbackSecret, m.PreviousCallbackUntil = m.CallbackSecret, now.Add(overlap)
		}
		m.CallbackSecret = cr.CallbackSecret
		return true, nil
	})
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{MerchantID: m.ID, PublicKey: m.PublicKey, CallbackSecret: m.CallbackSecret}, nil
}

// SetMerchantDisabled disables or enables the merchant with the id. A
// disabled merchant's tokens are revoked at once and it cannot authorize;
// enabled again, it authorizes with its secret as before. Its sessions and
// their callbacks are untouched. ErrNotFound if there is no such merchant.
func (s *Service) SetMerchantDisabled(ctx context.Context, merchantID string, disabled bool) (*Merchant, error) {
	return s.updateMerchant(ctx, merchantID, func(m *Merchant) (bool, error) {
		if m.Disabled == disabled {
			return false, nil
		}
		m.Disabled = disabled
		if disabled {
			m.TokenGeneration++
		}
		return true, nil
	})
}
