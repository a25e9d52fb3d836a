package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/postgres/pgtest"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store/storetest"
)

// MustOpen opens a DB on a database of its own and closes it at the end of
// the test; it returns the database's URL too.
func MustOpen(tb testing.TB) (*DB, string) {
	tb.Helper()
	url := pgtest.URL(tb)
	db, err := Open(context.Background(), url, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, url
}

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func newSession(id string, version int) *session.Session {
	return &session.Session{
		ID: id, Type: session.TypeDeposit, MerchantID: "m1", Version: version,
		Created: t0, Expires: t0.Add(30 * time.Minute),
		Params: session.Params{CountryID: "se", MerchantReference: "order-1"},
	}
}

func schemaVersions(t *testing.T, url string) []int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestConcurrentOpensMigrateOnce starts eight replicas on one empty
// database at once: every one opens, and each migration is applied once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	url := pgtest.URL(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), url, Options{MaxConns: 2})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
		}
	}
	got := schemaVersions(t, url)
	if len(got) != SchemaVersion() {
		t.Errorf("schema_migrations = %v, want each of 1..%d once", got, SchemaVersion())
	}
	for i, v := range got {
		if v != i+1 {
			t.Errorf("schema_migrations = %v, want 1..%d", got, SchemaVersion())
			break
		}
	}
}

// TestNewerSchemaRefused: a database migrated by a newer sessiond is not
// opened, and the message says what to do.
func TestNewerSchemaRefused(t *testing.T) {
	db, url := MustOpen(t)
	ctx := context.Background()
	next := SchemaVersion() + 1
	if _, err := db.pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future.sql')", next); err != nil {
		t.Fatal(err)
	}
	_, err := Open(ctx, url, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open on a newer schema: %v, want ErrSchemaTooNew", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "newer") || !strings.Contains(msg, "sessiond at least as new") {
		t.Errorf("message %q does not say what to do", msg)
	}
}

func TestReopenKeepsSchema(t *testing.T) {
	db, url := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if got, err := db2.Session(ctx, "s1"); err != nil || got.Version != 1 {
		t.Errorf("session after reopen: %+v, %v", got, err)
	}
	if got := schemaVersions(t, url); len(got) != SchemaVersion() {
		t.Errorf("schema_migrations after reopen = %v", got)
	}
}

func TestBadURL(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:secret@[::1", Options{})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("Open with a bad URL: %v, want an error that does not quote the password", err)
	}
}

func TestIsURL(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://h/db": true, "postgresql://u@h/db": true, "./sessiond.db": false, "postgres.db": false, "": false,
	} {
		if got := IsURL(s); got != want {
			t.Errorf("IsURL(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestContract runs the store contract's conformance suite, the same the
// bbolt store passes.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, feed session.Publisher) session.Store {
		db, err := Open(context.Background(), pgtest.URL(t), Options{Publisher: feed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
