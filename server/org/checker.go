package org

import (
	"context"
	"errors"
)

// ErrBusy is returned by Checker.Matches when as many auth codes are being
// checked as it admits: the caller should ask the client to retry shortly.
var ErrBusy = errors.New("too many auth codes are being checked at once")

// Checker bounds the auth code checks that run at once. Each check hashes
// the presented code with Argon2id, which takes argonMemory KiB (19 MiB) and
// a CPU for tens of milliseconds, so unbounded concurrent registrations
// would grow the server's memory with their number. At most running hashes
// run together; up to admitted checks (running ones included) are let in,
// the ones beyond running waiting their turn; any more are refused with
// ErrBusy at once.
type Checker struct {
	run   chan struct{}
	admit chan struct{}
	// Hash checks a code against a stored hash; nil is CodeMatches. Tests
	// set it to count the hashes running at once.
	Hash func(stored, presented string) bool
}

// NewChecker returns a Checker that runs at most running hashes at once and
// admits at most admitted checks (at least running).
func NewChecker(running, admitted int) *Checker {
	running = max(running, 1)
	admitted = max(admitted, running)
	return &Checker{run: make(chan struct{}, running), admit: make(chan struct{}, admitted)}
}

// Matches reports whether presented matches the stored hash, as CodeMatches
// does. Checks that need no hash (no code stored, or none presented) are
// answered at once. It returns ErrBusy when the checker is full, and the
// context's error when ctx ends while the check waits its turn.
func (c *Checker) Matches(ctx context.Context, stored, presented string) (bool, error) {
	if stored == "" || presented == "" {
		return CodeMatches(stored, presented), nil
	}
	select {
	case c.admit <- struct{}{}:
	default:
		return false, ErrBusy
	}
	defer func() { <-c.admit }()
	select {
	case c.run <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-c.run }()
	if c.Hash != nil {
		return c.Hash(stored, presented), nil
	}
	return CodeMatches(stored, presented), nil
}
