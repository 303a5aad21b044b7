package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/keyring"
)

// Batcher coalesces concurrent deposit reads and writes into shared
// statements: each of its workers takes the requests waiting when it becomes
// free (up to maxBatch) and serves them with one round trip — and, for
// writes, one commit. Under light load a batch is a single request and adds
// no waiting; under load, round trips and commits per request fall with the
// queue length. A write is answered only after its batch has committed.
type Batcher struct {
	*Store
	gets chan *getReq
	puts chan *putReq
	max  int
	// Timeout bounds each batch's statement and commit. A write whose commit
	// is still waiting for the synchronous standby then fails instead of
	// holding up every write behind it (its outcome is unknown to the caller).
	Timeout time.Duration

	headMu sync.Mutex
	head   *audit.Head // the audit chain's head after the last batch this Batcher wrote

	stopped <-chan struct{} // closed when the workers stop taking requests
}

// ErrStopping is the answer to a request that came after the server began
// to stop: nothing was done.
var ErrStopping = errors.New("the server is stopping")

type getReq struct {
	submitted   time.Time
	owner, name string
	sealed      keyring.Sealed
	err         error
	done        chan struct{}
}

type putReq struct {
	submitted   time.Time
	owner, name string
	sealed      keyring.Sealed
	size        int
	actor       audit.Actor // who puts: recorded with the deposit
	unaudited   bool        // audit.Unaudited: record nothing
	created     time.Time   // the deposit's creation time, as stored
	err         error
	done        chan struct{}
}

// context gives a request's actor (and audit setting) to ctx.
func (r *putReq) context(ctx context.Context) context.Context {
	ctx = audit.WithActor(ctx, r.actor)
	if r.unaudited {
		ctx = audit.Unaudited(ctx)
	}
	return ctx
}

// NewBatcher starts workers reading and workers writing until ctx ends.
func NewBatcher(ctx context.Context, s *Store, workers, maxBatch int) *Batcher {
	b := &Batcher{Store: s, gets: make(chan *getReq), puts: make(chan *putReq), max: maxBatch, Timeout: 10 * time.Second, stopped: ctx.Done()}
	for range workers {
		go b.loop(ctx, b.getBatch)
		go b.loop(ctx, b.putBatch)
	}
	return b
}

func (b *Batcher) loop(ctx context.Context, run func(context.Context)) {
	for ctx.Err() == nil {
		run(ctx)
	}
}

