//go:build !cgo

package hsm_test

import (
	"errors"
	"testing"

	"trustee.dev/trustee/server/hsm"
)

func TestOpenWithoutCgo(t *testing.T) {
	_, err := hsm.Open(hsm.Config{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "x", PIN: "1234"})
	if !errors.Is(err, hsm.ErrNoPKCS11) {
		t.Fatalf("Open = %v, want ErrNoPKCS11", err)
	}
}
