package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

func scanDeliveries(rows pgx.Rows) ([]*session.Delivery, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*session.Delivery, error) {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return nil, err
		}
		d := new(session.Delivery)
		if err := json.Unmarshal(raw, d); err != nil {
			return nil, fmt.Errorf("decode delivery: %w", err)
		}
		return d, nil
	})
}

// DueDeliveries returns up to limit pending deliveries whose next attempt
// is at or before now, earliest first.
func (db *DB) DueDeliveries(ctx context.Context, now time.Time, limit int) ([]*session.Delivery, error) {
	rows, err := db.pool.Query(ctx, `SELECT data FROM deliveries WHERE next_attempt <= $1
		ORDER BY next_attempt, webhook_id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due deliveries: %w", err)
	}
	ds, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: due deliveries: %w", err)
	}
	return ds, nil
}

// NextDelivery returns when the earliest pending delivery is due, and false
// if none is pending.
func (db *DB) NextDelivery(ctx context.Context) (time.Time, bool, error) {
	var at *time.Time
	err := db.pool.QueryRow(ctx, "SELECT min(next_attempt) FROM deliveries WHERE next_attempt IS NOT NULL").Scan(&at)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next delivery: %w", err)
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return *at, true, nil
}

// UpdateDelivery records the outcome of an attempt: d replaces the stored
// delivery with its webhook id; session.ErrNotFound if there is none.
func (db *DB) UpdateDelivery(ctx context.Context, d *session.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("postgres: encode delivery %s: %w", d.WebhookID, err)
	}
	tag, err := db.pool.Exec(ctx, "UPDATE deliveries SET next_attempt = $2, data = $3 WHERE webhook_id = $1",
		d.WebhookID, nextAttempt(d), v)
	if err != nil {
		return fmt.Errorf("postgres: update delivery %s: %w", d.WebhookID, err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}

// SessionDeliveries returns the deliveries of a session, oldest first.
func (db *DB) SessionDeliveries(ctx context.Context, sessionID string) ([]*session.Delivery, error) {
	rows, err := db.pool.Query(ctx, "SELECT data FROM deliveries WHERE session_id = $1 ORDER BY webhook_id", sessionID)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries of %s: %w", sessionID, err)
	}
	ds, err := scanDeliveries(rows)
	if err != nil {
		return nil, fmt.Errorf("postgres: deliveries of %s: %w", sessionID, err)
	}
	if ds == nil {
		ds = []*session.Delivery{}
	}
	return ds, nil
}

// OutboxStats returns how many deliveries are pending and when the oldest
// of them was recorded (zero if none), from the due index.
func (db *DB) OutboxStats(ctx context.Context) (pending int, oldest time.Time, err error) {
	var at *time.Time
	err = db.pool.QueryRow(ctx, "SELECT count(*), min(created) FROM deliveries WHERE next_attempt IS NOT NULL").Scan(&pending, &at)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("postgres: outbox stats: %w", err)
	}
	if at != nil {
		oldest = *at
	}
	return pending, oldest, nil
}
