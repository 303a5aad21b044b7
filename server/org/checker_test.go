package org

import (
	"context"
	"errors"
	"sync"
	"testing"
)

// TestCheckerBoundsConcurrentHashes holds every hash inside the checker
// until released: no more than running hashes run at once, the checks
// beyond admitted are refused with ErrBusy at once, and the admitted ones
// all finish with the right answer.
func TestCheckerBoundsConcurrentHashes(t *testing.T) {
	stored, err := HashAuthCode("right")
	if err != nil {
		t.Fatal(err)
	}
	const running, admitted, total = 2, 5, 9
	c := NewChecker(running, admitted)
	var mu sync.Mutex
	now, peak := 0, 0
	entered := make(chan struct{}, total)
	release := make(chan struct{})
	c.Hash = func(s, p string) bool {
		mu.Lock()
		now++
		peak = max(peak, now)
		mu.Unlock()
		entered <- struct{}{}
		<-release
		mu.Lock()
		now--
		mu.Unlock()
		return CodeMatches(s, p)
	}
	type result struct {
		ok  bool
		err error
	}
	results := make(chan result, total)
	for i := range total {
		go func() {
			code := "wrong"
			if i%2 == 0 {
				code = "right"
			}
			ok, err := c.Matches(context.Background(), stored, code)
			results <- result{ok == (code == "right"), err}
		}()
	}
	// Two hashes start; the checks beyond the five admitted are refused.
	for range running {
		<-entered
	}
	for range total - admitted {
		if r := <-results; !errors.Is(r.err, ErrBusy) {
			t.Fatalf("a check beyond the admitted ones: %v, want ErrBusy", r.err)
		}
	}
	close(release)
	for range admitted {
		if r := <-results; r.err != nil || !r.ok {
			t.Errorf("an admitted check: right answer %v, err %v", r.ok, r.err)
		}
	}
	if peak != running {
		t.Errorf("%d hashes ran at once, want at most %d", peak, running)
	}
	// Full again after the flood: a check runs.
	if ok, err := c.Matches(context.Background(), stored, "right"); !ok || err != nil {
		t.Errorf("after the flood: %v, %v", ok, err)
	}
}

// TestCheckerNoHashNeeded: a check that needs no hash is answered even when
// the checker is full.
func TestCheckerNoHashNeeded(t *testing.T) {
	c := NewChecker(1, 1)
	c.admit <- struct{}{} // full
	for _, tc := range []struct {
		stored, presented string
		want              bool
	}{{"", "anything", true}, {"", "", true}, {"argon2id$x", "", false}} {
		if ok, err := c.Matches(context.Background(), tc.stored, tc.presented); ok != tc.want || err != nil {
			t.Errorf("Matches(%q, %q) = %v, %v; want %v", tc.stored, tc.presented, ok, err, tc.want)
		}
	}
	if _, err := c.Matches(context.Background(), "argon2id$x", "code"); !errors.Is(err, ErrBusy) {
		t.Errorf("full checker: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2 := NewChecker(1, 2)
	c2.run <- struct{}{} // the one running slot is taken
	if _, err := c2.Matches(ctx, "argon2id$x", "code"); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting check with its context ended: %v, want context.Canceled", err)
	}
}
