package session

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// EarlyReader is a Store that can answer a session without first making
// sure it has seen every change committed elsewhere (PostgreSQL's
// replicas wait for their change feed to catch up). SessionEarly answers
// as Session does, but with early true it may answer a session behind
// the stored one, never ahead of it. Only a caller whose write is refused
// unless the session is still at the version read, and who reads again
// with Session after any refusal decided on an early answer, may use it.
type EarlyReader interface {
	SessionEarly(ctx context.Context, id string) (s *Session, early bool, err error)
}

// Store keeps sessions, merchants, tokens, transactions, callback
// deliveries and timers. It is the contract every backend meets (bbolt in
// store/, PostgreSQL in postgres/), checked by the shared suite in
// store/storetest.
//
// A store decides nothing: it checks versions and claims, and returns only
// the errors each method lists (ErrNotFound, ErrVersionConflict,
// ErrPublicKeyTaken, ErrClaimLost); any other error is a failure of the
// store itself, wrapped with context, which callers treat as internal.
//
// Every committed write that carries a Change is handed, after its commit
// and before the writer is answered, to the Publisher the store was opened
// with, in commit order (see Feed).
type Store interface {
	// CreateMerchant stores a new merchant; ErrPublicKeyTaken if its
	// public key is taken.
	CreateMerchant(ctx context.Context, m *Merchant) error
	// PutMerchant replaces a stored merchant, keeping its public key;
	// ErrNotFound if no merchant has that id and public key.
	PutMerchant(ctx context.Context, m *Merchant) error
	// Merchant returns the merchant with the id; ErrNotFound.
	Merchant(ctx context.Context, id string) (*Merchant, error)
	// MerchantByPublicKey returns the merchant with the public key;
	// ErrNotFound.
	MerchantByPublicKey(ctx context.Context, publicKey string) (*Merchant, error)
	// Merchants returns every merchant, oldest first.
	Merchants(ctx context.Context) ([]*Merchant, error)

	// Token returns the token with the hash; ErrNotFound.
	Token(ctx context.Context, hash []byte) (*Token, error)
	// PutTokens stores add and deletes the tokens whose hashes are in
	// revoke, at once; ErrNotFound, and nothing changed, if one of revoke
	// is not stored (it was revoked or purged meanwhile).
	PutTokens(ctx context.Context, add []*Token, revoke [][]byte) error
	// PurgeTokens deletes up to limit tokens that expired at or before now
	// and returns how many it deleted. An idle store commits nothing.
	PurgeTokens(ctx context.Context, now time.Time, limit int) (int, error)

	// Session returns the session with the id, with its latest touch;
	// ErrNotFound.
	Session(ctx context.Context, id string) (*Session, error)
	// SessionsByReference returns up to limit sessions of the merchant with
	// the merchant reference, newest first.
	SessionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*Session, error)
	// Save writes a change at once, all of it or nothing (compare and
	// set): the session at version n, which must be stored at n-1 (or not
	// at all for n = 1), its transaction, which must be stored in state
	// TxFrom if that is set, its deliveries and its timers; a change
	// without a session writes its transaction (stored in TxFrom), its
	// deliveries and timers. ErrVersionConflict if the stored version or
	// transaction state differs, or a version 1 session exists;
	// ErrNotFound if the session (n > 1) or the transaction (TxFrom set)
	// is not stored.
	Save(ctx context.Context, c *Change) error
	// SaveBatch saves each change as Save does, independently, sharing
	// commits where the backend can, and returns one result per change, in
	// order (nil for a saved change). Changes in one batch are applied in
	// order, so a later one sees an earlier one. A failure of the store
	// itself may fail every change.
	SaveBatch(ctx context.Context, cs []*Change) []error
	// Touch records the end user's latest request (last_request, ip,
	// user_agent) on a session without changing its version or anything
	// else, and never over a later request already stored. A backend may
	// hold touches for up to a second before writing them (so a crash
	// loses at most the last second of them), but Session and
	// SessionsByReference read them at once. ErrNotFound if the session is
	// not stored.
	Touch(ctx context.Context, id string, at time.Time, c Client) error
	// ClaimDue returns up to limit non-final sessions whose expiry is at
	// or before now, earliest first, that no other owner holds, and
	// holds them for owner until now+lease (or until they are saved).
	// It reads only sessions that are due.
	ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*Session, error)

	// Transaction returns the transaction with the id; ErrNotFound.
	Transaction(ctx context.Context, id string) (*Transaction, error)
	// SessionDeliveries returns the deliveries of a session, oldest first.
	SessionDeliveries(ctx context.Context, sessionID string) ([]*Delivery, error)

	// ClaimDeliveries claims pending deliveries whose next attempt is at
	// or before c.Now for c.Owner until c.Now+c.Lease, as Claim describes,
	// earliest first per host. A delivery another owner holds is never
	// returned while its lease lasts. Deliveries the store cannot read are
	// set aside as failed with the reason and reported in Claimed.Damaged
	// once; they are never claimed again.
	ClaimDeliveries(ctx context.Context, c Claim) (Claimed, error)
	// RecordAttempt stores d, the outcome of an attempt owner made at a
	// delivery it claimed, and ends the claim. ErrClaimLost, and nothing
	// stored, if another owner holds the delivery now; ErrNotFound if it
	// is not stored.
	RecordAttempt(ctx context.Context, owner string, d *Delivery) error
	// ReleaseDeliveries ends owner's claims on the deliveries with the
	// webhook ids without recording an attempt, so they can be claimed
	// again at once (an attempt cancelled by shutdown).
	ReleaseDeliveries(ctx context.Context, owner string, webhookIDs []string) error
	// OutboxStats returns how many deliveries are pending and when the
	// oldest of them was created, without reading deliveries: its cost
	// does not grow with the backlog.
	OutboxStats(ctx context.Context) (OutboxStats, error)

	// ClaimTimers returns up to limit timers due at or before now,
	// earliest first, that no other owner holds, holding them for owner
	// until now+lease; and when the earliest timer not returned is due
	// (zero if none).
	ClaimTimers(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]Timer, time.Time, error)
	// DoneTimer deletes the timer with t's key if it is still due at t.Due
	// (a change may have set it again meanwhile) and ends owner's claim.
	DoneTimer(ctx context.Context, owner string, t Timer) error

	// Retain deletes final sessions created before cutoff with what
	// belongs to them: their transaction, their deliveries and the index
	// entries of all of these, the timers whose keys end in one of their
	// ids, and the bank account picked in them. It looks at up to limit
	// sessions, in id order from the one after after ("" for the first),
	// reading only ids before IDAt(cutoff), and commits what it deletes at
	// once. A session that is not final, has a pending delivery, or whose
	// transaction has refunds is kept. It returns how many sessions it
	// deleted and the last id it looked at, where the next call goes on
	// ("" when no session before the cutoff is left to look at, or when
	// another replica is retaining now).
	Retain(ctx context.Context, cutoff time.Time, after string, limit int) (deleted int, next string, err error)
}

