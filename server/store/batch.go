package store

import (
	"context"
	"fmt"
	"time"

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
}

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
	err         error
	done        chan struct{}
}

// NewBatcher starts workers reading and workers writing until ctx ends.
func NewBatcher(ctx context.Context, s *Store, workers, maxBatch int) *Batcher {
	b := &Batcher{Store: s, gets: make(chan *getReq), puts: make(chan *putReq), max: maxBatch, Timeout: 10 * time.Second}
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

// submit hands a request to the workers and waits for its answer.
func submit[T any](ctx context.Context, in chan T, r T, done chan struct{}) error {
	select {
	case in <- r:
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
	if err := submit(ctx, b.gets, r, r.done); err != nil {
		return keyring.Sealed{}, err
	}
	return r.sealed, r.err
}

// PutDeposit writes through the batch workers.
func (b *Batcher) PutDeposit(ctx context.Context, owner, name string, d keyring.Sealed, size int) error {
	r := &putReq{submitted: time.Now(), owner: owner, name: name, sealed: d, size: size, done: make(chan struct{})}
	if err := submit(ctx, b.puts, r, r.done); err != nil {
		return err
	}
	return r.err
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
	// spent queued behind a stuck batch is not granted again.
	ctx, cancel := context.WithDeadline(ctx, batch[0].since().Add(timeout))
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
	serveBatch(ctx, b.puts, b.max, b.Timeout, func(ctx context.Context, r *putReq) {
		r.err = b.Store.PutDeposit(ctx, r.owner, r.name, r.sealed, r.size)
	}, b.putMany)
}

func (b *Batcher) putMany(ctx context.Context, batch []*putReq) {
	n := len(batch)
	owners, names, keks := make([]string, n), make([]string, n), make([]string, n)
	wrapped, sealed, sizes := make([][]byte, n), make([][]byte, n), make([]int32, n)
	for i, r := range batch {
		owners[i], names[i], keks[i] = r.owner, r.name, r.sealed.KeyID
		wrapped[i], sealed[i], sizes[i] = r.sealed.WrappedKey, r.sealed.Ciphertext, int32(r.size)
	}
	rows, err := b.pool.Query(ctx, `INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
		SELECT k.owner, k.name, k.kek, k.wrapped, k.sealed, k.size
		FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bytea[], $6::int[])
			AS k(owner, name, kek, wrapped, sealed, size)
		JOIN clients c ON c.fingerprint = k.owner AND c.state = 'active'
		ON CONFLICT (owner, name) DO NOTHING
		RETURNING owner, name`, owners, names, keks, wrapped, sealed, sizes)
	if err != nil {
		failAll(batch, err)
		return
	}
	inserted := map[[2]string]bool{}
	for rows.Next() {
		var k [2]string
		if err := rows.Scan(&k[0], &k[1]); err != nil {
			rows.Close()
			failAll(batch, err)
			return
		}
		inserted[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		failAll(batch, err)
		return
	}
	for _, r := range batch {
		k := [2]string{r.owner, r.name}
		if inserted[k] {
			delete(inserted, k) // a duplicate in the same batch was not inserted
			continue
		}
		r.err = b.whyNotInserted(ctx, r.owner, r.name)
	}
}

// whyNotInserted explains a row the batch insert skipped: the client is
// not active, or the deposit exists.
func (b *Batcher) whyNotInserted(ctx context.Context, owner, name string) error {
	var state *string
	err := b.pool.QueryRow(ctx, `SELECT (SELECT state FROM clients WHERE fingerprint = $1)`, owner).Scan(&state)
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
