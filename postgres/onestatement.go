package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

// oneStatement reports whether the change can be written by applyOne: a
// session write with deliveries, timers and the feed's row, and, for a
// move of a stored session, the transaction it creates or moves on; not
// an account, whose check is of its own.
func (e *encodedChange) oneStatement() bool {
	c := e.c
	if c.Session == nil || c.Account != nil || c.Transaction != nil && c.Session.Version == 1 {
		return false
	}
	keys := make(map[string]bool, len(c.Timers))
	for _, t := range c.Timers {
		if keys[t.Key] { // one statement may not upsert a key twice
			return false
		}
		keys[t.Key] = true
	}
	return true
}

// applyOne writes the change as apply does, in one statement and so one
// round trip: the versioned session write is a data-modifying WITH query
// whose RETURNING row the deliveries, the timers and the feed's row and
// notification are each conditional on. A refused write thus writes
// nothing, as apply's separate first statement ensured, and no other
// save of the session in the same transaction can be mistaken for it.
// A change with a transaction checks it first (the state it moves from,
// its row locked, or that a new one's id is free) and writes the session
// only if the check holds, and the transaction only if the session was
// written: a refusal of either writes neither.
func (e *encodedChange) applyOne(ctx context.Context, tx pgx.Tx, origin string) (int64, error) {
	q, args := e.oneQuery(origin)
	var r oneResult
	if err := tx.QueryRow(ctx, q, args...).Scan(&r.wrote, &r.logged, &r.txWrote); err != nil {
		return 0, fmt.Errorf("postgres: save %s: %w", e.c.Session.ID, err)
	}
	return e.oneOutcome(ctx, tx, r)
}

// oneResult is what applyOne's statement answers: whether the session
// was written, the feed's seq of the change if it was logged, and whether
// its transaction, if it has one, was written.
type oneResult struct {
	wrote   bool
	logged  *int64
	txWrote bool
}

// oneOutcome turns the answer of the change's statement into applyOne's:
// a refused write is told apart as missing or conflicting, the session's
// refusal before its transaction's, as apply tells them.
func (e *encodedChange) oneOutcome(ctx context.Context, tx pgx.Tx, r oneResult) (int64, error) {
	s, t := e.c.Session, e.c.Transaction
	if !r.wrote {
		if s.Version == 1 {
			return 0, session.ErrVersionConflict
		}
		if t == nil {
			return 0, missingOrConflict(ctx, tx, "SELECT 1 FROM sessions WHERE id = $1", s.ID)
		}
		var version int
		err := tx.QueryRow(ctx, "SELECT version FROM sessions WHERE id = $1", s.ID).Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return 0, session.ErrNotFound
		case err != nil:
			return 0, fmt.Errorf("postgres: check session %s: %w", s.ID, err)
		case version != s.Version-1:
			return 0, session.ErrVersionConflict
		}
		return 0, missingOrConflict(ctx, tx, "SELECT 1 FROM transactions WHERE id = $1", t.ID)
	}
	if !r.txWrote {
		// The check let the session be written, and yet the transaction
		// was not: only a save racing this one could do that. Failing
		// ends the database transaction, and so keeps neither.
		return 0, fmt.Errorf("postgres: save %s: transaction %s not written", s.ID, t.ID)
	}
	if r.logged == nil {
		return 0, nil
	}
	return *r.logged, nil
}

