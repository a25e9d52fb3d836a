package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

// retainLock is the key of the advisory lock of the retention chore.
const retainLock = migrationLock + 2

// Retain deletes final sessions created before cutoff with what belongs
// to them, in one transaction per call. It is a chore for one replica at
// a time, as PurgeTokens is: a replica that finds another retaining
// (holding the chore's advisory lock) returns at once with nothing done
// and next "". Session ids are time-ordered, so the sessions created
// before the cutoff are the ids below session.IDAt(cutoff), read from the
// primary key's index. A session that is not final (expires is NULL only
// once it is), has a pending delivery (next_attempt set), or whose
// transaction has refunds is kept.
func (db *DB) Retain(ctx context.Context, cutoff time.Time, after string, limit int) (int, string, error) {
	n, next := 0, ""
	var forgotten []string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		n, next, forgotten = 0, "", nil
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", int64(retainLock)).Scan(&mine); err != nil || !mine {
			return err
		}
		// The ids looked at: up to limit after after, below the bound.
		rows, err := tx.Query(ctx, `SELECT id, expires IS NULL AND (data->>'created')::timestamptz < $3
			FROM sessions WHERE id > $1 AND id < $2 ORDER BY id LIMIT $4`,
			after, session.IDAt(cutoff), cutoff, limit)
		if err != nil {
			return err
		}
		var ids []string
		seen := 0
		for rows.Next() {
			var id string
			var final bool
			if err := rows.Scan(&id, &final); err != nil {
				rows.Close()
				return err
			}
			seen++
			next = id
			if final {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if seen < limit {
			next = "" // the range is walked
		}
		if len(ids) == 0 {
			return nil
		}
		// Of those, the ones to delete, locked against a save meanwhile
		// (a resend makes a delivery pending again).
		rows, err = tx.Query(ctx, `SELECT s.id, coalesce(s.data->'bank_account'->>'id', ''), coalesce(s.data->>'transaction_id', '')
			FROM sessions s WHERE s.id = ANY($1) AND s.expires IS NULL
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.session_id = s.id AND d.next_attempt IS NOT NULL)
			AND NOT EXISTS (SELECT 1 FROM transactions r WHERE r.original_transaction_id = s.data->>'transaction_id')
			FOR UPDATE OF s SKIP LOCKED`, ids)
		if err != nil {
			return err
		}
		var doomed, accounts, txs, timers []string
		for rows.Next() {
			var id, account, txID string
			if err := rows.Scan(&id, &account, &txID); err != nil {
				rows.Close()
				return err
			}
			doomed = append(doomed, id)
			timers = append(timers, id)
			if account != "" {
				accounts = append(accounts, account)
			}
			if txID != "" {
				txs = append(txs, txID)
				timers = append(timers, txID)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(doomed) == 0 {
			return nil
		}
		for _, q := range []struct {
			what, sql string
			arg       []string
		}{
			// Timer keys end in the id they name (sandbox/session/ID).
			{"timers", `DELETE FROM timers WHERE substring(key FROM '[^/]*$') = ANY($1)`, timers},
			{"deliveries", `DELETE FROM deliveries WHERE session_id = ANY($1) AND next_attempt IS NULL`, doomed},
			// A session's own transaction, by its key, as bbolt deletes it
			// (transactions have no index by session).
			{"transactions", `DELETE FROM transactions WHERE id = ANY($1)`, txs},
			{"bank accounts", `DELETE FROM accounts WHERE id = ANY($1) AND data->>'session_id' = ANY($2)`, accounts},
			{"sessions", `DELETE FROM sessions WHERE id = ANY($1)`, doomed},
		} {
			if len(q.arg) == 0 {
				continue
			}
			args := []any{q.arg}
			if q.what == "bank accounts" {
				args = append(args, doomed)
			}
			if _, err := tx.Exec(ctx, q.sql, args...); err != nil {
				return fmt.Errorf("delete %s: %w", q.what, err)
			}
		}
		n = len(doomed)
		forgotten = doomed
		// Every replica's session cache forgets them at commit.
		return notifyForgotten(ctx, tx, doomed)
	})
	if err != nil {
		return 0, "", fmt.Errorf("postgres: retain: %w", err)
	}
	db.cache.forget(forgotten...)
	return n, next, nil
}
