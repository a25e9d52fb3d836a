package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sessiond/sessiond/session"
)

// Session returns the session with the id, with its latest touch;
// session.ErrNotFound. A cached session is returned once the change feed
// has synced (see sessionCache); any other read goes to the database.
func (db *DB) Session(ctx context.Context, id string) (*session.Session, error) {
	_, gen, ok := db.cache.lookup(id)
	if ok && db.feed != nil && db.feed.sync(ctx) {
		var s *session.Session
		if s, gen, ok = db.cache.lookup(id); ok {
			db.held.Merge(s)
			return s, nil
		}
	}
	return db.readSession(ctx, id, gen)
}

// SessionEarly returns the session with the id as Session does, but a
// cached one, while the change feed is current, without waiting for it to
// sync: it may be behind a change another replica committed moments ago
// (session.EarlyReader).
func (db *DB) SessionEarly(ctx context.Context, id string) (*session.Session, bool, error) {
	s, gen, ok := db.cache.lookup(id)
	if ok && db.feed != nil && db.feed.live() {
		db.held.Merge(s)
		return s, true, nil
	}
	s, err := db.readSession(ctx, id, gen)
	return s, false, err
}

// readSession reads the session with the id from the database and caches
// it under gen, the ticket of the cache's lookup.
func (db *DB) readSession(ctx context.Context, id string, gen uint64) (*session.Session, error) {
	var raw []byte
	err := db.pool.QueryRow(ctx, "SELECT data FROM sessions WHERE id = $1", id).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read session %s: %w", id, err)
	}
	s, err := db.cache.decode(id, raw, &gen)
	if err != nil {
		return nil, err
	}
	db.held.Merge(s)
	return s, nil
}

// SessionsByReference returns up to limit sessions of the merchant with the
// reference, newest first (ids are time-ordered).
func (db *DB) SessionsByReference(ctx context.Context, merchantID, ref string, limit int) ([]*session.Session, error) {
	rows, err := db.pool.Query(ctx, `SELECT data FROM sessions
		WHERE merchant_id = $1 AND merchant_reference = $2 ORDER BY id DESC LIMIT $3`, merchantID, ref, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: sessions by reference: %w", err)
	}
	var out []*session.Session
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("postgres: sessions by reference: %w", err)
		}
		s, err := decodeSession(raw)
		if err != nil {
			return nil, err
		}
		db.held.Merge(s)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: sessions by reference: %w", err)
	}
	return out, nil
}

func decodeSession(raw []byte) (*session.Session, error) {
	s := new(session.Session)
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("postgres: decode session: %w", err)
	}
	return s, nil
}

// Save writes a change in one database transaction: the session, checked
// against its stored version, its transaction (checked against TxFrom, or
// new), its bank account, its deliveries, its timers and its entry in the
// change feed; a new refund is checked against its deposit's amount.
// session.ErrVersionConflict if the stored version or transaction state
// differs; session.ErrNotFound if a session at a version past 1, or a
// transaction to move, is not stored. The change is published before Save
// returns.
//
// Saves waiting at the same moment share one database transaction (group
// commit, as the bbolt store does): a commit that notifies holds a lock
// every other notifying commit waits for, so one commit per save would
// cap writes at one WAL flush each. A save refused by its checks leaves
// nothing in the shared transaction; one that fails otherwise makes the
// others run again without it.
func (db *DB) Save(ctx context.Context, c *session.Change) error {
	e, err := encodeChange(c)
	if err != nil {
		return err
	}
	var gen uint64
	if c.Session != nil {
		gen = db.cache.ticket(c.Session.ID)
	}
	r := &saveReq{e: e, done: make(chan struct{})}
	select {
	case db.saves <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-db.closing:
		return ErrClosed
	}
	<-r.done // once taken, the save may commit: wait for its outcome whatever ctx says
	if r.err != nil {
		db.refused(c, r.err)
		return r.err
	}
	if c.Session != nil {
		db.cache.fill(e.session, c.Session, gen)
	}
	db.awaitPublished(ctx, r.w)
	return nil
}

