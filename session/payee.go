package session

import (
	"context"
	"fmt"
)

// HostedPage is what the end user's hosted page needs to know of a
// session's merchant.
type HostedPage struct {
	// Payee is who the end user deals with: the brand name the session
	// was created with, else the merchant's name.
	Payee string
	// FrameAncestors are the merchant's origins that may embed the page.
	FrameAncestors []string
}

// HostedPage returns what sess's hosted page shows of its merchant.
func (s *Service) HostedPage(ctx context.Context, sess *Session) (HostedPage, error) {
	m, err := s.store.Merchant(ctx, sess.MerchantID)
	if err != nil {
		return HostedPage{}, fmt.Errorf("session: merchant %s of a session: %w", sess.MerchantID, err)
	}
	p := HostedPage{Payee: sess.Params.BrandName, FrameAncestors: m.FrameAncestors}
	if p.Payee == "" {
		p.Payee = m.Name
	}
	return p, nil
}

// MerchantName returns the name of the merchant with id, remembered until
// the merchant is changed (or ForgetMerchant says another process changed
// it).
func (s *Service) MerchantName(ctx context.Context, id string) (string, error) {
	if name, ok := s.auth.name(id); ok {
		return name, nil
	}
	epoch := s.auth.epoch()
	m, err := s.store.Merchant(ctx, id)
	if err != nil {
		return "", fmt.Errorf("session: merchant %s of a session: %w", id, err)
	}
	s.auth.rememberName(id, m.Name, epoch)
	return m.Name, nil
}

// SetFrameAncestors replaces the origins that may embed the hosted pages
// of the merchant with id (none for an empty list). ErrNotFound for an
// unknown merchant.
func (s *Service) SetFrameAncestors(ctx context.Context, id string, origins []string) (*Merchant, error) {
	m, err := s.store.Merchant(ctx, id)
	if err != nil {
		return nil, err
	}
	m.FrameAncestors = append([]string(nil), origins...)
	if len(origins) == 0 {
		m.FrameAncestors = nil
	}
	if err := s.store.PutMerchant(ctx, m); err != nil {
		return nil, err
	}
	s.auth.forget(m.ID) // remembered copies would carry the old list
	return m, nil
}

// TransactionMessage returns the message (the end user's statement text)
// of sess's transaction, and "" while it has none.
func (s *Service) TransactionMessage(ctx context.Context, sess *Session) (string, error) {
	if sess.TransactionID == "" {
		return "", nil
	}
	t, err := s.store.Transaction(ctx, sess.TransactionID)
	if err != nil {
		return "", fmt.Errorf("session: transaction %s of a session: %w", sess.TransactionID, err)
	}
	return t.Message, nil
}
