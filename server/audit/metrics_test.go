package audit

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"trustee.dev/trustee/server/openpgp/openpgptest"
)

// The audit counters are exported for every chain from the start, at 0, so
// that an alert on any increase of kts_audit_failures_total sees the first
// failure.
func TestAuditCountersExportEveryChainFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(Failures, Appended)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]bool{}
	for _, f := range families {
		seen[f.GetName()] = map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "chain" {
					seen[f.GetName()][l.GetValue()] = true
				}
			}
		}
	}
	for _, name := range []string{"kts_audit_failures_total", "kts_audit_records_total"} {
		for _, chain := range []string{ChainDB, ChainJournal} {
			if !seen[name][chain] {
				t.Errorf("%s{chain=%q} is not exported before anything happened", name, chain)
			}
		}
	}
}

// brokenChain is a chain whose head cannot be read.
type brokenChain struct{}

func (brokenChain) Head(context.Context) (Head, bool, error) {
	return Head{}, false, errors.New("the chain's storage does not answer")
}
func (brokenChain) Append(context.Context, Event) error { return errors.New("unreachable") }

// kts_audit_checkpoint_timestamp_seconds moves when a checkpoint signs the
// chain's head, and when the head is found signed already; it stays put
// while records wait for their checkpoint and while the chain cannot be
// read, so that its age tells how long records have gone unsigned.
func TestCheckpointTimestampMetric(t *testing.T) {
	ctx := context.Background()
	key := openpgptest.Key(t, 0)
	j, err := OpenJournal(filepath.Join(t.TempDir(), "audit"), JournalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const name = "metrics-test"
	signed := func() float64 { return testutil.ToFloat64(Signed.WithLabelValues(name)) }
	reg := prometheus.NewRegistry()
	reg.MustRegister(Signed)
	exported := func() bool {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "chain" && l.GetValue() == name {
						return true
					}
				}
			}
		}
		return false
	}
	if exported() {
		t.Fatal("the chain's timestamp is exported before its first checkpoint")
	}
	cp := &Checkpointer{Chain: JournalChain{j}, Name: name, Key: key, Every: time.Hour}
	step := func(what string, force, wantCheckpoint, wantMoved bool) {
		t.Helper()
		before, start := signed(), float64(time.Now().UnixNano())/1e9
		time.Sleep(2 * time.Millisecond)
		if got := cp.Once(ctx, force); got != wantCheckpoint {
			t.Fatalf("%s: checkpoint appended = %v, want %v", what, got, wantCheckpoint)
		}
		after := signed()
		switch {
		case wantMoved && (after < start || after > float64(time.Now().UnixNano())/1e9):
			t.Errorf("%s: timestamp %f, want the time of this call (from %f)", what, after, start)
		case !wantMoved && after != before:
			t.Errorf("%s: timestamp moved from %f to %f", what, before, after)
		}
	}
	step("the first checkpoint signs the opening record", false, true, true)
	if err := j.Record(ctx, events(1)[0]); err != nil {
		t.Fatal(err)
	}
	step("a record waits for its checkpoint", false, false, false)
	step("a forced checkpoint", true, true, true)
	step("the head is a checkpoint already", false, false, true)
	cp.Chain, cp.Log = brokenChain{}, slog.New(slog.DiscardHandler)
	step("the chain cannot be read", true, false, false)
	if !exported() {
		t.Fatal("the chain's timestamp is not exported after its checkpoints")
	}
}
