package hsmadmin

import (
	"strings"
	"testing"

	"trustee.dev/trustee/server/config"
)

func TestInitConfig(t *testing.T) {
	plain := config.Default("kts01")
	withHSM := plain
	withHSM.HSMModule, withHSM.HSMTokenLabel, withHSM.HSMPINFile = "/usr/lib/softhsm/libsofthsm2.so", "kts", "pin"
	same := InitOptions{Module: "/usr/lib/softhsm/libsofthsm2.so", Token: "kts", PINFile: "pin"}
	for _, tc := range []struct {
		name      string
		cfg       config.Config
		o         InitOptions
		errSub    string
		stateKey  string
		wantToken string
	}{
		{"a first HSM", plain, same, "", config.DefaultHSMStateKey, "kts"},
		{"the same HSM again", withHSM, same, "", config.DefaultHSMStateKey, "kts"},
		{"a chosen state key", plain, InitOptions{Module: same.Module, Token: "kts", PINFile: "pin", StateKey: "my-state"}, "", "my-state", "kts"},
		{"another token", withHSM, InitOptions{Module: same.Module, Token: "other", PINFile: "pin"}, "/srv/kts already keeps its keys in the HSM", "", ""},
		{"another module", withHSM, InitOptions{Module: "/opt/hsm.so", Token: "kts", PINFile: "pin"}, "a state directory uses one HSM", "", ""},
		{"no PIN source", plain, InitOptions{Module: same.Module, Token: "kts"}, "PIN", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := initConfig("/srv/kts", tc.cfg, tc.o)
			if tc.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("initConfig = %v; want an error with %q", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.HSMTokenLabel != tc.wantToken || got.HSMStateKey != tc.stateKey || got.HSMModule != tc.o.Module || got.HSMPINFile != tc.o.PINFile {
				t.Errorf("initConfig = module %q token %q PIN file %q state key %q", got.HSMModule, got.HSMTokenLabel, got.HSMPINFile, got.HSMStateKey)
			}
		})
	}
}
