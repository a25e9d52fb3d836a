package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sessiond/sessiond/session"
)

var _ session.AccountStore = (*DB)(nil)

// execer is the pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PutAccount stores a new bank account.
func (db *DB) PutAccount(ctx context.Context, a *session.Account) error {
	return putAccount(ctx, db.pool, a)
}

// putAccount writes a bank account; a stored one with the id is replaced,
// as the bbolt store does.
func putAccount(ctx context.Context, q execer, a *session.Account) error {
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("postgres: encode bank account %s: %w", a.ID, err)
	}
	_, err = q.Exec(ctx, `INSERT INTO accounts (id, merchant_id, customer_id, created, data) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET merchant_id = excluded.merchant_id, customer_id = excluded.customer_id,
		created = excluded.created, data = excluded.data`, a.ID, a.MerchantID, a.CustomerID, a.Created, v)
	if err != nil {
		return fmt.Errorf("postgres: write bank account %s: %w", a.ID, err)
	}
	return nil
}

// Account returns the bank account with the id; session.ErrNotFound.
func (db *DB) Account(ctx context.Context, id string) (*session.Account, error) {
	a := new(session.Account)
	if err := db.getJSON(ctx, a, "SELECT data FROM accounts WHERE id = $1", id); err != nil {
		return nil, err
	}
	return a, nil
}

// Accounts returns the bank accounts of the merchant's customer, oldest
// first.
func (db *DB) Accounts(ctx context.Context, merchantID, customerID string) ([]*session.Account, error) {
	return queryJSON[session.Account](ctx, db, "bank accounts", `SELECT data FROM accounts
		WHERE merchant_id = $1 AND customer_id = $2 ORDER BY created, id COLLATE "C"`, merchantID, customerID)
}

// Transactions returns up to limit of the merchant's transactions, newest
// first, starting after the one with id before (or with the newest).
func (db *DB) Transactions(ctx context.Context, merchantID, before string, limit int) ([]*session.Transaction, error) {
	if before == "" {
		return queryJSON[session.Transaction](ctx, db, "transactions", `SELECT data FROM transactions
			WHERE merchant_id = $1 ORDER BY id COLLATE "C" DESC LIMIT $2`, merchantID, limit)
	}
	return queryJSON[session.Transaction](ctx, db, "transactions", `SELECT data FROM transactions
		WHERE merchant_id = $1 AND id COLLATE "C" < $2 ORDER BY id COLLATE "C" DESC LIMIT $3`, merchantID, before, limit)
}

// TransactionsByReference returns up to limit of the merchant's
// transactions with the reference, newest first.
func (db *DB) TransactionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*session.Transaction, error) {
	return queryJSON[session.Transaction](ctx, db, "transactions by reference", `SELECT data FROM transactions
		WHERE merchant_id = $1 AND merchant_reference = $2 ORDER BY id COLLATE "C" DESC LIMIT $3`, merchantID, ref, limit)
}

// Refunds returns the refunds of the transaction, oldest first.
func (db *DB) Refunds(ctx context.Context, transactionID string) ([]*session.Transaction, error) {
	return queryJSON[session.Transaction](ctx, db, "refunds", `SELECT data FROM transactions
		WHERE original_transaction_id = $1 ORDER BY id COLLATE "C"`, transactionID)
}

// queryJSON decodes the one JSON column of each row the query selects; an
// empty list if none.
func queryJSON[T any](ctx context.Context, db *DB, what, query string, args ...any) ([]*T, error) {
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", what, err)
	}
	defer rows.Close()
	out := []*T{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("postgres: read %s: %w", what, err)
		}
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, fmt.Errorf("postgres: decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read %s: %w", what, err)
	}
	return out, nil
}

// applyAccounts writes, in the transaction of a save, the change's bank
// account and, before a new refund is inserted, checks that the refunds
// of its deposit add up to at most the deposit's amount.
//
// The domain checks that rule too, but under a lock held in one process
// only: two replicas refunding one deposit at the same moment would both
// pass it. Here the deposit's row is locked (SELECT … FOR UPDATE) until
// this transaction ends, so a refund of it in another transaction, on any
// replica, waits and then sums the refunds this one committed.
func (e *encodedChange) applyAccounts(ctx context.Context, tx pgx.Tx) error {
	if a := e.c.Account; a != nil {
		if err := putAccount(ctx, tx, a); err != nil {
			return err
		}
	}
	t := e.c.Transaction
	if t == nil || e.c.TxFrom != nil || t.OriginalTransactionID == "" {
		return nil
	}
	var deposit int64
	err := tx.QueryRow(ctx, "SELECT amount FROM transactions WHERE id = $1 FOR UPDATE", t.OriginalTransactionID).Scan(&deposit)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: lock deposit %s: %w", t.OriginalTransactionID, err)
	}
	if t.State == session.TxAborted || t.State == session.TxFailed {
		return nil
	}
	var refunded int64
	err = tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM transactions
		WHERE original_transaction_id = $1 AND state NOT IN ($2, $3)`,
		t.OriginalTransactionID, int(session.TxAborted), int(session.TxFailed)).Scan(&refunded)
	if err != nil {
		return fmt.Errorf("postgres: sum refunds of %s: %w", t.OriginalTransactionID, err)
	}
	if left := session.Amount(deposit - refunded); t.Amount > left {
		return session.FieldError(session.NameTransactionInvalid, "amount",
			"refunds of a deposit add up to at most its amount: %s is left", left)
	}
	return nil
}

// nullable is s, or NULL if s is empty.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