// Errors a Store returns besides ErrNotFound and ErrVersionConflict.
var (
	ErrPublicKeyTaken = &Error{Code: CodeConflict, Name: "PublicKeyTaken", Message: "a merchant with this public key exists"}
	ErrClaimLost      = &Error{Code: CodeConflict, Name: NameVersionConflict, Message: "another owner holds the delivery"}
)

// Claim says which due deliveries ClaimDeliveries may claim: at most Limit
// in all, and per host (Delivery.Host) at most PerHost less the attempts
// already in flight there (Busy).
type Claim struct {
	Owner   string
	Now     time.Time
	Lease   time.Duration
	Limit   int
	PerHost int
	Busy    map[string]int
}

// Claimed is what ClaimDeliveries claimed.
type Claimed struct {
	Deliveries []*Delivery
	// Damaged are deliveries that could not be read, now stored as
	// failed with LastError saying why.
	Damaged []*Delivery
	// Next is when the earliest pending delivery that was not claimed is
	// due, among the hosts that had room (zero if none): a caller may
	// sleep until then unless told of new deliveries.
	Next time.Time
}

// OutboxStats sums up the pending deliveries.
type OutboxStats struct {
	Pending int
	Oldest  time.Time // creation of the oldest pending delivery; zero if none
}

// Timer is work the domain asks the store to remember across restarts: the
// sandbox's next step of a session or transaction. Key names the work
// (setting a key again moves it); a zero Due in a Change deletes it.
type Timer struct {
	Key string    `json:"key"`
	Due time.Time `json:"due"`
}

// Host is the host (with port, lower case) of a delivery's URL, by which
// attempts are queued and limited; "" if the URL does not parse.
func (d *Delivery) Host() string {
	u, err := url.Parse(d.URL)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// NewOwner returns a name for a claimant that no other process shares: the
// host name, the process id and random bits.
func NewOwner() string {
	host, _ := os.Hostname()
	r, err := randomString(defaultRandom, "", 8)
	if err != nil {
		r = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), r)
}
