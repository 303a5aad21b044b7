package hsmkeys

import (
	"errors"
	"fmt"
	"testing"

	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/store"
)

func TestCheckupLines(t *testing.T) {
	good := hsm.KeyAttributes{KeyType: "AES", ValueLen: 32, Sensitive: true, AlwaysSensitive: true, NeverExtractable: true, Token: true}
	k := CheckedKey{Label: "kts-kek-1", Use: "current"}
	for _, tc := range []struct {
		name   string
		a      hsm.KeyAttributes
		err    error
		want   string
		wantOK bool
	}{
		{"a good key", good, nil, `key "kts-kek-1"  (current) AES 256-bit, sensitive=true always-sensitive=true extractable=false never-extractable=true token=true; wrap/unwrap self-test ok`, true},
		{"a missing key", hsm.KeyAttributes{}, fmt.Errorf("no such key: %w", hsm.ErrNoKey), `key "kts-kek-1"  (current) MISSING: no such key: ` + hsm.ErrNoKey.Error(), false},
		{"a failing key", good, errors.New("wrap failed"), `key "kts-kek-1"  (current) AES 256-bit, sensitive=true always-sensitive=true extractable=false never-extractable=true token=true; FAILED: wrap failed`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := keyLine(k, tc.a, tc.err); got != tc.want || ok != tc.wantOK {
				t.Errorf("keyLine = %q, %v\nwant %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
	for _, tc := range []struct {
		k    store.KEK
		want string
	}{
		{store.KEK{ID: "file-1", Deposits: 3}, "deposits wrapped by file-1 (file keyring): 3"},
		{store.KEK{ID: "hsm:kts-kek-2", State: "current", Deposits: 7}, "deposits wrapped by hsm:kts-kek-2 (current): 7"},
	} {
		if got := versionLine(tc.k); got != tc.want {
			t.Errorf("versionLine = %q; want %q", got, tc.want)
		}
	}
	for _, tc := range []struct {
		data   string
		seal   bool
		want   string
		wantOK bool
	}{
		{sealedMagic + "kts-state\nxx", true, "sealed by the HSM", true},
		{sealedMagic + "kts-state\nxx", false, "sealed by the HSM", true},
		{"plain", false, "not sealed (HSM_SEAL_STATE is false)", true},
		{"plain", true, "NOT sealed (run kts keyhsm init)", false},
	} {
		if got, ok := sealedState([]byte(tc.data), tc.seal); got != tc.want || ok != tc.wantOK {
			t.Errorf("sealedState(%q, %v) = %q, %v; want %q, %v", tc.data, tc.seal, got, ok, tc.want, tc.wantOK)
		}
	}
}
