package hsmkeys

import (
	"context"
	"errors"
	"time"

	"trustee.dev/trustee/server/deposit"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

// rewrapBatch is how many deposits one transaction re-wraps.
const rewrapBatch = 500

// Rewrap wraps every deposit's data key that is not wrapped with the key
// current anew with it, a batch of rows per transaction, while the servers
// keep serving: a row written, changed or deleted meanwhile is left to the
// next pass. progress is told how many rows were re-wrapped so far and how
// many were left at the start. An interrupted Rewrap loses nothing (each
// row holds either its old or its new wrapping, both of which open) and is
// resumed by running it again.
func Rewrap(ctx context.Context, db *store.Store, kr *keyring.Set, current string, progress func(done, total int64)) (int64, error) {
	if err := kr.SetCurrent(current); err != nil {
		return 0, err
	}
	total, err := db.CountNotCurrent(ctx, current)
	if err != nil {
		return 0, err
	}
	var done int64
	last := time.Now()
	for {
		n, err := db.RewrapBatch(ctx, current, rewrapBatch, func(owner, name, kekID string, wrapped []byte) ([]byte, error) {
			id, w, err := kr.Rewrap(ctx, kekID, wrapped, deposit.AAD(owner, name))
			if err == nil && id != current {
				err = errors.New("re-wrapped with another key than the current one")
			}
			return w, err
		})
		if errors.Is(err, store.ErrNothingToRewrap) {
			progress(done, total)
			return done, nil
		}
		if err != nil {
			return done, err
		}
		done += int64(n)
		if time.Since(last) > time.Second {
			progress(done, total)
			last = time.Now()
		}
	}
}