// oneQuery builds applyOne's statement and its arguments.
func (e *encodedChange) oneQuery(origin string) (string, []any) {
	s := e.c.Session
	var expires any
	if !s.State.Final() {
		expires = s.Expires
	}
	var q strings.Builder
	var args []any
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	id, data, last := param(s.ID), param(e.session), param(ts(s.LastRequest))
	if s.Version == 1 {
		var ref any
		if r := s.Params.MerchantReference; r != "" {
			ref = r
		}
		fmt.Fprintf(&q, `WITH s AS (INSERT INTO sessions (id, merchant_id, merchant_reference, version, expires, last_request, data)
			VALUES (%s, %s, %s, 1, %s, %s, %s) ON CONFLICT (id) DO NOTHING RETURNING id)`,
			id, param(s.MerchantID), param(ref), param(expires), last, data)
	} else {
		t, check := e.c.Transaction, ""
		if t != nil {
			if e.c.TxFrom != nil {
				fmt.Fprintf(&q, `WITH tc AS (SELECT id FROM transactions WHERE id = %s::text AND state = %s::integer FOR UPDATE), `,
					param(t.ID), param(int(*e.c.TxFrom)))
			} else {
				fmt.Fprintf(&q, `WITH tc AS (SELECT WHERE NOT EXISTS (SELECT 1 FROM transactions WHERE id = %s::text)), `, param(t.ID))
			}
			check = " AND EXISTS (SELECT 1 FROM tc)"
		} else {
			q.WriteString("WITH ")
		}
		// The save ends any claim on the session.
		fmt.Fprintf(&q, `s AS (UPDATE sessions SET version = %s, expires = %s, last_request = %s, data = %s,
			claim_owner = NULL, claim_until = NULL
			WHERE id = %s AND version = %s%s RETURNING id)`,
			param(s.Version), param(expires), last, data, id, param(s.Version-1), check)
		switch {
		case t != nil && e.c.TxFrom != nil:
			fmt.Fprintf(&q, `, w AS (UPDATE transactions SET state = %s::integer, data = %s::json
				WHERE id = %s::text AND EXISTS (SELECT 1 FROM s) RETURNING id)`,
				param(int(t.State)), param(e.tx), param(t.ID))
		case t != nil:
			fmt.Fprintf(&q, `, w AS (INSERT INTO transactions (id, session_id, state, merchant_id, merchant_reference, original_transaction_id, amount, data)
				SELECT %s::text, %s::text, %s::integer, %s::text, %s::text, %s::text, %s::bigint, %s::json FROM s
				ON CONFLICT (id) DO NOTHING RETURNING id)`,
				param(t.ID), param(t.SessionID), param(int(t.State)), param(t.MerchantID), param(nullable(t.MerchantReference)),
				param(nullable(t.OriginalTransactionID)), param(int64(t.Amount)), param(e.tx))
		}
	}
	for i, d := range e.c.Deliveries {
		fmt.Fprintf(&q, `, d%d AS (INSERT INTO deliveries (webhook_id, session_id, host, next_attempt, created, data)
			SELECT %s::text, %s::text, %s::text, %s::timestamptz, %s::timestamptz, %s::json FROM s)`, i,
			param(d.WebhookID), param(d.SessionID), param(d.Host()), param(nextAttempt(d)), param(d.Created), param(e.deliveries[i]))
	}
	for i, t := range e.c.Timers {
		if t.Due.IsZero() {
			fmt.Fprintf(&q, `, t%d AS (DELETE FROM timers WHERE key = %s::text AND EXISTS (SELECT 1 FROM s))`, i, param(t.Key))
		} else {
			fmt.Fprintf(&q, `, t%d AS (INSERT INTO timers (key, due) SELECT %s::text, %s::timestamptz FROM s
				ON CONFLICT (key) DO UPDATE SET due = excluded.due)`, i, param(t.Key), param(t.Due))
		}
	}
	seq := "NULL::bigint"
	if origin != "" {
		feed := e.feedData()
		inline := ""
		if len(feed) <= maxPayload {
			inline = string(feed)
		}
		o := param(origin)
		fmt.Fprintf(&q, `, c AS (INSERT INTO changes (origin, data) SELECT %s::text, %s::json FROM s RETURNING seq, at),
			n AS (SELECT pg_notify('`+feedChannel+`', c.seq || ' ' || (extract(epoch FROM c.at) * 1000000)::bigint || ' ' || %s::text || ' ' || %s::text) FROM c)`,
			o, param(feed), o, param(inline))
		seq = "(SELECT c.seq FROM c, n)"
	}
	txWrote := "TRUE"
	if e.c.Transaction != nil {
		txWrote = "EXISTS (SELECT 1 FROM w)"
	}
	q.WriteString(` SELECT EXISTS (SELECT 1 FROM s), ` + seq + `, ` + txWrote)
	return q.String(), args
}
