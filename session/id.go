package session

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// newUUID returns an RFC 9562 version 7 UUID: 48 bits of Unix milliseconds,
// then random bits, so that ids made later sort later and bolt inserts land
// at the end of the tree.
func newUUID(now time.Time, r io.Reader) ([16]byte, error) {
	var u [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(now.UnixMilli()))
	copy(u[:6], ms[2:])
	if _, err := io.ReadFull(r, u[6:]); err != nil {
		return u, err
	}
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u, nil
}

// uuidGen makes version 7 UUIDs that strictly increase within the
// process, even within one millisecond or when the clock steps back
// (RFC 9562 section 6.2, method 2: the random part counts up).
type uuidGen struct {
	mu   sync.Mutex
	last [16]byte
}

func (g *uuidGen) next(now time.Time, r io.Reader) ([16]byte, error) {
	u, err := newUUID(now, r)
	if err != nil {
		return u, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if bytes.Compare(u[:6], g.last[:6]) <= 0 {
		u = g.last
		for i := 15; i > 8; i-- { // the low 56 random bits, as a counter
			u[i]++
			if u[i] != 0 {
				break
			}
		}
	}
	g.last = u
	return u, nil
}

// formatUUID returns the canonical lowercase 36-char form of u.
func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// newSessionToken returns a session token that names its session: the 16
// id bytes followed by 16 random bytes, base64url (43 chars, 128 random
// bits). Carrying the id makes a lookup by token a direct read of the
// session, with no index bucket of random keys to keep.
func newSessionToken(id [16]byte, r io.Reader) (string, error) {
	var b [32]byte
	copy(b[:16], id[:])
	if _, err := io.ReadFull(r, b[16:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// sessionIDOfToken returns the session id a token names, or false if the
// token is malformed.
func sessionIDOfToken(token string) (string, bool) {
	if len(token) != 43 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != 32 {
		return "", false
	}
	return formatUUID([16]byte(b[:16])), true
}

// randomString returns prefix followed by n random bytes, base64url.
func randomString(r io.Reader, prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken returns the SHA-256 of a server-generated token. Tokens carry
// at least 128 random bits, so a fast hash is enough.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// SecretCost is the cost of the argon2id hash of merchant secrets: the
// memory in KiB and the passes over it (one lane). Hashes record their
// cost, so any cost verifies; a cost other than the Service's is rehashed
// on the next success.
type SecretCost struct {
	MemoryKiB uint32
	Passes    uint32
}

// DefaultSecretCost is what OWASP recommends for argon2id: 19 MiB, 2
// passes; about 40 ms on one core of a 2026 server.
var DefaultSecretCost = SecretCost{MemoryKiB: 19456, Passes: 2}

// kdf is the name of the hash c makes, as kept in Merchant.SecretKDF.
func (c SecretCost) kdf() string {
	if c == (SecretCost{}) {
		c = DefaultSecretCost
	}
	return fmt.Sprintf("argon2id$v=19$m=%d,t=%d,p=1", c.MemoryKiB, c.Passes)
}

// kdfSlots bounds the argon2id hashes computed at once, and so the memory
// they take (19 MiB each), whatever the number of callers.
var kdfSlots = make(chan struct{}, 2)

func acquireKDF(ctx context.Context) error {
	select {
	case kdfSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func releaseKDF() { <-kdfSlots }

// Argon2id derives a key of keyLen bytes from secret and salt with argon2id
// (RFC 9106) at the cost given: the signature of
// golang.org/x/crypto/argon2.IDKey. The Service is given one, so that this
// package needs only the standard library.
type Argon2id func(secret, salt []byte, passes, memoryKiB uint32, lanes uint8, keyLen uint32) []byte

// deriveSecret hashes a merchant secret with salt as kdf says: an
// argon2id name as SecretCost.kdf makes, with any parameters within
// bounds, or "" for the salted SHA-256 of records made before argon2id.
func deriveSecret(argon2id Argon2id, kdf string, salt []byte, secret string) ([]byte, error) {
	if kdf == "" {
		h := sha256.New()
		h.Write(salt)
		h.Write([]byte(secret))
		return h.Sum(nil), nil
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(kdf, "argon2id$v=19$m=%d,t=%d,p=%d", &m, &t, &p); err != nil ||
		m < 8 || m > 1<<20 || t < 1 || t > 16 || p < 1 || p > 16 {
		return nil, fmt.Errorf("unknown secret hash %q", kdf)
	}
	if argon2id == nil {
		return nil, errors.New("no argon2id function given to the Service")
	}
	return argon2id([]byte(secret), salt, t, m, p, 32), nil
}

// verifiedCache remembers, per merchant, a keyed hash of the secret last
// verified against its stored record, so that a merchant authorizing
// again costs one HMAC instead of one argon2id. The key is random per
// process and the record is part of the hash, so a changed secret misses.
type verifiedCache struct {
	once sync.Once
	key  []byte
	mu   sync.Mutex
	sums map[string][32]byte
}

const verifiedCacheSize = 10000

func (c *verifiedCache) sum(m *Merchant, secret string) [32]byte {
	c.once.Do(func() {
		c.key = make([]byte, 32)
		rand.Read(c.key)
	})
	mac := hmac.New(sha256.New, c.key)
	for _, part := range [][]byte{[]byte(m.ID), []byte(m.SecretKDF), m.SecretSalt, m.SecretHash, []byte(secret)} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		mac.Write(n[:])
		mac.Write(part)
	}
	return [32]byte(mac.Sum(nil))
}

func (c *verifiedCache) check(m *Merchant, secret string) bool {
	sum := c.sum(m, secret)
	c.mu.Lock()
	want, ok := c.sums[m.ID]
	c.mu.Unlock()
	return ok && hmac.Equal(sum[:], want[:])
}

func (c *verifiedCache) remember(m *Merchant, secret string) {
	sum := c.sum(m, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sums == nil {
		c.sums = map[string][32]byte{}
	}
	if _, ok := c.sums[m.ID]; !ok && len(c.sums) >= verifiedCacheSize {
		for id := range c.sums { // map order is random
			delete(c.sums, id)
			break
		}
	}
	c.sums[m.ID] = sum
}

// equalHash compares two hashes in constant time.
func equalHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// defaultRandom is crypto/rand, the only source fit for ids and tokens.
var defaultRandom io.Reader = rand.Reader

func stdBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
