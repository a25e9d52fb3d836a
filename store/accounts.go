package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

var _ session.AccountStore = (*DB)(nil)

var (
	bucketAccounts         = []byte("accounts")          // id → Account
	bucketCustomerAccounts = []byte("customer_accounts") // merchant id + len(customer) (2 BE) + customer + account id → nil
	bucketMerchantTxs      = []byte("merchant_txs")      // merchant id + transaction id → nil
	bucketTxRefs           = []byte("tx_refs")           // merchant id + len(ref) (2 BE) + ref + transaction id → nil
	bucketRefunds          = []byte("refunds")           // original transaction id + refund id → nil
)

// The account and transaction-index buckets are made at Open with the
// others.
func init() {
	allBuckets = append(allBuckets, bucketAccounts, bucketCustomerAccounts, bucketMerchantTxs, bucketTxRefs, bucketRefunds)
}

// prefixKey returns merchant id + len(s) (2 BE) + s + id: keys of one
// merchant's s sort together, by id.
func prefixKey(merchantID, s, id string) []byte {
	k := make([]byte, 0, len(merchantID)+2+len(s)+len(id))
	k = append(k, merchantID...)
	k = binary.BigEndian.AppendUint16(k, uint16(len(s)))
	k = append(k, s...)
	return append(k, id...)
}

// putAccount writes a bank account and its customer index entry.
func putAccount(tx *bolt.Tx, a *session.Account) error {
	if err := put(tx, bucketAccounts, []byte(a.ID), a); err != nil {
		return err
	}
	if err := wbucket(tx, bucketCustomerAccounts).Put(prefixKey(a.MerchantID, a.CustomerID, a.ID), nil); err != nil {
		return fmt.Errorf("store: index bank account %s: %w", a.ID, err)
	}
	return nil
}

// indexTransaction adds a transaction that is stored for the first time
// to the merchant's list, its merchant reference and, for a refund, its
// deposit's refunds.
func indexTransaction(tx *bolt.Tx, t *session.Transaction) error {
	entries := []struct {
		bucket, key []byte
	}{{bucketMerchantTxs, []byte(t.MerchantID + t.ID)}}
	if t.MerchantReference != "" {
		entries = append(entries, struct{ bucket, key []byte }{bucketTxRefs, prefixKey(t.MerchantID, t.MerchantReference, t.ID)})
	}
	if t.OriginalTransactionID != "" {
		entries = append(entries, struct{ bucket, key []byte }{bucketRefunds, []byte(t.OriginalTransactionID + t.ID)})
	}
	for _, e := range entries {
		if err := wbucket(tx, e.bucket).Put(e.key, nil); err != nil {
			return fmt.Errorf("store: index transaction %s: %w", t.ID, err)
		}
	}
	return nil
}

// PutAccount stores a new bank account.
func (db *DB) PutAccount(ctx context.Context, a *session.Account) error {
	return db.update(ctx, func(tx *bolt.Tx) error { return putAccount(tx, a) })
}

// Account returns the bank account with the id; session.ErrNotFound.
func (db *DB) Account(ctx context.Context, id string) (*session.Account, error) {
	a := new(session.Account)
	if err := db.view(func(tx *bolt.Tx) error { return get(tx, bucketAccounts, []byte(id), a) }); err != nil {
		return nil, err
	}
	return a, nil
}

// Accounts returns the bank accounts of the merchant's customer, oldest
// first (in the order they were stored).
func (db *DB) Accounts(ctx context.Context, merchantID, customerID string) ([]*session.Account, error) {
	prefix := prefixKey(merchantID, customerID, "")
	out := []*session.Account{}
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketCustomerAccounts).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			a := new(session.Account)
			if err := get(tx, bucketAccounts, k[len(prefix):], a); err != nil {
				return fmt.Errorf("store: customer index names bank account %s: %w", k[len(prefix):], err)
			}
			out = append(out, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Account ids are random, so the index is in id order: put them in
	// the order they were made.
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Transactions returns up to limit of the merchant's transactions, newest
// first, starting after the one with id before (or with the newest).
func (db *DB) Transactions(ctx context.Context, merchantID, before string, limit int) ([]*session.Transaction, error) {
	prefix := []byte(merchantID)
	start := append(bytes.Clone(prefix), 0xff)
	if before != "" {
		start = []byte(merchantID + before)
	}
	return db.transactionsBack(bucketMerchantTxs, prefix, start, limit)
}

// TransactionsByReference returns up to limit of the merchant's
// transactions with the reference, newest first.
func (db *DB) TransactionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*session.Transaction, error) {
	prefix := prefixKey(merchantID, ref, "")
	return db.transactionsBack(bucketTxRefs, prefix, append(bytes.Clone(prefix), 0xff), limit)
}

// Refunds returns the refunds of the transaction, oldest first.
func (db *DB) Refunds(ctx context.Context, transactionID string) ([]*session.Transaction, error) {
	prefix := []byte(transactionID)
	out := []*session.Transaction{}
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRefunds).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			t := new(session.Transaction)
			if err := get(tx, bucketTransactions, k[len(prefix):], t); err != nil {
				return fmt.Errorf("store: refund index names transaction %s: %w", k[len(prefix):], err)
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}

// transactionsBack walks an index whose keys are prefix + transaction id
// backwards from the last key before start, and returns up to limit of
// the transactions it names. Transaction ids grow with time, so this is
// newest first.
func (db *DB) transactionsBack(bucket, prefix, start []byte, limit int) ([]*session.Transaction, error) {
	out := []*session.Transaction{}
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		k, _ := c.Seek(start)
		if k == nil {
			k, _ = c.Last()
		} else {
			k, _ = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(out) < limit; k, _ = c.Prev() {
			t := new(session.Transaction)
			if err := get(tx, bucketTransactions, k[len(prefix):], t); err != nil {
				return fmt.Errorf("store: %s index names transaction %s: %w", bucket, k[len(prefix):], err)
			}
			out = append(out, t)
		}
		return nil
	})
	return out, err
}
