// Package loadgen drives the benchmark's load: closed-loop and fixed-rate
// runs of an operation over a set of workers, with throughput, latency
// percentiles and error counts.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// Op is one operation of worker w; seq counts the worker's operations.
type Op func(ctx context.Context, w, seq int) error

// Result is what one run measured.
type Result struct {
	Name     string
	Ops      int
	Errors   int
	FirstErr error
	Elapsed  time.Duration
	hist     histogram
}

// Rate is operations per second over the measured window.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies.
func (r Result) Percentile(q float64) time.Duration { return r.hist.percentile(q) }

func (r Result) String() string {
	s := fmt.Sprintf("%-16s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d",
		r.Name, r.Rate(), ms(r.Percentile(0.50)), ms(r.Percentile(0.99)), r.Errors)
	if r.FirstErr != nil {
		s += fmt.Sprintf(" (first: %v)", r.FirstErr)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// tally is what one worker saw.
type tally struct {
	hist      histogram
	ops, errs int
	first     error
}

func (t *tally) record(err error, d time.Duration) {
	if err != nil {
		t.errs++
		if t.first == nil {
			t.first = err
		}
		return
	}
	t.ops++
	t.hist.add(d)
}

// drive runs op on workers until next reports no more operations. next
// gives the time each operation counts from; operations starting before
// measureFrom are warm-up and not counted.
func drive(ctx context.Context, name string, workers int, measureFrom time.Time, window time.Duration, next func() (time.Time, bool), op Op) Result {
	var mu sync.Mutex
	var total tally
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var t tally
			for seq := 0; ; seq++ {
				t0, ok := next()
				if !ok {
					break
				}
				err := op(ctx, w, seq)
				if !t0.Before(measureFrom) {
					t.record(err, time.Since(t0))
				}
			}
			mu.Lock()
			defer mu.Unlock()
			total.hist.merge(&t.hist)
			total.ops += t.ops
			total.errs += t.errs
			if total.first == nil {
				total.first = t.first
			}
		}()
	}
	wg.Wait()
	return Result{Name: name, Ops: total.ops, Errors: total.errs, FirstErr: total.first, Elapsed: window, hist: total.hist}
}

// ClosedLoop runs op on each of workers as fast as it completes: warm-up
// first (not counted), then the measured window.
func ClosedLoop(ctx context.Context, name string, workers int, warmup, window time.Duration, op Op) Result {
	start := time.Now()
	stop := start.Add(warmup + window)
	next := func() (time.Time, bool) {
		t := time.Now()
		return t, t.Before(stop) && ctx.Err() == nil
	}
	return drive(ctx, name, workers, start.Add(warmup), window, next, op)
}

// FixedRate starts operations at a fixed rate (per second) whatever the
// previous ones are doing, and measures each from its scheduled start, so a
// slow answer is charged for the queueing it causes.
func FixedRate(ctx context.Context, name string, workers int, rate float64, warmup, window time.Duration, op Op) Result {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	stop := start.Add(warmup + window)
	due := make(chan time.Time, 1<<16)
	go func() {
		defer close(due)
		for t := start; t.Before(stop); t = t.Add(interval) {
			if d := time.Until(t); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			due <- t
		}
	}()
	next := func() (time.Time, bool) {
		t, ok := <-due
		return t, ok
	}
	return drive(ctx, name, workers, start.Add(warmup), window, next, op)
}

// histogram counts latencies in log-linear buckets: 1 µs wide below 1 ms,
// 25 µs wide up to 100 ms; longer ones are kept exactly. Recording costs no
// allocation, so the load generator does not disturb what it measures.
type histogram struct {
	fine   [1000]uint32 // [0, 1 ms) by 1 µs
	coarse [3960]uint32 // [1 ms, 100 ms) by 25 µs
	slow   []time.Duration
	n      int
}

func (h *histogram) add(d time.Duration) {
	h.n++
	switch {
	case d < time.Millisecond:
		h.fine[max(d, 0)/time.Microsecond]++
	case d < 100*time.Millisecond:
		h.coarse[(d-time.Millisecond)/(25*time.Microsecond)]++
	default:
		h.slow = append(h.slow, d)
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.fine {
		h.fine[i] += c
	}
	for i, c := range o.coarse {
		h.coarse[i] += c
	}
	h.slow = append(h.slow, o.slow...)
	h.n += o.n
}

// percentile returns the upper edge of the bucket holding the q-quantile.
func (h *histogram) percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(1, int(q*float64(h.n)+0.5))
	seen := 0
	for i, c := range h.fine {
		if seen += int(c); seen >= rank {
			return time.Duration(i+1) * time.Microsecond
		}
	}
	for i, c := range h.coarse {
		if seen += int(c); seen >= rank {
			return time.Millisecond + time.Duration(i+1)*25*time.Microsecond
		}
	}
	slices.Sort(h.slow)
	return h.slow[min(rank-seen, len(h.slow))-1]
}

// Median returns the median and range of xs.
func Median(xs []float64) (med, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}
