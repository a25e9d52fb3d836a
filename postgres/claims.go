package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

// Claims are rows marked with their owner and the end of their lease,
// taken with FOR UPDATE SKIP LOCKED so that replicas claiming at once
// neither wait for nor take each other's rows. A row is free when it has
// no claim or its lease ended (claim_until <= now, the claimant's clock).
// A claim ends when the work is saved, recorded or released, or when the
// lease runs out: a replica killed holding claims delays that work by at
// most the lease.

// ClaimDue returns up to limit non-final sessions due at or before now,
// earliest first, that nobody holds, and holds them for owner until
// now+lease or until they are saved. It reads only due sessions.
func (db *DB) ClaimDue(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]*session.Session, error) {
	rows, err := db.pool.Query(ctx, `UPDATE sessions SET claim_owner = $1, claim_until = $3
		WHERE id IN (
			SELECT id FROM sessions
			WHERE expires IS NOT NULL AND expires <= $2 AND (claim_until IS NULL OR claim_until <= $2)
			ORDER BY expires, id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING expires, id, data`, owner, now, now.Add(lease), limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: claim due sessions: %w", err)
	}
	type due struct {
		expires time.Time
		s       *session.Session
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		var id string
		var raw []byte
		if err := r.Scan(&d.expires, &id, &raw); err != nil {
			return d, err
		}
		s, err := db.cache.decode(id, raw, nil)
		if err == nil {
			db.held.Merge(s)
		}
		d.s = s
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim due sessions: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	sortBy(ds, func(a, b due) bool {
		return a.expires.Before(b.expires) || a.expires.Equal(b.expires) && a.s.ID < b.s.ID
	})
	out := make([]*session.Session, len(ds))
	for i, d := range ds {
		out[i] = d.s
	}
	return out, nil
}

// ClaimDeliveries claims due deliveries that nobody holds, host by host:
// for each host with pending deliveries (found by a skip scan of the
// host-due index, one probe per host) it takes the earliest due up to the
// host's room, then the earliest of all those up to c.Limit. The cost is
// one probe per host plus what it claims, whatever the backlog.
func (db *DB) ClaimDeliveries(ctx context.Context, c session.Claim) (session.Claimed, error) {
	var out session.Claimed
	// Empty, not nil: a nil slice is NULL, and x <> ALL(NULL) is not true.
	busyHosts, busyN, full := []string{}, []int32{}, []string{}
	for h, n := range c.Busy {
		busyHosts, busyN = append(busyHosts, h), append(busyN, int32(n))
		if n >= c.PerHost {
			full = append(full, h)
		}
	}
	type row struct {
		id  string
		raw []byte
	}
	var claimed []row
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH RECURSIVE hosts AS (
				(SELECT host FROM deliveries WHERE next_attempt IS NOT NULL ORDER BY host LIMIT 1)
				UNION ALL
				SELECT (SELECT d.host FROM deliveries d WHERE d.next_attempt IS NOT NULL AND d.host > hosts.host ORDER BY d.host LIMIT 1)
				FROM hosts WHERE hosts.host IS NOT NULL),
			busy AS (SELECT * FROM unnest($5::text[], $6::int[]) AS b(host, n)),
			room AS (
				SELECT h.host, $4::int - coalesce(b.n, 0) AS room FROM hosts h LEFT JOIN busy b ON b.host = h.host
				WHERE h.host IS NOT NULL),
			picked AS (
				SELECT d.webhook_id, d.next_attempt FROM room r CROSS JOIN LATERAL (
					SELECT webhook_id, next_attempt FROM deliveries
					WHERE host = r.host AND next_attempt IS NOT NULL AND next_attempt <= $2
						AND (claim_until IS NULL OR claim_until <= $2)
					ORDER BY next_attempt, webhook_id LIMIT greatest(r.room, 0)
					FOR UPDATE SKIP LOCKED) d
				ORDER BY d.next_attempt, d.webhook_id LIMIT $7)
			UPDATE deliveries SET claim_owner = $1, claim_until = $3
			FROM picked WHERE deliveries.webhook_id = picked.webhook_id
			RETURNING deliveries.webhook_id, deliveries.data`,
			c.Owner, c.Now, c.Now.Add(c.Lease), c.PerHost, busyHosts, busyN, c.Limit)
		if err != nil {
			return err
		}
		claimed, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.raw)
		})
		if err != nil {
			return err
		}
		ids := make([]string, len(claimed))
		for i, r := range claimed {
			ids[i] = r.id
		}
		var next *time.Time
		err = tx.QueryRow(ctx, `SELECT min(next_attempt) FROM deliveries
			WHERE next_attempt > $1 AND host <> ALL($2::text[]) AND webhook_id <> ALL($3::text[])`,
			c.Now, full, ids).Scan(&next)
		if err != nil {
			return err
		}
		if next != nil {
			out.Next = *next
		}
		return nil
	})
	if err != nil {
		return session.Claimed{}, fmt.Errorf("postgres: claim deliveries: %w", err)
	}
	for _, r := range claimed {
		d := new(session.Delivery)
		if err := json.Unmarshal(r.raw, d); err != nil || d.WebhookID != r.id || d.Status != session.DeliveryPending {
			why := "the stored delivery does not match its row"
			if err != nil {
				why = "the stored delivery cannot be decoded: " + err.Error()
			}
			bad, err := db.setAside(ctx, r.id, r.raw, why)
			if err != nil {
				return out, err
			}
			out.Damaged = append(out.Damaged, bad)
			continue
		}
		out.Deliveries = append(out.Deliveries, d)
	}
	sortBy(out.Deliveries, func(a, b *session.Delivery) bool {
		return a.NextAttempt.Before(b.NextAttempt) || a.NextAttempt.Equal(b.NextAttempt) && a.WebhookID < b.WebhookID
	})
	return out, nil
}

// setAside stores an unreadable delivery as failed, saying why, with what
// can still be read of it; its original bytes stay in the change log.
func (db *DB) setAside(ctx context.Context, id string, raw []byte, why string) (*session.Delivery, error) {
	d := &session.Delivery{WebhookID: id, Status: session.DeliveryFailed, LastError: "set aside: " + why}
	var old session.Delivery
	if json.Unmarshal(raw, &old) == nil {
		d.MerchantID, d.SessionID, d.TransactionID, d.URL = old.MerchantID, old.SessionID, old.TransactionID, old.URL
		d.SessionState, d.TransactionState, d.Attempts, d.Created = old.SessionState, old.TransactionState, old.Attempts, old.Created
	}
	v, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode delivery %s: %w", id, err)
	}
	_, err = db.pool.Exec(ctx, `UPDATE deliveries SET next_attempt = NULL, claim_owner = NULL, claim_until = NULL, data = $2
		WHERE webhook_id = $1`, id, v)
	if err != nil {
		return nil, fmt.Errorf("postgres: set aside delivery %s: %w", id, err)
	}
	return d, nil
}

// RecordAttempt stores d, the outcome of owner's attempt, and ends the
// claim. session.ErrClaimLost if another owner holds the delivery now;
// session.ErrNotFound if it is not stored.
func (db *DB) RecordAttempt(ctx context.Context, owner string, d *session.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("postgres: encode delivery %s: %w", d.WebhookID, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE deliveries SET next_attempt = $3, data = $4, claim_owner = NULL, claim_until = NULL
		WHERE webhook_id = $1 AND (claim_owner IS NULL OR claim_owner = $2)`, d.WebhookID, owner, nextAttempt(d), v)
	if err != nil {
		return fmt.Errorf("postgres: record attempt at %s: %w", d.WebhookID, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var one int
	err = db.pool.QueryRow(ctx, "SELECT 1 FROM deliveries WHERE webhook_id = $1", d.WebhookID).Scan(&one)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return session.ErrNotFound
	case err != nil:
		return fmt.Errorf("postgres: record attempt at %s: %w", d.WebhookID, err)
	}
	return session.ErrClaimLost
}

// ReleaseDeliveries ends owner's claims on the deliveries with the ids.
func (db *DB) ReleaseDeliveries(ctx context.Context, owner string, webhookIDs []string) error {
	if len(webhookIDs) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `UPDATE deliveries SET claim_owner = NULL, claim_until = NULL
		WHERE webhook_id = ANY($1::text[]) AND claim_owner = $2`, webhookIDs, owner)
	if err != nil {
		return fmt.Errorf("postgres: release deliveries: %w", err)
	}
	return nil
}

