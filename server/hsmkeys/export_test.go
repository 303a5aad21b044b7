package hsmkeys

import "time"

// SetProgressEvery makes re-wraps report progress every d, for tests.
func SetProgressEvery(d time.Duration) (restore func()) {
	old := progressEvery
	progressEvery = d
	return func() { progressEvery = old }
}
