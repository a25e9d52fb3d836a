package session

import (
	"context"
	"errors"
)

// ErrNoAccounts is the (internal) error of a use case that needs an
// AccountStore, on a store that is not one.
var ErrNoAccounts = errors.New("session: this store keeps no bank accounts or transaction indexes")

// AccountStore is what a Store also implements to keep bank accounts and
// the transaction indexes behind transaction.list, the merchant-reference
// lookup and refunds. Such a store also writes, in Save, a change's
// Account, and a change without a session whose TxFrom is nil (a new
// payout or refund), failing with ErrVersionConflict if that transaction
// exists. Every transaction Save writes is in the indexes from the moment
// it is first stored. Methods that find nothing return ErrNotFound, or an
// empty list.
//
// A Store without it serves everything else; the use cases that need it
// fail with ErrNoAccounts.
type AccountStore interface {
	// PutAccount stores a new bank account; an account also arrives with
	// a session change (Change.Account), written in that transaction.
	PutAccount(ctx context.Context, a *Account) error
	// Account returns the bank account with the id; ErrNotFound.
	Account(ctx context.Context, id string) (*Account, error)
	// Accounts returns the bank accounts of the merchant's customer,
	// oldest first.
	Accounts(ctx context.Context, merchantID, customerID string) ([]*Account, error)

	// Transactions returns up to limit of the merchant's transactions,
	// newest first (transaction ids grow with time), starting after the
	// one with id before, or with the newest if before is empty.
	Transactions(ctx context.Context, merchantID, before string, limit int) ([]*Transaction, error)
	// TransactionsByReference returns up to limit of the merchant's
	// transactions with the merchant reference, newest first.
	TransactionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*Transaction, error)
	// Refunds returns the refunds of a transaction, oldest first.
	Refunds(ctx context.Context, transactionID string) ([]*Transaction, error)
}
