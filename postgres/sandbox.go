package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

var _ session.SandboxStore = (*DB)(nil)

// ResetMerchant deletes, in one transaction, every session, transaction
// (payouts and refunds included), delivery and bank account of the
// merchant, and the timers whose keys name one of its sessions or
// transactions. Timers are matched by id within their keys, as the bbolt
// store does: a sandbox's data is small.
func (db *DB) ResetMerchant(ctx context.Context, merchantID string) error {
	// Every DB's cache forgets every session: resets are rare.
	defer db.cache.clear()
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, q := range []struct{ what, sql string }{
			{"timers", `DELETE FROM timers t WHERE
				EXISTS (SELECT 1 FROM sessions s WHERE s.merchant_id = $1 AND strpos(t.key, s.id) > 0) OR
				EXISTS (SELECT 1 FROM transactions x WHERE x.merchant_id = $1 AND strpos(t.key, x.id) > 0)`},
			{"deliveries", `DELETE FROM deliveries WHERE data->>'merchant_id' = $1
				OR session_id IN (SELECT id FROM sessions WHERE merchant_id = $1)`},
			{"transactions", `DELETE FROM transactions WHERE merchant_id = $1
				OR session_id IN (SELECT id FROM sessions WHERE merchant_id = $1)`},
			{"sessions", `DELETE FROM sessions WHERE merchant_id = $1`},
			{"bank accounts", `DELETE FROM accounts WHERE merchant_id = $1`},
		} {
			if _, err := tx.Exec(ctx, q.sql, merchantID); err != nil {
				return fmt.Errorf("postgres: reset merchant %s: delete %s: %w", merchantID, q.what, err)
			}
		}
		return notifyForgetAll(ctx, tx)
	})
}

// Delivery returns the delivery with the webhook id; session.ErrNotFound.
func (db *DB) Delivery(ctx context.Context, webhookID string) (*session.Delivery, error) {
	d := new(session.Delivery)
	if err := db.getJSON(ctx, d, "SELECT data FROM deliveries WHERE webhook_id = $1", webhookID); err != nil {
		return nil, err
	}
	return d, nil
}

// RequeueDelivery stores d, pending again, in place of the delivery with
// its webhook id, ending any claim on it; session.ErrNotFound if there is
// none.
func (db *DB) RequeueDelivery(ctx context.Context, d *session.Delivery) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("postgres: encode delivery %s: %w", d.WebhookID, err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE deliveries SET host = $2, next_attempt = $3, created = $4, data = $5,
		claim_owner = NULL, claim_until = NULL WHERE webhook_id = $1`, d.WebhookID, d.Host(), nextAttempt(d), d.Created, v)
	if err != nil {
		return fmt.Errorf("postgres: requeue delivery %s: %w", d.WebhookID, err)
	}
	if tag.RowsAffected() == 0 {
		return session.ErrNotFound
	}
	return nil
}
