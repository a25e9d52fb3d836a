package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store/storetest"
)

// TestRetainOneReplicaAtATime runs retention on two replicas of one
// database: while one holds the chore's lock the other does nothing, and
// once it is free what retention deletes leaves no row in any table that
// names the session, its transaction or its delivery.
func TestRetainOneReplicaAtATime(t *testing.T) {
	ctx := context.Background()
	a, url := MustOpen(t)
	b, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	s := storetest.NewSession(storetest.IDAt(t0))
	mustSave := func(c *session.Change) {
		t.Helper()
		if err := a.Save(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	mustSave(&session.Change{Session: s, Timers: []session.Timer{{Key: "sandbox/session/" + s.ID, Due: t0.Add(time.Minute)}}})
	done := *s
	done.Version, done.State = 2, session.StateCompleted
	done.TransactionID = storetest.IDAt(t0)
	done.BankAccount = &session.BankAccount{ID: "ba_" + s.ID, Holder: "H", IBAN: "SE35"}
	tx := &session.Transaction{ID: done.TransactionID, Type: session.TxTypeDeposit, SessionID: s.ID, MerchantID: "m1", State: session.TxCompleted}
	d := storetest.NewDelivery(&done, "http://a.example/cb", t0)
	d.Status, d.NextAttempt = session.DeliveryDelivered, time.Time{}
	acct := &session.Account{ID: done.BankAccount.ID, MerchantID: "m1", CustomerID: "c1", SessionID: s.ID, Created: t0}
	mustSave(&session.Change{Session: &done, Transaction: tx, Deliveries: []*session.Delivery{d}, Account: acct,
		Timers: []session.Timer{{Key: "sandbox/transaction/" + tx.ID, Due: t0.Add(time.Hour)}}})

	holder, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(retainLock)); err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(24 * time.Hour)
	if n, next, err := b.Retain(ctx, cutoff, "", 500); err != nil || n != 0 || next != "" {
		t.Errorf("Retain while another replica retains = %d, %q, %v; want nothing done", n, next, err)
	}
	if _, err := b.Session(ctx, s.ID); err != nil {
		t.Fatalf("session after a Retain that found the chore taken: %v", err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(retainLock)); err != nil {
		t.Fatal(err)
	}
	if n, next, err := b.Retain(ctx, cutoff, "", 500); err != nil || n != 1 || next != "" {
		t.Fatalf("Retain = %d, %q, %v; want 1 deleted and the range walked", n, next, err)
	}

	// Every table but the change feed's log (kept an hour for replicas
	// catching up) and the schema's.
	rows, err := holder.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name NOT IN ('changes', 'schema_migrations')`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tables) < 6 {
		t.Fatalf("tables = %v, %v", tables, err)
	}
	for _, table := range tables {
		for _, name := range []string{s.ID, tx.ID, d.WebhookID, acct.ID} {
			var n int
			q := "SELECT count(*) FROM " + pgx.Identifier{table}.Sanitize() + " t WHERE strpos(t::text, $1) > 0"
			if err := holder.QueryRow(ctx, q, name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("table %s: %d rows still name %s", table, n, name)
			}
		}
	}
}
