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

// CreateMerchant stores a new merchant; session.ErrPublicKeyTaken if its
// public key is taken.
func (db *DB) CreateMerchant(ctx context.Context, m *session.Merchant) error {
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("postgres: encode merchant %s: %w", m.ID, err)
	}
	_, err = db.pool.Exec(ctx, "INSERT INTO merchants (id, public_key, data) VALUES ($1, $2, $3)", m.ID, m.PublicKey, v)
	if isUniqueViolation(err, "merchants_public_key_key") {
		return session.ErrPublicKeyTaken
	}
	if err != nil {
		return fmt.Errorf("postgres: insert merchant %s: %w", m.ID, err)
	}
	return nil
}

// PutMerchant replaces a stored merchant; its public key must not change.
// session.ErrNotFound if no merchant has its id and public key. Every
// replica is told (OnMerchantChanged), so that none goes on trusting what
// it remembers of the merchant.
func (db *DB) PutMerchant(ctx context.Context, m *session.Merchant) error {
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("postgres: encode merchant %s: %w", m.ID, err)
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE merchants SET data = $3 WHERE id = $1 AND public_key = $2", m.ID, m.PublicKey, v)
		if err != nil {
			return fmt.Errorf("postgres: update merchant %s: %w", m.ID, err)
		}
		if tag.RowsAffected() == 0 {
			return session.ErrNotFound
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify('"+merchantChannel+"', $1)", m.ID); err != nil {
			return fmt.Errorf("postgres: notify merchant %s: %w", m.ID, err)
		}
		return nil
	})
}

// Merchant returns the merchant with the id; session.ErrNotFound.
func (db *DB) Merchant(ctx context.Context, id string) (*session.Merchant, error) {
	m := new(session.Merchant)
	if err := db.getJSON(ctx, m, "SELECT data FROM merchants WHERE id = $1", id); err != nil {
		return nil, err
	}
	return m, nil
}

// MerchantByPublicKey returns the merchant with the public key;
// session.ErrNotFound.
func (db *DB) MerchantByPublicKey(ctx context.Context, publicKey string) (*session.Merchant, error) {
	m := new(session.Merchant)
	if err := db.getJSON(ctx, m, "SELECT data FROM merchants WHERE public_key = $1", publicKey); err != nil {
		return nil, err
	}
	return m, nil
}

// Merchants returns every merchant, oldest first (ids are time-ordered).
func (db *DB) Merchants(ctx context.Context) ([]*session.Merchant, error) {
	rows, err := db.pool.Query(ctx, "SELECT data FROM merchants ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("postgres: merchants: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*session.Merchant, error) {
		var raw []byte
		if err := r.Scan(&raw); err != nil {
			return nil, err
		}
		m := new(session.Merchant)
		return m, json.Unmarshal(raw, m)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: merchants: %w", err)
	}
	return out, nil
}

// Token returns the token with the hash; session.ErrNotFound.
func (db *DB) Token(ctx context.Context, hash []byte) (*session.Token, error) {
	t := new(session.Token)
	if err := db.getJSON(ctx, t, "SELECT data FROM tokens WHERE hash = $1", hash); err != nil {
		return nil, err
	}
	return t, nil
}

// PutTokens stores add and deletes revoke in one transaction;
// session.ErrNotFound, and nothing changed, if a token to revoke is not
// stored (it was revoked already, perhaps by another replica at the same
// moment).
func (db *DB) PutTokens(ctx context.Context, add []*session.Token, revoke [][]byte) error {
	vs := make([][]byte, len(add))
	for i, t := range add {
		var err error
		if vs[i], err = json.Marshal(t); err != nil {
			return fmt.Errorf("postgres: encode token: %w", err)
		}
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, h := range revoke {
			var merchantID *string
			err := tx.QueryRow(ctx, "DELETE FROM tokens WHERE hash = $1 RETURNING data->>'merchant_id'", h).Scan(&merchantID)
			if errors.Is(err, pgx.ErrNoRows) {
				return session.ErrNotFound
			}
			if err != nil {
				return fmt.Errorf("postgres: revoke token: %w", err)
			}
			if merchantID != nil {
				if _, err := tx.Exec(ctx, "SELECT pg_notify('"+merchantChannel+"', $1)", *merchantID); err != nil {
					return fmt.Errorf("postgres: notify merchant: %w", err)
				}
			}
		}
		b := &pgx.Batch{}
		for i, t := range add {
			b.Queue("INSERT INTO tokens (hash, expires, data) VALUES ($1, $2, $3)", t.Hash, t.Expires, vs[i])
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("postgres: insert tokens: %w", err)
		}
		return nil
	})
}

// trimChanges deletes up to $2 changes older than $1 seconds by the
// database's clock, oldest first, found through the index on at and then
// deleted by seq. The bound is on now(), not clock_timestamp(): a
// volatile bound is no index condition, and the planner, unable to tell
// how few rows it leaves, then tests every row of the retained log to
// find nothing. ANY(ARRAY(…)), not IN (…), which it may run as a join
// over the whole log.
const trimChanges = `DELETE FROM changes WHERE seq = ANY(ARRAY(
	SELECT seq FROM changes WHERE at < now() - $1 * interval '1 second' ORDER BY at LIMIT $2))`

// PurgeTokens deletes up to limit tokens that expired at or before now and
// returns how many it deleted. It is a chore for one replica at a time:
// a replica that finds another purging (holding the chore's advisory lock)
// returns 0 at once. With nothing expired it writes nothing. It also
// trims the change feed's log of changes older than an hour.
func (db *DB) PurgeTokens(ctx context.Context, now time.Time, limit int) (int, error) {
	n := 0
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", int64(purgeLock)).Scan(&mine); err != nil || !mine {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM tokens WHERE hash IN (
			SELECT hash FROM tokens WHERE expires <= $1 ORDER BY expires LIMIT $2)`, now, limit)
		if err != nil {
			return err
		}
		n = int(tag.RowsAffected())
		_, err = tx.Exec(ctx, trimChanges, int64(changeRetention/time.Second), limit)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: purge tokens: %w", err)
	}
	return n, nil
}