// refused drops the cached session of a change the database refused: the
// change may have been decided on a cached read that was behind the
// database, and the next read is to see what the database holds.
func (db *DB) refused(c *session.Change, err error) {
	if c.Session != nil && (errors.Is(err, session.ErrVersionConflict) || errors.Is(err, session.ErrNotFound)) {
		db.cache.forget(c.Session.ID)
	}
}

// ErrClosed is returned by saves after Close.
var ErrClosed = errors.New("postgres: closed")

// saveReq is one Save waiting for its group commit.
type saveReq struct {
	e    *encodedChange
	err  error
	w    *waiter
	done chan struct{}
}

const (
	// committers is how many group commits run at once.
	committers = 2
	// maxGroup caps the saves of one group commit.
	maxGroup = 128
	// groupTimeout bounds one group commit.
	groupTimeout = 30 * time.Second
)

func (db *DB) commitLoop() {
	defer db.committing.Done()
	batch := make([]*saveReq, 0, maxGroup)
	for {
		select {
		case r := <-db.saves:
			batch = append(batch[:0], r)
		drain:
			for len(batch) < maxGroup {
				select {
				case r := <-db.saves:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			db.commitGroup(batch)
			for _, r := range batch {
				close(r.done)
			}
		case <-db.closing:
			return
		}
	}
}

// commitGroup applies the saves in one transaction and sets each one's
// outcome. If the transaction fails for a reason that is not one save's
// refusal, each save is run again alone, so that the failure stays with
// the save that caused it.
func (db *DB) commitGroup(batch []*saveReq) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	for _, r := range batch {
		r.err, r.w = nil, nil
	}
	es := make([]*encodedChange, len(batch))
	for i, r := range batch {
		es[i] = r.e
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		seqs, refusals, err := applyAll(ctx, tx, es, db.origin)
		if err != nil {
			return err
		}
		for i, r := range batch {
			r.err = refusals[i]
			if seqs[i] != 0 {
				r.w = db.expect(seqs[i], r.e)
			}
		}
		return nil
	})
	if err == nil {
		return
	}
	for _, r := range batch {
		db.unexpect(r.w)
		r.w = nil
	}
	if len(batch) == 1 {
		batch[0].err = err
		return
	}
	for _, r := range batch {
		db.commitGroup([]*saveReq{r})
	}
}

// SaveBatch saves each change as Save does, in order and independently,
// in one database transaction: a change refused by its checks is left out
// and the others committed. A failure of the database fails them all.
func (db *DB) SaveBatch(ctx context.Context, cs []*session.Change) []error {
	errs := make([]error, len(cs))
	if len(cs) == 0 {
		return errs
	}
	es := make([]*encodedChange, len(cs))
	gens := make([]uint64, len(cs))
	for i, c := range cs {
		if es[i], errs[i] = encodeChange(c); errs[i] != nil {
			return fill(errs, errs[i])
		}
		if c.Session != nil {
			gens[i] = db.cache.ticket(c.Session.ID)
		}
	}
	var ws []*waiter
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		ws = ws[:0]
		seqs, refusals, err := applyAll(ctx, tx, es, db.origin)
		if err != nil {
			return err
		}
		for i, e := range es {
			errs[i] = refusals[i]
			if seqs[i] != 0 {
				ws = append(ws, db.expect(seqs[i], e))
			}
		}
		return nil
	})
	if err != nil {
		for _, w := range ws {
			db.unexpect(w)
		}
		return fill(errs, err)
	}
	for i, c := range cs {
		if errs[i] != nil {
			db.refused(c, errs[i])
		} else if c.Session != nil {
			db.cache.fill(es[i].session, c.Session, gens[i])
		}
	}
	for _, w := range ws {
		db.awaitPublished(ctx, w)
	}
	return errs
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// SaveAll saves many session changes in one transaction, all or none, for
// bulk loads; they are not published, and every replica's cache forgets
// the sessions.
func (db *DB) SaveAll(ctx context.Context, cs []*session.Change) error {
	es := make([]*encodedChange, len(cs))
	ids := make([]string, len(cs))
	for i, c := range cs {
		if c.Session == nil {
			return fmt.Errorf("postgres: SaveAll takes session changes only")
		}
		var err error
		if es[i], err = encodeChange(c); err != nil {
			return err
		}
		ids[i] = c.Session.ID
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, e := range es {
			if _, err := e.apply(ctx, tx, ""); err != nil {
				return fmt.Errorf("postgres: save %s: %w", e.c.Session.ID, err)
			}
		}
		return notifyForgotten(ctx, tx, ids)
	})
	db.cache.forget(ids...)
	return err
}

