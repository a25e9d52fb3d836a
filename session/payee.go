package session

import (
	"context"
	"fmt"
)

// Payee returns who the end user of sess deals with, as the hosted page
// names them: the brand name the session was created with, else its
// merchant's name.
func (s *Service) Payee(ctx context.Context, sess *Session) (string, error) {
	if sess.Params.BrandName != "" {
		return sess.Params.BrandName, nil
	}
	name, err := s.MerchantName(ctx, sess.MerchantID)
	if err != nil {
		return "", err
	}
	return name, nil
}

// MerchantName returns the name of the merchant with id.
func (s *Service) MerchantName(ctx context.Context, id string) (string, error) {
	m, err := s.store.Merchant(ctx, id)
	if err != nil {
		return "", fmt.Errorf("session: merchant %s of a session: %w", id, err)
	}
	return m.Name, nil
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
