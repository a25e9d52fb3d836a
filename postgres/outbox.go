package postgres

import (
	"context"
	"encoding/json"
	"fmt"

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
