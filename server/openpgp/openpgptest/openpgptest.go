// Package openpgptest gives tests Ed25519 keys made once per test binary:
// making a key costs more than most tests do.
package openpgptest

import (
	"sync"
	"testing"

	"trustee.dev/trustee/server/openpgp"
)

var (
	mu   sync.Mutex
	keys []*openpgp.PrivateKey
)

// Key returns the i-th key of the test binary (user ID "test"), making the
// keys up to it on first use.
func Key(t testing.TB, i int) *openpgp.PrivateKey {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for len(keys) <= i {
		k, err := openpgp.Generate(openpgp.Ed25519, "test", "")
		if err != nil {
			t.Fatalf("openpgptest: %v", err)
		}
		keys = append(keys, k)
	}
	return keys[i]
}