// notifyForgotten tells every DB's session cache, when tx commits, that
// the sessions with the ids were deleted or written outside the change
// feed: they are read from the database again.
func notifyForgotten(ctx context.Context, tx pgx.Tx, ids []string) error {
	var notes []string
	note := "f"
	for _, id := range ids {
		if len(note)+1+len(id) > maxPayload {
			notes = append(notes, note)
			note = "f"
		}
		note += " " + id
	}
	if note != "f" {
		notes = append(notes, note)
	}
	if len(notes) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, n) FROM unnest($2::text[]) AS n", sessionChannel, notes); err != nil {
		return fmt.Errorf("postgres: notify sessions forgotten: %w", err)
	}
	return nil
}

// notifyForgetAll tells every DB's session cache, when tx commits, to
// forget every session.
func notifyForgetAll(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, 'f')", sessionChannel); err != nil {
		return fmt.Errorf("postgres: notify sessions forgotten: %w", err)
	}
	return nil
}

// encodedChange is a change with its values encoded.
type encodedChange struct {
	c          *session.Change
	session    []byte
	tx         []byte
	deliveries [][]byte
}

func encodeChange(c *session.Change) (*encodedChange, error) {
	e := &encodedChange{c: c, deliveries: make([][]byte, len(c.Deliveries))}
	var err error
	if c.Session != nil {
		if e.session, err = json.Marshal(c.Session); err != nil {
			return nil, fmt.Errorf("postgres: encode session %s: %w", c.Session.ID, err)
		}
	} else if c.Transaction == nil {
		return nil, fmt.Errorf("postgres: a change without a session needs a transaction")
	}
	if c.Transaction != nil {
		if e.tx, err = json.Marshal(c.Transaction); err != nil {
			return nil, fmt.Errorf("postgres: encode transaction %s: %w", c.Transaction.ID, err)
		}
	}
	for i, d := range c.Deliveries {
		if e.deliveries[i], err = json.Marshal(d); err != nil {
			return nil, fmt.Errorf("postgres: encode delivery %s: %w", d.WebhookID, err)
		}
	}
	return e, nil
}

// applyAll applies the changes in tx in order, each as applyAlone does,
// and returns each one's seq in the feed and its refusal by its checks;
// err is any other failure, after which tx is to be rolled back.
// Consecutive changes that are one statement each (applyOne) are sent
// together, in one round trip, instead of a round trip each: the
// statements run in order as they would one by one, and a refused one
// writes nothing. A run ends before a second change of one session, so
// that a refusal's check (missing or conflicting) sees only what the
// changes before it wrote.
func applyAll(ctx context.Context, tx pgx.Tx, es []*encodedChange, origin string) (seqs []int64, refusals []error, err error) {
	seqs = make([]int64, len(es))
	refusals = make([]error, len(es))
	outcome := func(i int, seq int64, err error) error {
		var se *session.Error
		switch {
		case errors.As(err, &se):
			refusals[i] = err
		case err != nil:
			return err
		default:
			seqs[i] = seq
		}
		return nil
	}
	for i := 0; i < len(es); {
		j := i
		ids := make(map[string]bool)
		for j < len(es) && es[j].oneStatement() && !ids[es[j].c.Session.ID] {
			ids[es[j].c.Session.ID] = true
			j++
		}
		if j-i < 2 {
			seq, err := es[i].applyAlone(ctx, tx, origin)
			if err := outcome(i, seq, err); err != nil {
				return nil, nil, err
			}
			i++
			continue
		}
		results, err := sendOnes(ctx, tx, es[i:j], origin)
		if err != nil {
			return nil, nil, err
		}
		for k, r := range results {
			seq, err := es[i+k].oneOutcome(ctx, tx, r)
			if err := outcome(i+k, seq, err); err != nil {
				return nil, nil, err
			}
		}
		i = j
	}
	return seqs, refusals, nil
}

