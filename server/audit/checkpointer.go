package audit

import (
	"context"
	"log/slog"
	"time"
)

// Checkpoint defaults: a server signs each chain it extends at least every
// CheckpointEvery, and sooner once CheckpointRecords records are unsigned.
const (
	CheckpointEvery   = 10 * time.Second
	CheckpointRecords = 10000
)

// Signable is a chain a server signs: its head, whether the last record is
// a checkpoint already, and a way to append.
type Signable interface {
	Head(ctx context.Context) (Head, bool, error)
	Append(ctx context.Context, e Event) error
}

// Checkpointer signs a chain's head from time to time (see Run).
type Checkpointer struct {
	Chain  Signable
	Name   string // ChainDB or ChainJournal: for the log and the chain label of Signed
	Key    Signer
	Every  time.Duration // default CheckpointEvery
	Record int64         // default CheckpointRecords
	Log    *slog.Logger
	// Done, when set, is told of every checkpoint appended: the head it
	// signs.
	Done func(signed Head)

	signed Head
	at     time.Time
}

// poll is how often the head is looked at.
const poll = time.Second

// Run checks the chain every second and appends a checkpoint when
// records are unsigned and Every has passed since the last one, or Record
// records are unsigned; and once more when ctx ends.
func (c *Checkpointer) Run(ctx context.Context) {
	c.defaults()
	c.at = time.Now()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			c.Once(final, true)
			cancel()
			return
		case <-t.C:
			c.Once(ctx, false)
		}
	}
}

// Once appends a checkpoint if one is due (or, with force, whenever the
// last record is not one). It reports whether it did.
func (c *Checkpointer) Once(ctx context.Context, force bool) bool {
	c.defaults()
	head, isCP, err := c.Chain.Head(ctx)
	if err != nil {
		if ctx.Err() == nil {
			c.Log.Warn("audit checkpoint: reading the chain's head", "chain", c.Name, "err", err)
		}
		return false
	}
	if head.Seq == 0 || isCP {
		c.signedAt(time.Now())
		return false
	}
	due := force || time.Since(c.at) >= c.Every || head.Seq-c.signed.Seq >= c.Record
	if !due {
		return false
	}
	e, err := NewCheckpoint(c.Key, head)
	if err == nil {
		err = c.Chain.Append(ctx, e)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.Log.Warn("audit checkpoint failed", "chain", c.Name, "err", err)
		}
		return false
	}
	c.signed, c.at = head, time.Now()
	c.signedAt(c.at)
	c.Log.Info("audit checkpoint", "chain", c.Name, "signed_seq", head.Seq, "signed_hash", head.Hash.String())
	if c.Done != nil {
		c.Done(head)
	}
	return true
}

// signedAt records in Signed that the chain was signed up to its head at t.
func (c *Checkpointer) signedAt(t time.Time) {
	Signed.WithLabelValues(c.Name).Set(float64(t.UnixNano()) / 1e9)
}

func (c *Checkpointer) defaults() {
	if c.Every <= 0 {
		c.Every = CheckpointEvery
	}
	if c.Record <= 0 {
		c.Record = CheckpointRecords
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// JournalChain is a Journal as a Signable.
type JournalChain struct{ *Journal }

// Head implements Signable.
func (j JournalChain) Head(context.Context) (Head, bool, error) {
	h, cp := j.Journal.Head()
	return h, cp, nil
}

// Append implements Signable.
func (j JournalChain) Append(ctx context.Context, e Event) error { return j.Journal.Record(ctx, e) }
