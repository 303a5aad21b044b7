package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
)

// The database's audit chain (package audit): every change the store
// makes is appended to audit_log in the transaction that makes it, by the
// actor of the change's context (audit.WithActor). A change whose record
// cannot be written is not made: its error wraps audit.ErrUnavailable.
//
// Appending takes the row lock of audit_head, the chain's end, and holds
// it until the transaction ends; it is the last thing a transaction does,
// so that no transaction waits for another while holding the head.

const lockAuditHead = `SELECT seq, hash FROM audit_head FOR UPDATE`

const insertAudit = `WITH ins AS (
		INSERT INTO audit_log(seq, at, actor, source, action, object, outcome, details, prev_hash, hash)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
			$7::text[], $8::text[], $9::bytea[], $10::bytea[]))
	UPDATE audit_head SET seq = $11, hash = $12`

// auditRows are records as the columns of insertAudit.
type auditRows struct {
	seqs                                               []int64
	times                                              []time.Time
	actors, sources, actions, objects, outcomes, detls []string
	prevs, hashes                                      [][]byte
}

func newAuditRows(records []audit.Record) *auditRows {
	n := len(records)
	a := &auditRows{seqs: make([]int64, n), times: make([]time.Time, n), actors: make([]string, n),
		sources: make([]string, n), actions: make([]string, n), objects: make([]string, n),
		outcomes: make([]string, n), detls: make([]string, n), prevs: make([][]byte, n), hashes: make([][]byte, n)}
	for i := range records {
		r := &records[i]
		a.seqs[i], a.times[i], a.actors[i], a.sources[i] = r.Seq, r.Time, r.Actor, r.Source
		a.actions[i], a.objects[i], a.outcomes[i], a.detls[i] = r.Action, r.Object, r.Outcome, r.Details
		a.prevs[i], a.hashes[i] = r.PrevHash[:], r.Hash[:]
	}
	return a
}

func (a *auditRows) args(head audit.Head) []any {
	return []any{a.seqs, a.times, a.actors, a.sources, a.actions, a.objects, a.outcomes, a.detls, a.prevs, a.hashes, head.Seq, head.Hash[:]}
}

// scanHead reads audit_head's row.
func scanHead(row pgx.Row) (audit.Head, error) {
	var h audit.Head
	var b []byte
	if err := row.Scan(&h.Seq, &b); err != nil {
		return h, err
	}
	if len(b) != len(h.Hash) {
		return h, fmt.Errorf("audit_head holds a hash of %d bytes", len(b))
	}
	copy(h.Hash[:], b)
	return h, nil
}

// appendAudit appends events to the chain inside tx: it locks the head,
// links the records and inserts them. Its errors wrap audit.ErrUnavailable.
func appendAudit(ctx context.Context, tx pgx.Tx, events []audit.Event) error {
	if len(events) == 0 {
		return nil
	}
	head, err := scanHead(tx.QueryRow(ctx, lockAuditHead))
	if err != nil {
		return audit.Unavailable(fmt.Errorf("lock the audit chain's head: %w", err))
	}
	records, head, err := audit.Link(head, events, time.Now())
	if err != nil {
		return audit.Unavailable(err)
	}
	if _, err := tx.Exec(ctx, insertAudit, newAuditRows(records).args(head)...); err != nil {
		return audit.Unavailable(fmt.Errorf("insert audit records: %w", err))
	}
	audit.Appended.WithLabelValues(audit.ChainDB).Add(float64(len(records)))
	return nil
}

// audited runs change in a transaction and appends the events it returns
// (none when its context is audit.Unaudited) before committing. When
// change fails, nothing is changed and nothing recorded: refusals are
// recorded by the caller, in its journal.
func (s *Store) audited(ctx context.Context, change func(tx pgx.Tx) ([]audit.Event, error)) error {
	recorded := true
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		events, err := change(tx)
		if err != nil {
			return err
		}
		if audit.IsUnaudited(ctx) {
			return nil
		}
		err = appendAudit(ctx, tx, events)
		recorded = err == nil
		return err
	})
	if !recorded {
		audit.Failed(audit.ChainDB, 1)
	}
	return err
}

// RecordChange appends events made outside the store's own changes (a
// backup, a restore, an HSM operation) to the database chain, in a
// transaction of their own.
func (s *Store) RecordChange(ctx context.Context, events ...audit.Event) error {
	return s.audited(ctx, func(pgx.Tx) ([]audit.Event, error) { return events, nil })
}

// RecordChangeOn appends events to the chain of the database conn is
// connected to, as RecordChange does (a restore records itself in the
// database it restored, before that database is put in place).
func RecordChangeOn(ctx context.Context, conn *pgx.Conn, events ...audit.Event) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return appendAudit(ctx, tx, events) })
}

// AuditHead returns the database chain's head and whether its last record
// is a checkpoint.
func (s *Store) AuditHead(ctx context.Context) (audit.Head, bool, error) {
	var h audit.Head
	var b []byte
	var action *string
	err := s.pool.QueryRow(ctx, `SELECT h.seq, h.hash, (SELECT action FROM audit_log WHERE seq = h.seq) FROM audit_head h`).Scan(&h.Seq, &b, &action)
	if err != nil {
		return h, false, err
	}
	if len(b) != len(h.Hash) {
		return h, false, fmt.Errorf("audit_head holds a hash of %d bytes", len(b))
	}
	copy(h.Hash[:], b)
	return h, action != nil && *action == audit.ActionCheckpoint, nil
}

// auditPage is how many records AuditRecords reads a query.
const auditPage = 5000

