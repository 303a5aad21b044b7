// Package bench drives load for `kts bench`: closed-loop and fixed-rate
// runs of an operation over a set of workers, with throughput, latency
// percentiles and error counts.
package bench

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
	Name      string
	Ops       int
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	latencies []time.Duration // sorted
}

// Rate is operations per second over the measured window.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Percentile returns the q-quantile (0 < q ≤ 1) of the latencies.
func (r Result) Percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	i = max(0, min(i, len(r.latencies)-1))
	return r.latencies[i]
}

func (r Result) String() string {
	s := fmt.Sprintf("%-16s %9.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  errors %d",
		r.Name, r.Rate(), ms(r.Percentile(0.50)), ms(r.Percentile(0.99)), r.Errors)
	if r.FirstErr != nil {
		s += fmt.Sprintf(" (first: %v)", r.FirstErr)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type recorder struct {
	mu        sync.Mutex
	ops, errs int
	first     error
	lat       []time.Duration
}

func (r *recorder) add(lat []time.Duration, ops, errs int, first error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat = append(r.lat, lat...)
	r.ops += ops
	r.errs += errs
	if r.first == nil {
		r.first = first
	}
}

func (r *recorder) result(name string, elapsed time.Duration) Result {
	slices.Sort(r.lat)
	return Result{Name: name, Ops: r.ops, Errors: r.errs, FirstErr: r.first, Elapsed: elapsed, latencies: r.lat}
}

// ClosedLoop runs op on each of workers as fast as it completes: warm-up
// first (not counted), then the measured window.
func ClosedLoop(ctx context.Context, name string, workers int, warmup, window time.Duration, op Op) Result {
	start := time.Now()
	measureFrom, stop := start.Add(warmup), start.Add(warmup+window)
	var rec recorder
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ops, errs int
			var first error
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				if !t0.Before(stop) {
					break
				}
				err := op(ctx, w, seq)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				ops++
				lat = append(lat, time.Since(t0))
			}
			rec.add(lat, ops, errs, first)
		}()
	}
	wg.Wait()
	return rec.result(name, window)
}

// FixedRate starts operations at a fixed rate (per second) whatever the
// previous ones are doing, and measures each from its scheduled start, so a
// slow answer is charged for the queueing it causes.
func FixedRate(ctx context.Context, name string, workers int, rate float64, warmup, window time.Duration, op Op) Result {
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	measureFrom, stop := start.Add(warmup), start.Add(warmup+window)
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
	var rec recorder
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ops, errs int
			var first error
			for seq := 0; ; seq++ {
				t, ok := <-due
				if !ok {
					break
				}
				err := op(ctx, w, seq)
				if t.Before(measureFrom) {
					continue
				}
				if err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				ops++
				lat = append(lat, time.Since(t))
			}
			rec.add(lat, ops, errs, first)
		}()
	}
	wg.Wait()
	return rec.result(name, window)
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
