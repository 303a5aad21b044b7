package hsmkeys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

// rewrapBatch is how many deposits one transaction re-wraps.
const rewrapBatch = 500

// progressEvery is how often a re-wrap reports its progress (besides once
// at its end).
var progressEvery = time.Second

// Progress is told how many deposits were re-wrapped so far and how many
// needed it. done never exceeds total.
type Progress func(done, total int64)

// Rewrap wraps every deposit's data key that is not wrapped with the key
// current anew with it, a batch of rows per transaction, while the servers
// keep serving: a row written, changed or deleted meanwhile is left to the
// next pass. An interrupted Rewrap loses nothing (each row holds either its
// old or its new wrapping, both of which open) and is resumed by running it
// again.
//
// progress is told at most once every second, and once at the end. The
// total is what needed re-wrapping at the start; when deposits written
// meanwhile with an older key make it more, it is counted again (so done
// never exceeds total), and at the end it is what was re-wrapped.
func Rewrap(ctx context.Context, db *store.Store, kr *keyring.Set, current string, progress Progress) (int64, error) {
	c := counter{db: db, current: current}
	return c.rewrap(ctx, kr, progress)
}

// counter counts the deposits a re-wrap has done and the total it has to
// do, across passes.
type counter struct {
	db          *store.Store
	current     string
	done, total int64
}

// count recounts the total: what is done plus what is still left.
func (c *counter) count(ctx context.Context) error {
	left, err := c.db.CountNotCurrent(ctx, c.current)
	c.total = c.done + left
	return err
}

// rewrap runs one pass, adding to the counts.
func (c *counter) rewrap(ctx context.Context, kr *keyring.Set, progress Progress) (int64, error) {
	if err := kr.SetCurrent(c.current); err != nil {
		return 0, err
	}
	if err := c.count(ctx); err != nil {
		return 0, err
	}
	start := c.done
	last := time.Now()
	for {
		n, err := c.db.RewrapBatch(ctx, c.current, rewrapBatch, func(owner, name, kekID string, wrapped []byte) ([]byte, error) {
			id, w, err := kr.Rewrap(ctx, kekID, wrapped, deposit.AAD(owner, name))
			if err == nil && id != c.current {
				err = errors.New("re-wrapped with another key than the current one")
			}
			return w, err
		})
		if errors.Is(err, store.ErrNothingToRewrap) {
			c.total = c.done
			progress(c.done, c.total)
			return c.done - start, nil
		}
		if err != nil {
			return c.done - start, err
		}
		c.done += int64(n)
		if c.done > c.total {
			// Deposits wrapped with an older key were written meanwhile.
			if err := c.count(ctx); err != nil {
				return c.done - start, err
			}
		}
		if time.Since(last) >= progressEvery {
			progress(c.done, c.total)
			last = time.Now()
		}
	}
}

// Migrate re-wraps the deposits still wrapped by the file keyring with the
// HSM key current in db (resumable), telling out its progress.
func Migrate(ctx context.Context, db *store.Store, kr *keyring.Set, out io.Writer) error {
	cur, err := db.CurrentKEK(ctx)
	if err != nil {
		return err
	}
	if _, ok := Label(cur); !ok {
		return errors.New("no HSM key wraps new deposits yet; run `kts keyhsm init` first")
	}
	n, err := Rewrap(ctx, db, kr, cur, ProgressTo(out))
	if err != nil {
		return fmt.Errorf("after re-wrapping %d deposits: %w (run migrate again to go on)", n, err)
	}
	fmt.Fprintf(out, "every deposit is wrapped by %s; the file keyring stays (sealed) for older backups\n", cur)
	return nil
}
