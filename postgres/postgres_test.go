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

func TestSaveVersions(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		version int
		want    error
	}{
		{1, session.ErrVersionConflict},
		{3, session.ErrVersionConflict},
		{2, nil},
		{2, session.ErrVersionConflict},
	} {
		if err := db.Save(ctx, &session.Change{Session: newSession("s1", tt.version)}); !errors.Is(err, tt.want) {
			t.Errorf("Save version %d: %v, want %v", tt.version, err, tt.want)
		}
	}
	if err := db.Save(ctx, &session.Change{Session: newSession("nope", 2)}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Save of a missing session at version 2: %v, want not found", err)
	}
}

// TestSaveIsOneTransaction: a change whose transaction is no longer in the
// state it names writes nothing, session and deliveries included.
func TestSaveIsOneTransaction(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	tx := &session.Transaction{ID: "t1", SessionID: "s1", MerchantID: "m1", State: session.TxCreated}
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1), Transaction: tx}); err != nil {
		t.Fatal(err)
	}
	st := session.State(12)
	moved := *tx
	moved.State = session.TxCompleted
	pending := session.TxPending // not the stored state
	c := &session.Change{
		Session: newSession("s1", 2), Transaction: &moved, TxFrom: &pending,
		Deliveries: []*session.Delivery{{WebhookID: "w1", SessionID: "s1", SessionState: &st, Status: session.DeliveryPending, NextAttempt: t0}},
	}
	if err := db.Save(ctx, c); !errors.Is(err, session.ErrVersionConflict) {
		t.Fatalf("Save with a stale TxFrom: %v, want conflict", err)
	}
	if s, _ := db.Session(ctx, "s1"); s.Version != 1 {
		t.Errorf("session version after the refused save: %d, want 1", s.Version)
	}
	if ds, _ := db.SessionDeliveries(ctx, "s1"); len(ds) != 0 {
		t.Errorf("deliveries after the refused save: %d, want 0", len(ds))
	}
	created := session.TxCreated
	c.TxFrom = &created
	if err := db.Save(ctx, c); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Transaction(ctx, "t1"); got.State != session.TxCompleted {
		t.Errorf("transaction state: %v", got.State)
	}
	if ds, _ := db.DueDeliveries(ctx, t0, 10); len(ds) != 1 {
		t.Errorf("due deliveries: %d, want 1", len(ds))
	}
}

func TestTouchKeepsVersion(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	if err := db.Save(ctx, &session.Change{Session: newSession("s1", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := db.Touch(ctx, "s1", t0.Add(time.Minute), session.Client{IP: "127.0.0.1", UserAgent: "ua"}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Session(ctx, "s1")
	if err != nil || s.Version != 1 || s.IP != "127.0.0.1" || s.UserAgent != "ua" || !s.LastRequest.Equal(t0.Add(time.Minute)) {
		t.Errorf("touched session: %+v, %v", s, err)
	}
	if err := db.Touch(ctx, "nope", t0, session.Client{}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Touch of a missing session: %v", err)
	}
}

func TestMerchantsAndTokens(t *testing.T) {
	db, _ := MustOpen(t)
	ctx := context.Background()
	m := &session.Merchant{ID: "m1", Name: "shop", PublicKey: "pk_1", SecretHash: []byte{1}, CallbackSecret: "whsec_x"}
	if err := db.CreateMerchant(ctx, m); err != nil {
		t.Fatal(err)
	}
	dup := *m
	dup.ID = "m2"
	if err := db.CreateMerchant(ctx, &dup); session.ErrorCode(err) != session.CodeConflict {
		t.Errorf("second merchant with pk_1: %v, want conflict", err)
	}
	if got, err := db.MerchantByPublicKey(ctx, "pk_1"); err != nil || got.CallbackSecret != "whsec_x" {
		t.Errorf("MerchantByPublicKey: %+v, %v", got, err)
	}
	old := &session.Token{Hash: []byte("old"), Expires: t0}
	live := &session.Token{Hash: []byte("live"), Expires: t0.Add(time.Hour)}
	if err := db.PutTokens(ctx, []*session.Token{old, live}, nil); err != nil {
		t.Fatal(err)
	}
	if n, err := db.PurgeTokens(ctx, t0, 100); err != nil || n != 1 {
		t.Fatalf("PurgeTokens = %d, %v, want 1", n, err)
	}
	if err := db.PutTokens(ctx, nil, [][]byte{[]byte("old")}); !errors.Is(err, session.ErrUnauthorized) {
		t.Errorf("revoking a gone token: %v, want unauthorized", err)
	}
	if _, err := db.Token(ctx, []byte("live")); err != nil {
		t.Errorf("live token: %v", err)
	}
}
