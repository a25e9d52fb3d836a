package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// CreateMerchant stores a new merchant; session.ErrPublicKeyTaken if its
// public key is taken.
func (db *DB) CreateMerchant(ctx context.Context, m *session.Merchant) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		keys := wbucket(tx, bucketMerchantKeys)
		if keys.Get([]byte(m.PublicKey)) != nil {
			return session.ErrPublicKeyTaken
		}
		if err := keys.Put([]byte(m.PublicKey), []byte(m.ID)); err != nil {
			return err
		}
		return put(tx, bucketMerchants, []byte(m.ID), m)
	})
}

// PutMerchant replaces a stored merchant; its public key must not change.
func (db *DB) PutMerchant(ctx context.Context, m *session.Merchant) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		if !bytes.Equal(wbucket(tx, bucketMerchantKeys).Get([]byte(m.PublicKey)), []byte(m.ID)) {
			return session.ErrNotFound
		}
		return put(tx, bucketMerchants, []byte(m.ID), m)
	})
}

// Merchant returns the merchant with the id; session.ErrNotFound.
func (db *DB) Merchant(ctx context.Context, id string) (*session.Merchant, error) {
	if m, ok := db.merchants.current(id); ok {
		return m, nil
	}
	ended := db.ended.Load()
	var m *session.Merchant
	err := db.view(func(tx *bolt.Tx) (err error) {
		m, err = db.merchant(tx, []byte(id), ended)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// merchant reads the merchant with the id in tx, which began once every
// write transaction up to ended had ended, through the merchant cache.
func (db *DB) merchant(tx *bolt.Tx, id []byte, ended uint64) (*session.Merchant, error) {
	v := tx.Bucket(bucketMerchants).Get(id)
	if v == nil {
		return nil, session.ErrNotFound
	}
	m, err := db.merchants.get(string(id), v, ended)
	if err != nil {
		return nil, fmt.Errorf("store: decode %s/%s: %w", bucketMerchants, id, err)
	}
	return m, nil
}

// MerchantByPublicKey returns the merchant with the public key.
func (db *DB) MerchantByPublicKey(ctx context.Context, publicKey string) (*session.Merchant, error) {
	ended := db.ended.Load()
	var m *session.Merchant
	err := db.view(func(tx *bolt.Tx) (err error) {
		id := tx.Bucket(bucketMerchantKeys).Get([]byte(publicKey))
		if id == nil {
			return session.ErrNotFound
		}
		m, err = db.merchant(tx, id, ended)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Merchants returns every merchant, oldest first (ids are time-ordered).
func (db *DB) Merchants(ctx context.Context) ([]*session.Merchant, error) {
	var out []*session.Merchant
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMerchants).ForEach(func(k, _ []byte) error {
			m := new(session.Merchant)
			if err := get(tx, bucketMerchants, k, m); err != nil {
				return err
			}
			out = append(out, m)
			return nil
		})
	})
	return out, err
}

// Token returns the token with the hash; session.ErrNotFound.
func (db *DB) Token(ctx context.Context, hash []byte) (*session.Token, error) {
	t := new(session.Token)
	err := db.view(func(tx *bolt.Tx) error { return get(tx, bucketTokens, hash, t) })
	if err != nil {
		return nil, err
	}
	return t, nil
}

// PutTokens stores add and deletes revoke at once; session.ErrNotFound if
// a token to revoke is not stored (it was revoked already).
func (db *DB) PutTokens(ctx context.Context, add []*session.Token, revoke [][]byte) error {
	return db.update(ctx, func(tx *bolt.Tx) error {
		tokens := tx.Bucket(bucketTokens)
		old := make([]*session.Token, len(revoke))
		for i, h := range revoke {
			old[i] = new(session.Token)
			if err := get(tx, bucketTokens, h, old[i]); err != nil {
				return err
			}
		}
		for _, t := range old {
			if err := tokens.Delete(t.Hash); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTokenExpiry).Delete(timeKey(t.Expires, string(t.Hash))); err != nil {
				return err
			}
		}
		for _, t := range add {
			if err := put(tx, bucketTokens, t.Hash, t); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTokenExpiry).Put(timeKey(t.Expires, string(t.Hash)), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// PurgeTokens deletes up to limit tokens that expired at or before now and
// returns how many it deleted.
func (db *DB) PurgeTokens(ctx context.Context, now time.Time, limit int) (int, error) {
	// Look first, so that an idle server does not commit (and fsync) an
	// empty transaction every sweep.
	var due bool
	if err := db.view(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket(bucketTokenExpiry).Cursor().First()
		due = k != nil && beforeOrAt(k, now)
		return nil
	}); err != nil {
		return 0, err
	}
	if !due {
		return 0, nil
	}
	n := 0
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		c := wbucket(tx, bucketTokenExpiry).Cursor()
		tokens := wbucket(tx, bucketTokens)
		for k, _ := c.First(); k != nil && beforeOrAt(k, now) && n < limit; k, _ = c.First() {
			if err := tokens.Delete(k[8:]); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
