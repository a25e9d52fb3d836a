// Package postgres keeps sessiond's data in a PostgreSQL database, so that
// several sessiond processes (replicas) can serve the same merchants and
// sessions: it implements session.Store and the outbox the callbacks
// package reads, with pgx. It is the only package that imports pgx.
//
// The schema is a list of numbered SQL migrations embedded in the binary
// (migrations/*.sql); Open applies the missing ones under an advisory lock,
// so that replicas starting together migrate once, and refuses a database
// whose schema is newer than the migrations it knows.
//
// Times are the replicas' clocks: the domain stamps every time it stores
// and passes "now" to every query that selects by time, as with bbolt.
// Replicas' clocks must agree (NTP) to well within the lease of a claim.
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sessiond/sessiond/session"
)

var _ session.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the key of the advisory lock Open holds while it
// migrates ("sessiond" in ASCII).
const migrationLock = 0x73657373696f6e64

// purgeLock is the key of the advisory lock of the purge chore.
const purgeLock = migrationLock + 1

// feedStartTimeout bounds how long Open waits for the change feed's
// connection to listen.
const feedStartTimeout = 10 * time.Second

// ErrSchemaTooNew is returned by Open for a database migrated by a newer
// sessiond than this one.
var ErrSchemaTooNew = errors.New("postgres: the database's schema is newer than this sessiond")

// IsURL reports whether s names a PostgreSQL database (a postgres:// or
// postgresql:// URL) rather than a file.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Options tune Open.
type Options struct {
	// MaxConns caps the pool's connections, unless the URL sets
	// pool_max_conns; 0 means 32.
	MaxConns int32
	// Publisher, if set, is handed every change saved to the database by
	// any replica, in commit order; a change saved through this DB is
	// handed on before its Save returns. It is called from the one
	// goroutine that reads the feed and must not block.
	Publisher session.Publisher
	// OnMerchantChanged, if set, is told the id of every merchant changed
	// by any replica (PutMerchant, or a token of it revoked), and "" when
	// such news may have been missed (the feed reconnected): forget all.
	// It needs a Publisher to be set, and must not block.
	OnMerchantChanged func(id string)
	// OnError is told of failures of the background work (the feed's
	// connection, a write of touches); nil discards them.
	OnError func(error)
	// TouchInterval is how often the touches held are written; 0 means
	// 1s.
	TouchInterval time.Duration
}

// DB is sessiond's PostgreSQL database. Open it with Open; call Close when
// finished.
type DB struct {
	pool    *pgxpool.Pool
	touches *pgxpool.Pool // synchronous_commit off
	held    *session.TouchBuffer
	cache   *sessionCache
	origin  string // this DB's name in the change feed
	feed    *listener
	stop    context.CancelFunc

	saves      chan *saveReq
	closing    chan struct{}
	committing sync.WaitGroup
	closeOnce  sync.Once
}

// Open connects to the database at url, applies the migrations it lacks
// and returns the DB. ErrSchemaTooNew if the database was migrated further
// than this binary knows.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message can quote the URL, password included.
		return nil, errors.New("postgres: the database URL cannot be parsed")
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = opts.MaxConns
		if cfg.MaxConns == 0 {
			cfg.MaxConns = 32
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	tcfg := cfg.Copy()
	tcfg.MaxConns = max(2, cfg.MaxConns/4)
	tcfg.ConnConfig.RuntimeParams["synchronous_commit"] = "off"
	touches, err := pgxpool.NewWithConfig(ctx, tcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	b := make([]byte, 8)
	rand.Read(b) // never fails
	db := &DB{pool: pool, touches: touches, cache: newSessionCache(), origin: hex.EncodeToString(b), stop: func() {},
		saves: make(chan *saveReq), closing: make(chan struct{})}
	for range committers {
		db.committing.Add(1)
		go db.commitLoop()
	}
	interval := opts.TouchInterval
	if interval == 0 {
		interval = time.Second
	}
	onError := opts.OnError
	if onError == nil {
		onError = func(error) {}
	}
	db.held = session.StartTouchBuffer(interval, func(held map[string]session.Touch) error {
		err := db.writeTouches(held)
		if err != nil {
			onError(err)
		}
		return err
	})
	if opts.Publisher != nil {
		merchant := opts.OnMerchantChanged
		if merchant == nil {
			merchant = func(string) {}
		}
		db.feed = &listener{
			merchant: merchant,
			db:       db, cfg: cfg.ConnConfig.Copy(), publish: opts.Publisher.Publish, onError: onError, pending: map[int64]*waiter{},
			seen: map[int64]time.Time{}, wake: make(chan struct{}, 1), ready: make(chan struct{}), done: make(chan struct{}),
		}
		var feedCtx context.Context
		feedCtx, db.stop = context.WithCancel(context.Background())
		go db.feed.run(feedCtx)
		// Changes saved after Open returns must reach Publish: wait until
		// the feed listens.
		select {
		case <-db.feed.ready:
		case <-ctx.Done():
			db.Close()
			return nil, fmt.Errorf("postgres: start the change feed: %w", ctx.Err())
		case <-time.After(feedStartTimeout):
			db.Close()
			return nil, fmt.Errorf("postgres: the change feed did not start listening within %v", feedStartTimeout)
		}
	}
	return db, nil
}

// Close writes the touches held, stops the committers, once the saves
// they have taken are done, and the feed, and closes the pool's
// connections.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.held.Stop()
		close(db.closing)
		db.committing.Wait()
		db.stop()
		if db.feed != nil {
			<-db.feed.done
		}
		db.pool.Close()
		db.touches.Close()
	})
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order. Their
// names are NNNN_what.sql, numbered from 1 without gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("postgres: migration %s is not named NNNN_what.sql", base)
		}
		b, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, base, string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("postgres: migration %s is out of sequence (want %04d)", m.name, i+1)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this binary migrates databases to.
func SchemaVersion() int {
	ms, err := migrations()
	if err != nil {
		return 0
	}
	return len(ms)
}

// migrate brings the database's schema up to date, holding the migration
// advisory lock on one connection so that concurrent starts take turns:
// the first applies what is missing, the others then find nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres: take the migration lock: %w", err)
	}
	defer func() {
		// A lost unlock ends with the connection; make sure it does.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock)); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		name    text NOT NULL,
		applied timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("postgres: read the schema version: %w", err)
	}
	if current > len(ms) {
		return fmt.Errorf("%w: the database is at schema version %d, this sessiond knows versions up to %d; run a sessiond at least as new as the one that migrated it",
			ErrSchemaTooNew, current, len(ms))
	}
	for _, m := range ms[current:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.name, err)
		}
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation
// of the named constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint
}

// ts returns t for a timestamptz column: NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// sortBy sorts s by less, keeping equal elements in order.
func sortBy[T any](s []T, less func(a, b T) bool) {
	sort.SliceStable(s, func(i, j int) bool { return less(s[i], s[j]) })
}
