package postgres

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestTrimChangesReadsOnlyWhatItDeletes: the sweep that trims the change
// log of what is older than changeRetention finds those changes by the
// index on at, so an hour of recent changes, however many, costs it
// nothing. Walking the log in seq order and testing each row's at (the
// planner's choice for ORDER BY seq, since it cannot estimate a bound on
// clock_timestamp()) read the whole hour every sweep, once a second, and
// the writes' tail grew with the log.
func TestTrimChangesReadsOnlyWhatItDeletes(t *testing.T) {
	ctx := context.Background()
	db, _ := MustOpen(t)
	exec := func(sql string) {
		t.Helper()
		if _, err := db.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`INSERT INTO changes (at, origin, data)
		SELECT clock_timestamp() - interval '2 hours', 'test', '{}' FROM generate_series(1, 3)`)
	exec(`INSERT INTO changes (origin, data) SELECT 'test', '{}' FROM generate_series(1, 20000)`)
	exec("ANALYZE changes")

	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var plan []map[string]any
	err = tx.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+trimChanges, int64(changeRetention/time.Second), 500).Scan(&plan)
	tx.Rollback(ctx)
	if err != nil || len(plan) != 1 {
		t.Fatalf("EXPLAIN of the trim: %v, %d plans", err, len(plan))
	}
	if read := rowsRead(plan[0]["Plan"], "changes"); read > 10 {
		b, _ := json.MarshalIndent(plan, "", "  ")
		t.Errorf("the trim read %v rows of changes to delete 3 of 20 003; plan:\n%s", read, b)
	}

	if _, err := db.PurgeTokens(ctx, time.Now(), 500); err != nil {
		t.Fatal(err)
	}
	var left, old int
	if err := db.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE at < clock_timestamp() - interval '1 hour') FROM changes`).Scan(&left, &old); err != nil {
		t.Fatal(err)
	}
	if left != 20000 || old != 0 {
		t.Errorf("after the trim: %d changes, %d of them over an hour old; want 20000, 0", left, old)
	}
}

// rowsRead sums, over the nodes of an EXPLAIN ANALYZE plan that scan
// relation, the rows they returned and those their filter removed, per
// loop.
func rowsRead(node any, relation string) float64 {
	n, ok := node.(map[string]any)
	if !ok {
		return 0
	}
	var read float64
	if n["Relation Name"] == relation {
		rows, _ := n["Actual Rows"].(float64)
		removed, _ := n["Rows Removed by Filter"].(float64)
		loops, _ := n["Actual Loops"].(float64)
		read += (rows + removed) * loops
	}
	children, _ := n["Plans"].([]any)
	for _, c := range children {
		read += rowsRead(c, relation)
	}
	return read
}
