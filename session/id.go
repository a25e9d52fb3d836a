package session

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
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

// hashSecret returns the salted SHA-256 of a merchant secret.
func hashSecret(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// equalHash compares two hashes in constant time.
func equalHash(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// defaultRandom is crypto/rand, the only source fit for ids and tokens.
var defaultRandom io.Reader = rand.Reader

func stdBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