// sendOnes runs the statements of changes that are one statement each in
// one batch, and returns what each answered.
func sendOnes(ctx context.Context, tx pgx.Tx, es []*encodedChange, origin string) ([]oneResult, error) {
	b := &pgx.Batch{}
	for _, e := range es {
		q, args := e.oneQuery(origin)
		b.Queue(q, args...)
	}
	res := tx.SendBatch(ctx, b)
	results := make([]oneResult, len(es))
	for k, e := range es {
		if err := res.QueryRow().Scan(&results[k].wrote, &results[k].logged, &results[k].txWrote); err != nil {
			res.Close()
			return nil, fmt.Errorf("postgres: save %s: %w", e.c.Session.ID, err)
		}
	}
	return results, res.Close()
}

// applyAlone applies the change so that, when its checks refuse it,
// nothing of it stays in tx: a change with two checks (a session's version
// and its transaction's state, or that its transaction is new) that is not
// one statement runs in a savepoint, since the second can fail after the
// first has written.
func (e *encodedChange) applyAlone(ctx context.Context, tx pgx.Tx, origin string) (int64, error) {
	if e.c.Session == nil || e.c.Transaction == nil || e.oneStatement() {
		return e.apply(ctx, tx, origin)
	}
	var seq int64
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		var err error
		seq, err = e.apply(ctx, sp, origin)
		return err
	})
	return seq, err
}

