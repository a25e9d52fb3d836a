package session

import "testing"

// TestAuthCacheNameAfterForget: a name read before a forget is not
// remembered after it.
func TestAuthCacheNameAfterForget(t *testing.T) {
	var c authCache
	epoch := c.epoch()
	c.forget("m1") // the merchant changed while its old name was read
	c.rememberName("m1", "old", epoch)
	if n, ok := c.name("m1"); ok {
		t.Errorf("a name read before a forget was remembered: %q", n)
	}
	c.rememberName("m1", "new", c.epoch())
	if n, ok := c.name("m1"); !ok || n != "new" {
		t.Errorf("name %q, %v, want new", n, ok)
	}
}