// AuditRecords calls fn with the database chain's records from sequence
// number from on, in order, reading a page at a time (records appended
// meanwhile are included).
func (s *Store) AuditRecords(ctx context.Context, from int64, fn func(audit.Record) error) error {
	return ReadAuditRecords(ctx, s.pool, from, fn)
}

// Querier runs queries: a pool or a connection.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// VerifyAudit reads the database chain through q into v, which reports the
// first record where the chain does not hold, and then checks the chain
// against its head row and, when anchor is set, that a checkpoint of the
// chain signs the head the anchor file recorded (see audit.AnchorFile).
// A chain that does not hold is an error wrapping *audit.Break.
func VerifyAudit(ctx context.Context, q Querier, v *audit.Verifier, anchor *audit.Anchor) (audit.Summary, error) {
	head, err := scanHead(q.QueryRow(ctx, `SELECT seq, hash FROM audit_head`))
	if err != nil {
		return audit.Summary{}, fmt.Errorf("the audit chain's head: %w", err)
	}
	if err := ReadAuditRecords(ctx, q, 1, v.Add); err != nil {
		return v.Summary(), err
	}
	s := v.Summary()
	switch {
	case head.Seq > s.Last.Seq:
		return s, &audit.Break{Seq: s.Last.Seq + 1, Reason: fmt.Sprintf("the chain's head (audit_head) is record %d, but the chain ends at record %d: records were removed from its end", head.Seq, s.Last.Seq)}
	case head.Seq < s.Last.Seq:
		return s, &audit.Break{Seq: head.Seq + 1, Reason: fmt.Sprintf("the chain's head (audit_head) is record %d, but records up to %d follow it: they were not appended by a server or tool", head.Seq, s.Last.Seq)}
	case head.Seq > 0 && head.Hash != s.Last.Hash:
		return s, &audit.Break{Seq: head.Seq, Reason: fmt.Sprintf("the chain's head (audit_head) holds hash %s, but the record's hash is %s", head.Hash, s.Last.Hash)}
	}
	if anchor == nil {
		return s, nil
	}
	h, err := anchor.Head()
	if err != nil {
		return s, err
	}
	switch {
	case h.Seq > s.Last.Seq:
		return s, &audit.Break{Seq: s.Last.Seq + 1, Reason: fmt.Sprintf("the anchor file says record %d was signed at %s, but the chain ends at record %d: it was cut short", h.Seq, anchor.Time, s.Last.Seq)}
	case !s.HasCheckpoint(h):
		return s, &audit.Break{Seq: h.Seq, Reason: fmt.Sprintf("the anchor file says record %d (hash %s) was signed at %s, and no checkpoint of the chain signs it: the chain was rewritten or that checkpoint removed", h.Seq, h.Hash, anchor.Time)}
	}
	return s, nil
}

// ReadAuditRecords is AuditRecords on any connection.
func ReadAuditRecords(ctx context.Context, q Querier, from int64, fn func(audit.Record) error) error {
	next := from
	for {
		rows, err := q.Query(ctx, `SELECT seq, at, actor, source, action, object, outcome, details, prev_hash, hash
			FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2`, next, auditPage)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var r audit.Record
			var prev, hash []byte
			if err := rows.Scan(&r.Seq, &r.Time, &r.Actor, &r.Source, &r.Action, &r.Object, &r.Outcome, &r.Details, &prev, &hash); err != nil {
				rows.Close()
				return err
			}
			r.Time = r.Time.UTC()
			copy(r.PrevHash[:], prev) // a wrong length shows as a hash mismatch
			copy(r.Hash[:], hash)
			if len(prev) != len(r.PrevHash) || len(hash) != len(r.Hash) {
				r.Hash[0] ^= 0xff
			}
			n++
			next = r.Seq + 1
			if err := fn(r); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if n < auditPage {
			return nil
		}
	}
}

// AuditChain is the database chain as a checkpointer signs it.
type AuditChain struct{ *Store }

// Head implements audit.Signable.
func (c AuditChain) Head(ctx context.Context) (audit.Head, bool, error) { return c.AuditHead(ctx) }

// Append implements audit.Signable.
func (c AuditChain) Append(ctx context.Context, e audit.Event) error { return c.RecordChange(ctx, e) }

// ReadAuditHead reads the database chain's head through q.
func ReadAuditHead(ctx context.Context, q Querier) (audit.Head, error) {
	return scanHead(q.QueryRow(ctx, `SELECT seq, hash FROM audit_head`))
}

// AuditLog reads a database's audit chain over a connection of its own: for
// the tools that verify and export it, on an active's database or a
// passive's standby.
type AuditLog struct{ conn *pgx.Conn }

// OpenAuditLog connects to the database named by dsn.
func OpenAuditLog(ctx context.Context, dsn string) (*AuditLog, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &AuditLog{conn: conn}, nil
}

// Close closes the connection.
func (l *AuditLog) Close(ctx context.Context) { l.conn.Close(ctx) }

// Exists reports whether the database has an audit chain (its schema is
// recent enough to hold one).
func (l *AuditLog) Exists(ctx context.Context) (bool, error) {
	var ok bool
	err := l.conn.QueryRow(ctx, `SELECT to_regclass('audit_log') IS NOT NULL`).Scan(&ok)
	return ok, err
}

// Verify is VerifyAudit over the connection.
func (l *AuditLog) Verify(ctx context.Context, v *audit.Verifier, anchor *audit.Anchor) (audit.Summary, error) {
	return VerifyAudit(ctx, l.conn, v, anchor)
}

// Records is ReadAuditRecords over the connection.
func (l *AuditLog) Records(ctx context.Context, from int64, fn func(audit.Record) error) error {
	return ReadAuditRecords(ctx, l.conn, from, fn)
}
