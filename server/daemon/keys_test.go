package daemon

import (
	"context"
	"strings"
	"testing"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/keyring"
)

// TestHSMHealthTestsTheKeyInUse checks what /readyz asks of the token: with
// sealed secrets, the state key; with HSM_SEAL_STATE false, the key that
// wraps new deposits when it is the token's, and nothing while the file
// keyring's wraps.
func TestHSMHealthTestsTheKeyInUse(t *testing.T) {
	c := hsmtest.NewToken(t)
	tok, err := hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if _, err := tok.GenerateKey("kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	contents, err := keyring.NewFileContents()
	if err != nil {
		t.Fatal(err)
	}
	file, err := keyring.ParseFile(contents, "deposit-keyring.json")
	if err != nil {
		t.Fatal(err)
	}
	ready := func(context.Context) (any, error) { return "ready", nil }
	for _, tc := range []struct {
		seal    bool
		current string // "" = the file keyring's key
		want    string // "" = ready
	}{
		{true, "", `no key "` + config.DefaultHSMStateKey + `"`},
		{false, "", ""},
		{false, "kts-kek-1", ""},
		{false, "kts-kek-2", `no key "kts-kek-2"`},
	} {
		cfg := config.Default("h")
		cfg.HSMModule, cfg.HSMTokenLabel, cfg.HSMSealState = c.Module, c.TokenLabel, tc.seal
		st := &confdir.State{Config: cfg, HSM: tok, Keyring: keyring.NewSet(file, hsmkeys.NewKeyring(tok, "(test token)"))}
		if tc.current != "" {
			if err := st.Keyring.SetCurrent(hsmkeys.ID(tc.current)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := hsmHealth(st, ready)(context.Background())
		switch {
		case tc.want == "" && (err != nil || got != "ready"):
			t.Errorf("seal %v, current %q: %v, %v; want ready", tc.seal, tc.current, got, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("seal %v, current %q: %v, %v; want %q", tc.seal, tc.current, got, err, tc.want)
		}
	}
}
