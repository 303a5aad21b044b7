package hsmkeys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/store"
)

// maxLabelTries bounds how many taken labels a rotation skips.
const maxLabelTries = 1000

// RotatePlan is what a rotation does, decided from the recorded versions.
type RotatePlan struct {
	// Current is the HSM key that wraps new deposits now.
	Current string
	// Resume is true when an older version still retires: the rotation
	// to Current is finished instead of starting another.
	Resume bool
	// Next is the first version a new key may take.
	Next int
}

// PlanRotation decides what kts keyhsm rotate does from the recorded
// versions.
func PlanRotation(keks []store.KEK) (RotatePlan, error) {
	v := ScanVersions(keks)
	p := RotatePlan{Current: v.Current, Resume: v.Retiring, Next: v.Next}
	if _, ok := Label(p.Current); !ok {
		return p, errors.New("no HSM key wraps deposits yet; run `kts keyhsm init` first")
	}
	return p, nil
}

// Rotation is a run of kts keyhsm rotate on the active's database.
type Rotation struct {
	DB      *store.Store
	Token   *hsm.Token
	Keyring *keyring.Set
	// Wait is how long the servers take to wrap new deposits with a new
	// current key (they read it from the database); what they wrapped with
	// the old key until then is re-wrapped by a last pass after it.
	Wait time.Duration
	// Out is told what is done, and the progress.
	Out io.Writer
}

// Rotate creates the next deposit key version in the token, under a label
// the token does not hold yet (a key left by a rotation the database does
// not know of, as after restoring an older backup, is skipped and never
// used again), makes it current, re-wraps every deposit with it and retires
// the old version. While an older version still retires, it finishes that
// rotation instead.
func (r Rotation) Rotate(ctx context.Context) error {
	keks, err := r.DB.KEKs(ctx)
	if err != nil {
		return err
	}
	plan, err := PlanRotation(keks)
	if err != nil {
		return err
	}
	cur := plan.Current
	if plan.Resume {
		fmt.Fprintf(r.Out, "resuming the rotation to %s\n", cur)
	} else {
		label, err := r.newKey(plan.Next)
		if err != nil {
			return err
		}
		cur = ID(label)
		if err := r.DB.MakeCurrentKEK(ctx, cur); err != nil {
			return err
		}
		fmt.Fprintf(r.Out, "created %q in the token; new deposits are wrapped by it\n", label)
	}
	c := counter{db: r.DB, current: cur}
	progress := ProgressTo(r.Out)
	if err := c.count(ctx); err != nil {
		return err
	}
	fmt.Fprintf(r.Out, "re-wrapping %d deposits with %s\n", c.total, cur)
	_, err = c.rewrap(ctx, r.Keyring, progress)
	if err == nil {
		fmt.Fprintf(r.Out, "waiting %v for the servers to wrap with %s, then a last pass\n", r.Wait, cur)
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(r.Wait):
		}
	}
	if err == nil {
		_, err = c.rewrap(ctx, r.Keyring, progress)
	}
	if err != nil {
		return fmt.Errorf("after re-wrapping %d deposits: %w (run rotate again to finish this rotation)", c.done, err)
	}
	if keks, err = r.DB.KEKs(ctx); err != nil {
		return err
	}
	for _, k := range keks {
		if k.State == store.KEKRetiring && k.Deposits == 0 {
			if err := r.DB.RetireKEK(ctx, k.ID); err != nil {
				return err
			}
			fmt.Fprintf(r.Out, "retired %s: no deposit uses it (it stays in the token for older backups)\n", k.ID)
		}
	}
	fmt.Fprintf(r.Out, "every deposit is wrapped by %s\n", cur)
	return nil
}

// newKey creates the key of version from, or of the first later version
// whose label the token does not hold.
func (r Rotation) newKey(from int) (string, error) {
	for v := from; v < from+maxLabelTries; v++ {
		label := KEKLabelPrefix + strconv.Itoa(v)
		_, err := r.Token.GenerateKey(label)
		if errors.Is(err, hsm.ErrKeyExists) {
			fmt.Fprintf(r.Out, "the token already holds %q, which this database never recorded (a rotation made after the backup it was restored from?); it is left as it is and not used\n", label)
			continue
		}
		if err != nil {
			return "", err
		}
		return label, nil
	}
	return "", fmt.Errorf("the token holds every key label from %s%d to %s%d; remove the keys no backup needs, then rotate again", KEKLabelPrefix, from, KEKLabelPrefix, from+maxLabelTries-1)
}