// collect waits for one request, then takes those already waiting.
func collect[T any](ctx context.Context, in chan T, max int) []T {
	var first T
	select {
	case first = <-in:
	case <-ctx.Done():
		return nil
	}
	batch := []T{first}
	for len(batch) < max {
		select {
		case r := <-in:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// submit hands a request to the workers and waits for its answer; once
// they stop taking requests it answers ErrStopping.
func submit[T any](ctx context.Context, stopped <-chan struct{}, in chan T, r T, done chan struct{}) error {
	select {
	case in <- r:
	case <-stopped:
		return ErrStopping
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// GetDeposit reads through the batch workers.
func (b *Batcher) GetDeposit(ctx context.Context, owner, name string) (keyring.Sealed, error) {
	r := &getReq{submitted: time.Now(), owner: owner, name: name, done: make(chan struct{})}
	if err := submit(ctx, b.stopped, b.gets, r, r.done); err != nil {
		return keyring.Sealed{}, err
	}
	return r.sealed, r.err
}

// PutDeposit writes through the batch workers and returns the deposit's
// creation time as stored.
func (b *Batcher) PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) (time.Time, error) {
	r := &putReq{submitted: time.Now(), owner: owner, name: name, sealed: d, size: size,
		actor: audit.ActorFrom(ctx), unaudited: audit.IsUnaudited(ctx), done: make(chan struct{})}
	if err := submit(ctx, b.stopped, b.puts, r, r.done); err != nil {
		return time.Time{}, err
	}
	return r.created, r.err
}

// request is what both kinds of batched request offer.
type request interface {
	fail(error)
	finish()
	since() time.Time
}

// serveBatch takes the next batch from in, answers a lone request with
// single (the plain statement) and a larger batch with many, then releases
// every waiter.
func serveBatch[T request](ctx context.Context, in chan T, max int, timeout time.Duration, single func(context.Context, T), many func(context.Context, []T)) {
	batch := collect(ctx, in, max)
	if len(batch) == 0 {
		return
	}
	// The timeout counts from the oldest request's submission, so time
	// spent queued behind a stuck batch is not granted again. A batch once
	// taken runs to its end also when the server is stopping: a commit
	// cancelled half-way (PostgreSQL keeps what it committed locally) would
	// leave its writers an outcome they cannot know.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), batch[0].since().Add(timeout))
	defer cancel()
	defer func() {
		for _, r := range batch {
			r.finish()
		}
	}()
	if len(batch) == 1 {
		single(ctx, batch[0])
	} else {
		many(ctx, batch)
	}
}

func (b *Batcher) getBatch(ctx context.Context) {
	serveBatch(ctx, b.gets, b.max, b.Timeout, func(ctx context.Context, r *getReq) {
		r.sealed, r.err = b.Store.GetDeposit(ctx, r.owner, r.name)
	}, b.getMany)
}

func (b *Batcher) getMany(ctx context.Context, batch []*getReq) {
	if _, err := readAgain(ctx, func() (struct{}, error) { return struct{}{}, b.readMany(ctx, batch) }); err != nil {
		failAll(batch, err)
	}
}

// readMany reads a batch of deposits with one query; the error is that of
// the query as a whole, per-request results are in each request.
func (b *Batcher) readMany(ctx context.Context, batch []*getReq) error {
	owners, names := make([]string, len(batch)), make([]string, len(batch))
	for i, r := range batch {
		owners[i], names[i] = r.owner, r.name
	}
	rows, err := b.pool.Query(ctx, `SELECT k.i, c.state, d.kek_id, d.wrapped_key, d.ciphertext
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(owner, name, i)
		LEFT JOIN clients c ON c.fingerprint = k.owner
		LEFT JOIN deposits d ON d.owner = k.owner AND d.name = k.name`, owners, names)
	if err != nil {
		return err
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var i int
		var state, kekID *string
		var d keyring.Sealed
		if err := rows.Scan(&i, &state, &kekID, &d.WrappedKey, &d.Ciphertext); err != nil {
			return err
		}
		r := batch[i-1]
		seen++
		if r.err = clientState(r.owner, state); r.err != nil {
			continue
		}
		if kekID == nil {
			r.err = fmt.Errorf("deposit %q: %w", r.name, ErrNotFound)
			continue
		}
		d.KeyID = *kekID
		r.sealed = d
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if seen != len(batch) {
		return fmt.Errorf("batched read returned %d of %d rows", seen, len(batch))
	}
	return nil
}

func (b *Batcher) putBatch(ctx context.Context) {
	// A lone put takes the same path as a batch: one statement when the
	// Batcher knows the audit chain's head.
	serveBatch(ctx, b.puts, b.max, b.Timeout, func(ctx context.Context, r *putReq) {
		b.putMany(ctx, []*putReq{r})
	}, b.putMany)
}

const insertDeposits = `INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
		SELECT k.owner, k.name, k.kek, k.wrapped, k.sealed, k.size
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::int[])
			AS k(owner, name, kek, wrapped, sealed, size)
		JOIN clients c ON c.fingerprint = k.owner AND c.state = 'active'
		ON CONFLICT (owner, name) DO NOTHING
		RETURNING owner, name, created_at`

// putMany inserts a batch of deposits with one statement and, in the same
// transaction, the audit records of those it inserted. When the Batcher
// knows the chain's head (it wrote the last records), that is one
// statement too (putManyFast); otherwise, or when the head moved or a
// deposit was refused, two round trips: BEGIN, the insert and the lock of
// the head sent together, then the records and COMMIT. A batch that
// records nothing (audit.Unaudited) is the insert alone.
func (b *Batcher) putMany(ctx context.Context, batch []*putReq) {
	n := len(batch)
	owners, names, keks := make([]string, n), make([]string, n), make([]string, n)
	wrapped, sealed, sizes := make([][]byte, n), make([][]byte, n), make([]int32, n)
	audited := false
	for i, r := range batch {
		owners[i], names[i], keks[i] = r.owner, r.name, r.sealed.KeyID
		wrapped[i], sealed[i], sizes[i] = r.sealed.WrappedKey, r.sealed.Ciphertext, int32(r.size)
		audited = audited || !r.unaudited
	}
	args := []any{owners, names, keks, wrapped, sealed, sizes}
	if !audited {
		b.putManyUnaudited(ctx, batch, args)
		return
	}
	if head := b.knownHead(); head != nil {
		done, err := b.putManyFast(ctx, batch, args, *head)
		if err != nil {
			failAll(batch, err)
			if audit.IsUnavailable(err) {
				audit.Failed(audit.ChainDB, len(batch))
			}
		}
		if done || err != nil {
			return
		}
	}
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		failAll(batch, err)
		return
	}
	defer conn.Release()
	if err := b.putManyIn(ctx, conn.Conn(), batch, args); err != nil {
		failAll(batch, err)
		rollback(ctx, conn.Conn())
		if audit.IsUnavailable(err) {
			audit.Failed(audit.ChainDB, len(batch))
		}
	}
}

func (b *Batcher) knownHead() *audit.Head {
	b.headMu.Lock()
	defer b.headMu.Unlock()
	return b.head
}

// setHead remembers the chain's head after a batch this Batcher wrote; nil
// forgets it.
func (b *Batcher) setHead(h *audit.Head) {
	b.headMu.Lock()
	b.head = h
	b.headMu.Unlock()
}

// putManyFast writes a batch whose deposits all go in, with their records
// on the head the Batcher last wrote, in one statement. The statement first
// checks, in its snapshot, that every deposit can go in (its client is
// active, its name is new and not twice in the batch), then moves the head
// on only if that holds and the head is still the one the Batcher knows;
// the deposits and the records are inserted only when the head moved. When
// it did not, the statement changes nothing and reports done false for the
// two-round-trip path to take the batch; no error is provoked to say so.
// What every record of the batch shares (its time, action, outcome, object
// and previous hash) is derived in the statement instead of sent.
func (b *Batcher) putManyFast(ctx context.Context, batch []*putReq, args []any, head audit.Head) (done bool, err error) {
	events := make([]audit.Event, len(batch))
	for i, r := range batch {
		if r.unaudited {
			return false, nil // the records would not line up with the deposits
		}
		events[i] = depositCreated(r.context(ctx), r.owner, r.name, r.size)
	}
	now := time.Now()
	records, next, err := audit.Link(head, events, now)
	if err != nil {
		return false, audit.Unavailable(err)
	}
	n := len(records)
	actors, sources, details, hashes := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i := range records {
		r := &records[i]
		actors[i], sources[i], details[i], hashes[i] = r.Actor, r.Source, r.Details, r.Hash[:]
	}
	all := append(args, actors, sources, details, hashes, head.Seq, head.Hash[:], next.Seq, next.Hash[:],
		records[0].Time, audit.ActionDepositCreate, audit.OutcomeOK, n)
	var moved bool
	var owners, names []string
	var created []time.Time
	err = b.pool.QueryRow(ctx, putManyFastSQL, all...).Scan(&moved, &owners, &names, &created)
	var pe *pgconn.PgError
	switch {
	case err == nil && moved && len(created) == n:
		at := make(map[[2]string]time.Time, n)
		for i := range owners {
			at[[2]string{owners[i], names[i]}] = created[i]
		}
		for _, r := range batch {
			r.created = at[[2]string{r.owner, r.name}]
		}
		b.setHead(&next)
		audit.Appended.WithLabelValues(audit.ChainDB).Add(float64(n))
		return true, nil
	case err == nil && !moved:
		// The head moved or a deposit of the batch cannot go in: nothing
		// was written, and the two-round-trip path takes the batch, reads
		// the head again and tells the deposits' failures from the
		// records'.
		b.setHead(nil)
		return false, nil
	case err == nil:
		return false, fmt.Errorf("the batched insert stored %d of %d deposits", len(created), n)
	case errors.As(err, &pe):
		// The statement failed (say, a deposit of the same name committed
		// by a concurrent writer after the checks): nothing of it stays;
		// the other path takes the batch.
		b.setHead(nil)
		return false, nil
	}
	return false, err // the connection failed or the time is up: so would the other path
}

// putManyFastSQL is putManyFast's statement. Its checks look each deposit's
// client and name up by key (LATERAL ... LIMIT 1), so that a generic plan
// cannot turn them into scans of the clients or deposits tables. $1–$6 are the deposits (as
// insertDeposits takes them), $7–$10 the records' actors, sources, details
// and hashes, $11–$12 the head it expects, $13–$14 the head after it,
// $15–$17 the records' time, action and outcome, $18 the batch's size. It
// returns whether the head moved (and so everything was written) and the
// inserted deposits' owners, names and creation times.
const putManyFastSQL = `WITH k AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::int[])
			AS k(owner, name, kek, wrapped, sealed, size)),
	fits AS (SELECT
		(SELECT count(*) FROM k, LATERAL (SELECT 1 FROM clients c
			WHERE c.fingerprint = k.owner AND c.state = 'active' LIMIT 1) c) = $18
		AND (SELECT count(DISTINCT (k.owner, k.name)) FROM k) = $18
		AND NOT EXISTS (SELECT 1 FROM k, LATERAL (SELECT 1 FROM deposits d
			WHERE d.owner = k.owner AND d.name = k.name LIMIT 1) d) AS ok),
	head AS (UPDATE audit_head SET seq = $13, hash = $14
		WHERE seq = $11 AND hash = $12 AND (SELECT ok FROM fits) RETURNING 1),
	ins AS (INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
		SELECT k.owner, k.name, k.kek, k.wrapped, k.sealed, k.size FROM k
		WHERE EXISTS (SELECT 1 FROM head)
		RETURNING owner, name, created_at),
	recs AS (INSERT INTO audit_log(seq, at, actor, source, action, object, outcome, details, prev_hash, hash)
		SELECT $11 + r.i, $15, r.actor, r.source, $16, 'deposit:' || r.owner || '/' || r.name, $17, r.details,
			CASE WHEN r.i = 1 THEN $12 ELSE ($10::bytea[])[r.i - 1] END, r.hash
		FROM unnest($1::text[], $2::text[], $7::text[], $8::text[], $9::text[], $10::bytea[])
			WITH ORDINALITY AS r(owner, name, actor, source, details, hash, i)
		WHERE EXISTS (SELECT 1 FROM head))
	SELECT EXISTS (SELECT 1 FROM head), coalesce(array_agg(i.owner), '{}'), coalesce(array_agg(i.name), '{}'),
		coalesce(array_agg(i.created_at), '{}')
	FROM ins i`

func (b *Batcher) putManyIn(ctx context.Context, conn *pgx.Conn, batch []*putReq, args []any) error {
	q := &pgx.Batch{}
	q.Queue("BEGIN")
	q.Queue(insertDeposits, args...)
	q.Queue(lockAuditHead)
	br := conn.SendBatch(ctx, q)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return err
	}
	inserted, err := scanInserted(br)
	if err != nil {
		br.Close()
		return err
	}
	head, headErr := scanHead(br.QueryRow())
	if err := br.Close(); err != nil && headErr == nil {
		return err
	}
	if headErr != nil {
		return audit.Unavailable(fmt.Errorf("lock the audit chain's head: %w", headErr))
	}
	var events []audit.Event
	for _, r := range batch {
		k := [2]string{r.owner, r.name}
		created, ok := inserted[k]
		if !ok {
			r.err = b.whyNotInserted(ctx, conn, r.owner, r.name)
			continue
		}
		r.created = created
		delete(inserted, k) // a duplicate in the same batch was not inserted
		if !r.unaudited {
			events = append(events, depositCreated(r.context(ctx), r.owner, r.name, r.size))
		}
	}
	records, head, err := audit.Link(head, events, time.Now())
	if err != nil {
		return audit.Unavailable(err)
	}
	q = &pgx.Batch{}
	if len(records) > 0 {
		q.Queue(insertAudit, newAuditRows(records).args(head)...)
	}
	q.Queue("COMMIT")
	br = conn.SendBatch(ctx, q)
	if len(records) > 0 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return audit.Unavailable(fmt.Errorf("insert audit records: %w", err))
		}
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return err
	}
	if err := br.Close(); err != nil {
		return err
	}
	b.setHead(&head)
	audit.Appended.WithLabelValues(audit.ChainDB).Add(float64(len(records)))
	return nil
}

// rollback ends the transaction a failed batch left open on conn, or
// closes conn when that fails (the pool then drops it).
func rollback(ctx context.Context, conn *pgx.Conn) {
	if conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		conn.Close(ctx)
	}
}

