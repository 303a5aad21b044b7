//go:build cgo

package hsm

import "time"

// SetTimeouts sets the call timeout and the retry interval until the
// returned function is called.
func SetTimeouts(call, retry time.Duration) (restore func()) {
	c, r := callTimeoutNS.Swap(int64(call)), retryIntervalNS.Swap(int64(retry))
	return func() {
		callTimeoutNS.Store(c)
		retryIntervalNS.Store(r)
	}
}

// SealWithNonce is Seal with a given IV.
func (k *Key) SealWithNonce(nonce, plaintext, aad []byte) ([]byte, error) {
	return k.sealWithNonce(nonce, plaintext, aad)
}