// apply writes the change in tx: the versioned session write first, whose
// refusal ends the change before anything is written, then the
// transaction (whose refusal leaves the session written: the caller rolls
// back), the deliveries, the timers and, unless origin is "" (bulk loads),
// the change feed's row and notification, in one round trip. It returns
// the change's seq in the feed (0 if not logged).
func (e *encodedChange) apply(ctx context.Context, tx pgx.Tx, origin string) (int64, error) {
	if e.oneStatement() {
		return e.applyOne(ctx, tx, origin)
	}
	if s := e.c.Session; s != nil {
		var expires any
		if !s.State.Final() {
			expires = s.Expires
		}
		if s.Version == 1 {
			var ref any
			if r := s.Params.MerchantReference; r != "" {
				ref = r
			}
			tag, err := tx.Exec(ctx, `INSERT INTO sessions (id, merchant_id, merchant_reference, version, expires, last_request, data)
				VALUES ($1, $2, $3, 1, $4, $5, $6) ON CONFLICT (id) DO NOTHING`, s.ID, s.MerchantID, ref, expires, ts(s.LastRequest), e.session)
			if err != nil {
				return 0, fmt.Errorf("postgres: insert session %s: %w", s.ID, err)
			}
			if tag.RowsAffected() == 0 {
				return 0, session.ErrVersionConflict
			}
		} else {
			// The save ends any claim on the session.
			tag, err := tx.Exec(ctx, `UPDATE sessions SET version = $3, expires = $4, last_request = $5, data = $6,
				claim_owner = NULL, claim_until = NULL
				WHERE id = $1 AND version = $2`, s.ID, s.Version-1, s.Version, expires, ts(s.LastRequest), e.session)
			if err != nil {
				return 0, fmt.Errorf("postgres: update session %s: %w", s.ID, err)
			}
			if tag.RowsAffected() == 0 {
				return 0, missingOrConflict(ctx, tx, "SELECT 1 FROM sessions WHERE id = $1", s.ID)
			}
		}
	}
	if err := e.applyAccounts(ctx, tx); err != nil {
		return 0, err
	}
	b := &pgx.Batch{}
	if t := e.c.Transaction; t != nil {
		if e.c.TxFrom != nil {
			b.Queue(`UPDATE transactions SET state = $3, data = $4 WHERE id = $1 AND state = $2`,
				t.ID, int(*e.c.TxFrom), int(t.State), e.tx)
		} else {
			b.Queue(`INSERT INTO transactions (id, session_id, state, merchant_id, merchant_reference, original_transaction_id, amount, data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
				t.ID, t.SessionID, int(t.State), t.MerchantID, nullable(t.MerchantReference), nullable(t.OriginalTransactionID), int64(t.Amount), e.tx)
		}
	}
	for i, d := range e.c.Deliveries {
		b.Queue(`INSERT INTO deliveries (webhook_id, session_id, host, next_attempt, created, data) VALUES ($1, $2, $3, $4, $5, $6)`,
			d.WebhookID, d.SessionID, d.Host(), nextAttempt(d), d.Created, e.deliveries[i])
	}
	for _, t := range e.c.Timers {
		if t.Due.IsZero() {
			b.Queue(`DELETE FROM timers WHERE key = $1`, t.Key)
		} else {
			b.Queue(`INSERT INTO timers (key, due) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET due = excluded.due`, t.Key, t.Due)
		}
	}
	if origin != "" {
		queueFeed(b, origin, e.feedData())
	}
	if b.Len() == 0 {
		return 0, nil
	}
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	if t := e.c.Transaction; t != nil {
		tag, err := res.Exec()
		if err != nil {
			return 0, fmt.Errorf("postgres: write transaction %s: %w", t.ID, err)
		}
		if tag.RowsAffected() == 0 {
			res.Close()
			return 0, missingOrConflict(ctx, tx, "SELECT 1 FROM transactions WHERE id = $1", t.ID)
		}
	}
	for _, d := range e.c.Deliveries {
		if _, err := res.Exec(); err != nil {
			return 0, fmt.Errorf("postgres: insert delivery %s: %w", d.WebhookID, err)
		}
	}
	for _, t := range e.c.Timers {
		if _, err := res.Exec(); err != nil {
			return 0, fmt.Errorf("postgres: write timer %s: %w", t.Key, err)
		}
	}
	var seq int64
	if origin != "" {
		if err := res.QueryRow().Scan(&seq); err != nil {
			return 0, fmt.Errorf("postgres: log change: %w", err)
		}
	}
	return seq, res.Close()
}

// missingOrConflict tells why a conditional write changed nothing:
// session.ErrNotFound if the row is not there, else ErrVersionConflict.
func missingOrConflict(ctx context.Context, tx pgx.Tx, query, id string) error {
	var one int
	err := tx.QueryRow(ctx, query, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: read %s: %w", id, err)
	}
	return session.ErrVersionConflict
}

// nextAttempt is the due column of a delivery: its next attempt while it
// is pending, NULL after.
func nextAttempt(d *session.Delivery) any {
	if d.Status != session.DeliveryPending {
		return nil
	}
	return d.NextAttempt
}

// Touch records the end user's latest request on the session, leaving its
// version as it is, unless a later request is stored already. It is held
// in memory (and seen by this DB's reads) and written with the others
// held, once a second (see writeTouches); session.ErrNotFound if the
// session is not stored.
func (db *DB) Touch(ctx context.Context, id string, at time.Time, c session.Client) error {
	if !db.cache.has(id) { // just read, mostly
		var one int
		err := db.pool.QueryRow(ctx, "SELECT 1 FROM sessions WHERE id = $1", id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return session.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("postgres: touch session %s: %w", id, err)
		}
	}
	db.held.Add(id, session.Touch{At: at, Client: c})
	return nil
}

// writeTouches writes the touches held in one statement, on connections
// that commit without waiting for the write-ahead log to reach the disk
// (synchronous_commit off): a crash of the database loses at most its
// last fraction of a second of them, and nothing else. Each is stored
// only if it is later than the request stored, and notified with the
// version it was stored at, for every DB's cache. Its rows are locked in
// id order, and it gives up waiting for a lock after a tenth of a second
// (the touches are written with the next batch): a save never waits
// long on touches, nor fails by a deadlock with them.
func (db *DB) writeTouches(held map[string]session.Touch) error {
	type stored struct {
		at    time.Time // as a read of the session decodes it
		c     session.Client
		noted bool
	}
	ids := make([]string, 0, len(held))
	ats := make([]time.Time, 0, len(held))
	patches := make([]string, 0, len(held))
	notes := make([]string, 0, len(held))
	kept := make(map[string]stored, len(held))
	for id, t := range held {
		patch, err := json.Marshal(struct {
			LastRequest time.Time `json:"last_request"`
			IP          string    `json:"ip"`
			UserAgent   string    `json:"user_agent"`
		}{t.At, t.Client.IP, t.Client.UserAgent})
		if err != nil {
			return fmt.Errorf("postgres: encode touch: %w", err)
		}
		at, err := time.Parse(time.RFC3339Nano, t.At.Format(time.RFC3339Nano))
		if err != nil {
			return fmt.Errorf("postgres: encode touch: %w", err)
		}
		tn := touchNote{ID: id}
		if len(id)+len(t.Client.IP)+len(t.Client.UserAgent) <= maxTouchNote {
			tn.At, tn.IP, tn.UserAgent = &at, t.Client.IP, t.Client.UserAgent
		}
		note, err := json.Marshal(tn)
		if err != nil {
			return fmt.Errorf("postgres: encode touch: %w", err)
		}
		ids, ats, patches, notes = append(ids, id), append(ats, t.At), append(patches, string(patch)), append(notes, string(note))
		kept[id] = stored{at: at, c: t.Client, noted: tn.At != nil}
	}
	ctx := context.Background()
	var versions map[string]int
	err := pgx.BeginFunc(ctx, db.touches, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `WITH t AS (
				SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[]) AS t(id, at, patch, note)),
			l AS (SELECT id FROM sessions WHERE id IN (SELECT id FROM t) ORDER BY id FOR UPDATE),
			u AS (UPDATE sessions s SET last_request = t.at, data = (s.data::jsonb || t.patch::jsonb)::json
				FROM t WHERE s.id = t.id AND s.id IN (SELECT id FROM l) AND (s.last_request IS NULL OR s.last_request < t.at)
				RETURNING s.id, s.version, t.note)
			SELECT id, version, 't ' || version || ' ' || note FROM u`, ids, ats, patches, notes)
		if err != nil {
			return err
		}
		versions = make(map[string]int)
		var payloads []string
		for rows.Next() {
			var id, payload string
			var version int
			if err := rows.Scan(&id, &version, &payload); err != nil {
				return err
			}
			versions[id] = version
			payloads = append(payloads, payload)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(payloads) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", sessionChannel, payloads)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: write touches: %w", err)
	}
	for id, version := range versions {
		if k := kept[id]; k.noted {
			db.cache.touch(id, version, k.at, k.c.IP, k.c.UserAgent)
		} else {
			db.cache.forget(id)
		}
	}
	return nil
}

// FlushTouches writes the touches held now, as the writer does every
// second.
func (db *DB) FlushTouches() error { return db.held.Flush() }

// maxTouchNote bounds the id, ip and user agent a touch's notification
// carries (JSON may escape them to six times their size); a larger touch
// is notified without them, and the session read from the database again.
const maxTouchNote = 1000

// Transaction returns the transaction with the id; session.ErrNotFound.
func (db *DB) Transaction(ctx context.Context, id string) (*session.Transaction, error) {
	t := new(session.Transaction)
	if err := db.getJSON(ctx, t, "SELECT data FROM transactions WHERE id = $1", id); err != nil {
		return nil, err
	}
	return t, nil
}

// getJSON decodes the one JSON column the query selects into v;
// session.ErrNotFound if it selects no row.
func (db *DB) getJSON(ctx context.Context, v any, query string, args ...any) error {
	var raw []byte
	err := db.pool.QueryRow(ctx, query, args...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return session.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", query, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("postgres: decode (%s): %w", query, err)
	}
	return nil
}
