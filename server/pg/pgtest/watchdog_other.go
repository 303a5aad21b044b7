//go:build !unix

package pgtest

import "errors"

// startWatchdog is a no-op where no watchdog is available: servers left by
// a test binary that dies without running Main's cleanup keep running.
func startWatchdog(string) (func(), error) { return func() {}, nil }

func signalQuit(int) error { return errors.New("cannot signal the server on this system") }
