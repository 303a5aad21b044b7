package loadgen

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
	var r Result
	for i := 1; i <= 100; i++ {
		r.hist.add(time.Duration(i) * 100 * time.Microsecond) // 0.1 ms … 10 ms
	}
	r.hist.add(200 * time.Millisecond)
	for q, want := range map[float64]time.Duration{
		0.01: 101 * time.Microsecond,  // 0.1 ms, in a 1 µs bucket
		0.5:  5125 * time.Microsecond, // the 51st of 101: 5.1 ms, in a 25 µs bucket
		1:    200 * time.Millisecond,  // kept exactly
	} {
		if got := r.Percentile(q); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if m, lo, hi := Median([]float64{3, 1, 2}); m != 2 || lo != 1 || hi != 3 {
		t.Fatalf("Median = %v %v %v", m, lo, hi)
	}
	if m, _, _ := Median([]float64{1, 2, 3, 4}); m != 2.5 {
		t.Fatalf("even Median = %v", m)
	}
}