// OutboxStats returns how many deliveries are pending and when the oldest
// was created. It counts entries of the pending index (an index-only scan
// of a few bytes per pending delivery) and reads no delivery.
func (db *DB) OutboxStats(ctx context.Context) (session.OutboxStats, error) {
	var st session.OutboxStats
	var oldest *time.Time
	err := db.pool.QueryRow(ctx, `SELECT count(*), min(created) FROM deliveries WHERE next_attempt IS NOT NULL`).Scan(&st.Pending, &oldest)
	if err != nil {
		return st, fmt.Errorf("postgres: outbox stats: %w", err)
	}
	if oldest != nil {
		st.Oldest = *oldest
	}
	return st, nil
}

// ClaimTimers returns up to limit timers due at or before now that nobody
// holds, earliest first, holding them for owner until now+lease; and when
// the earliest timer not returned is due (zero if none).
func (db *DB) ClaimTimers(ctx context.Context, owner string, now time.Time, lease time.Duration, limit int) ([]session.Timer, time.Time, error) {
	var out []session.Timer
	var next time.Time
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE timers SET claim_owner = $1, claim_until = $3
			WHERE key IN (
				SELECT key FROM timers WHERE due <= $2 AND (claim_until IS NULL OR claim_until <= $2)
				ORDER BY due, key LIMIT $4 FOR UPDATE SKIP LOCKED)
			RETURNING key, due`, owner, now, now.Add(lease), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (session.Timer, error) {
			var t session.Timer
			return t, r.Scan(&t.Key, &t.Due)
		})
		if err != nil {
			return err
		}
		keys := make([]string, len(out))
		for i, t := range out {
			keys[i] = t.Key
		}
		// With the limit reached, the next may be due already.
		cond := "due > $1"
		if len(out) == limit {
			cond = "(due > $1 OR claim_until IS NULL OR claim_until <= $1)"
		}
		var at *time.Time
		if err := tx.QueryRow(ctx, `SELECT min(due) FROM timers WHERE `+cond+` AND key <> ALL($2::text[])`, now, keys).Scan(&at); err != nil {
			return err
		}
		if at != nil {
			next = *at
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("postgres: claim timers: %w", err)
	}
	sortBy(out, func(a, b session.Timer) bool { return a.Due.Before(b.Due) || a.Due.Equal(b.Due) && a.Key < b.Key })
	return out, next, nil
}

// DoneTimer deletes the timer if it is still due at t.Due (a change may
// have set it again meanwhile) and ends owner's claim on it.
func (db *DB) DoneTimer(ctx context.Context, owner string, t session.Timer) error {
	b := &pgx.Batch{}
	b.Queue(`DELETE FROM timers WHERE key = $1 AND due = $2`, t.Key, t.Due)
	b.Queue(`UPDATE timers SET claim_owner = NULL, claim_until = NULL WHERE key = $1 AND claim_owner = $2`, t.Key, owner)
	if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("postgres: done timer %s: %w", t.Key, err)
	}
	return nil
}
