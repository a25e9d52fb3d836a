package session

// ForgetMerchant drops what the Service remembers of the merchant with the
// id (the access tokens it has checked, its name), because another process sharing
// the store changed it: its secret rotated, its tokens revoked. "" drops
// everything remembered, for when such news may have been missed.
func (s *Service) ForgetMerchant(id string) {
	if id == "" {
		s.auth.forgetAll()
		return
	}
	s.auth.forget(id)
}

// forgetAll drops every remembered token and name.
func (c *authCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgot++
	c.tokens, c.names = nil, nil
}
