package bench

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestClosedLoopCountsOpsAndErrors(t *testing.T) {
	op := func(_ context.Context, w, seq int) error {
		time.Sleep(time.Millisecond)
		if w == 0 && seq%2 == 1 {
			return errors.New("odd")
		}
		return nil
	}
	r := ClosedLoop(context.Background(), "x", 4, 20*time.Millisecond, 200*time.Millisecond, op)
	if r.Ops == 0 || r.Errors == 0 || r.FirstErr == nil {
		t.Fatalf("result %+v: want ops and errors counted", r)
	}
	if p := r.Percentile(0.5); p < time.Millisecond {
		t.Fatalf("p50 %v below the op's own sleep", p)
	}
}

func TestFixedRateKeepsRate(t *testing.T) {
	op := func(context.Context, int, int) error { return nil }
	r := FixedRate(context.Background(), "x", 2, 200, 50*time.Millisecond, 500*time.Millisecond, op)
	// 200/s over 0.5 s is 100 operations; allow scheduling slack only.
	if r.Ops < 90 || r.Ops > 101 {
		t.Fatalf("ops = %d, want about 100", r.Ops)
	}
}

func TestPercentileAndMedian(t *testing.T) {
	r := Result{latencies: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	if r.Percentile(0.5) != 5 || r.Percentile(0.99) != 10 || r.Percentile(0.1) != 1 {
		t.Fatalf("percentiles: %v %v %v", r.Percentile(0.5), r.Percentile(0.99), r.Percentile(0.1))
	}
	if m, lo, hi := Median([]float64{3, 1, 2}); m != 2 || lo != 1 || hi != 3 {
		t.Fatalf("Median = %v %v %v", m, lo, hi)
	}
	if m, _, _ := Median([]float64{1, 2, 3, 4}); m != 2.5 {
		t.Fatalf("even Median = %v", m)
	}
}
