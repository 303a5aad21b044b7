package audit

import (
	"fmt"
	"time"

	"trustee.dev/trustee/server/openpgp"
)

// Break is the first place a chain does not hold: the record and why.
type Break struct {
	Seq    int64
	Reason string
}

func (b *Break) Error() string { return fmt.Sprintf("record %d: %s", b.Seq, b.Reason) }

// Summary is what a verified chain holds.
type Summary struct {
	Records     int64
	First, Last Head // the first record's (seq, hash) and the last's
	FirstTime   time.Time
	LastTime    time.Time
	Checkpoints int
	// Signed is the latest head a valid checkpoint signs, and SignedAt
	// that checkpoint's time; Signed.Seq is 0 when none does.
	Signed   Head
	SignedAt time.Time
	// Unsigned counts the records after Signed, which no checkpoint
	// covers yet.
	Unsigned int64
	// checkpoints seen, by the head they sign
	signedHeads map[Head]bool
}

// HasCheckpoint reports whether a valid checkpoint of the chain signs h.
func (s Summary) HasCheckpoint(h Head) bool { return s.signedHeads[h] }

// hashWindow is how many recent records' hashes a Verifier keeps to check
// the heads that checkpoints sign (a checkpoint signs a head a few records
// before it).
const hashWindow = 1 << 16

// Verifier checks a chain record by record, in sequence order, without
// holding it in memory.
type Verifier struct {
	// Key is the server's key; checkpoints must be signed by it.
	Key *openpgp.PublicKey
	// Partial accepts a chain that starts after its first record (an
	// export from a later point, a journal whose older files were
	// removed): its first record's PrevHash is then taken on trust.
	Partial bool

	sum    Summary
	last   Record
	recent [hashWindow]Hash
	broken *Break
}

// Add checks the next record. It returns a *Break at the first record
// where the chain does not hold, and the same Break for every record
// after it.
func (v *Verifier) Add(r Record) error {
	if v.broken != nil {
		return v.broken
	}
	if err := v.add(r); err != nil {
		v.broken = err
		return err
	}
	return nil
}

func (v *Verifier) add(r Record) *Break {
	fail := func(format string, args ...any) *Break {
		return &Break{Seq: r.Seq, Reason: fmt.Sprintf(format, args...)}
	}
	first := v.sum.Records == 0
	switch {
	case first && !v.Partial && r.Seq != 1:
		return fail("the chain starts here, not at record 1: the records before it are missing")
	case first && !v.Partial && r.PrevHash != (Hash{}):
		return fail("the first record's previous hash is not zero: records before it were removed")
	case first && r.Seq < 1:
		return fail("a sequence number starts at 1")
	case !first && r.Seq == v.last.Seq:
		return fail("record %d appears twice (a record was inserted or copied)", r.Seq)
	case !first && r.Seq < v.last.Seq:
		return fail("it comes after record %d: the sequence goes back (records were reordered or inserted)", v.last.Seq)
	case !first && r.Seq > v.last.Seq+1:
		missing := fmt.Sprintf("record %d is", v.last.Seq+1)
		if r.Seq > v.last.Seq+2 {
			missing = fmt.Sprintf("records %d to %d are", v.last.Seq+1, r.Seq-1)
		}
		return fail("it follows record %d: %s missing (deleted)", v.last.Seq, missing)
	case !first && r.PrevHash != v.last.Hash:
		return fail("its previous hash does not match record %d's hash: record %d was changed (its hash recomputed), or records were removed or inserted between them", v.last.Seq, v.last.Seq)
	}
	if got := r.ComputeHash(); got != r.Hash {
		return fail("its hash does not match its contents: the record was changed (stored %s, computed %s)", r.Hash, got)
	}
	if r.IsCheckpoint() {
		if err := v.checkpoint(r); err != nil {
			return err
		}
	}
	if first {
		v.sum.First, v.sum.FirstTime = Head{Seq: r.Seq, Hash: r.Hash}, r.Time
	}
	v.sum.Records++
	v.sum.Last, v.sum.LastTime = Head{Seq: r.Seq, Hash: r.Hash}, r.Time
	v.recent[r.Seq%hashWindow] = r.Hash
	v.last = r
	return nil
}

func (v *Verifier) checkpoint(r Record) *Break {
	fail := func(format string, args ...any) *Break {
		return &Break{Seq: r.Seq, Reason: "checkpoint: " + fmt.Sprintf(format, args...)}
	}
	if v.Key == nil {
		return fail("no server key to check its signature with")
	}
	h, err := r.checkSignature(v.Key)
	if err != nil {
		return fail("%v (a forged or altered signature)", err)
	}
	switch {
	case h.Seq >= r.Seq:
		return fail("it signs record %d, which does not come before it", h.Seq)
	case h.Seq < v.sum.First.Seq || (v.sum.Records == 0):
		// Signs a record before this (partial) chain starts: nothing
		// here to compare with; the signature itself is valid.
	case h.Seq <= v.last.Seq-hashWindow:
		return fail("it signs record %d, too far back to check", h.Seq)
	case v.recent[h.Seq%hashWindow] != h.Hash:
		return fail("it signs record %d with hash %s, but that record's hash is %s: the records up to it were rewritten", h.Seq, h.Hash, v.recent[h.Seq%hashWindow])
	}
	v.sum.Checkpoints++
	if v.sum.signedHeads == nil {
		v.sum.signedHeads = map[Head]bool{}
	}
	v.sum.signedHeads[h] = true
	if h.Seq >= v.sum.Signed.Seq {
		v.sum.Signed, v.sum.SignedAt = h, r.Time
	}
	return nil
}

// Summary returns what the records added so far hold.
func (v *Verifier) Summary() Summary {
	s := v.sum
	s.Unsigned = s.Last.Seq - max(s.Signed.Seq, s.First.Seq-1)
	return s
}

// Err returns the chain's first Break, or nil.
func (v *Verifier) Err() error {
	if v.broken == nil {
		return nil
	}
	return v.broken
}
