// Package harness holds the small pieces the tests share: a free port, a
// buffer that processes write to while the test reads it, a child process
// the test reads and ends, the end of a long output, and waiting for a
// condition. It uses the standard library only, so that any test package,
// the server's included, can use it.
package harness

import (
	"strings"
	"testing"
	"time"
)

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Eventually polls cond until it holds, or fails t after limit with what
// cond said last.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, still not %s: %s", limit, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