// scanInserted reads what insertDeposits returns: the creation time of each
// deposit it inserted.
func scanInserted(rows interface {
	Query() (pgx.Rows, error)
}) (map[[2]string]time.Time, error) {
	r, err := rows.Query()
	if err != nil {
		return nil, err
	}
	return collectInserted(r)
}

func collectInserted(r pgx.Rows) (map[[2]string]time.Time, error) {
	defer r.Close()
	inserted := map[[2]string]time.Time{}
	for r.Next() {
		var k [2]string
		var created time.Time
		if err := r.Scan(&k[0], &k[1], &created); err != nil {
			return nil, err
		}
		inserted[k] = created
	}
	return inserted, r.Err()
}

// putManyUnaudited is the insert alone, in a transaction of its own.
func (b *Batcher) putManyUnaudited(ctx context.Context, batch []*putReq, args []any) {
	rows, err := b.pool.Query(ctx, insertDeposits, args...)
	if err != nil {
		failAll(batch, err)
		return
	}
	inserted, err := collectInserted(rows)
	if err != nil {
		failAll(batch, err)
		return
	}
	for _, r := range batch {
		k := [2]string{r.owner, r.name}
		if created, ok := inserted[k]; ok {
			r.created = created
			delete(inserted, k)
			continue
		}
		r.err = b.whyNotInserted(ctx, b.pool, r.owner, r.name)
	}
}

// whyNotInserted explains a row the batch insert skipped: the client is
// not active, or the deposit exists.
func (b *Batcher) whyNotInserted(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, owner, name string) error {
	var state *string
	err := q.QueryRow(ctx, `SELECT (SELECT state FROM clients WHERE fingerprint = $1)`, owner).Scan(&state)
	if err != nil {
		return err
	}
	if err := clientState(owner, state); err != nil {
		return err
	}
	return fmt.Errorf("deposit %q: %w", name, ErrExists)
}

func failAll[T request](batch []T, err error) {
	for _, r := range batch {
		r.fail(err)
	}
}

func (r *getReq) fail(err error)   { r.err = err }
func (r *putReq) fail(err error)   { r.err = err }
func (r *getReq) finish()          { close(r.done) }
func (r *putReq) finish()          { close(r.done) }
func (r *getReq) since() time.Time { return r.submitted }
func (r *putReq) since() time.Time { return r.submitted }
