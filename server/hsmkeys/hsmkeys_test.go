package hsmkeys_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/keyring"
)

func openToken(t *testing.T) (*hsm.Token, hsm.Config) {
	t.Helper()
	c := hsmtest.NewToken(t)
	tok, err := hsm.Open(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tok.Close() })
	return tok, c
}

func TestKeyringWrapsInsideTheToken(t *testing.T) {
	ctx := context.Background()
	tok, c := openToken(t)
	if _, err := tok.GenerateKey("kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	kr := hsmkeys.NewKeyring(tok, "(test token)")
	set := keyring.NewSet(newFileKeyring(t), kr)
	if err := set.SetCurrent(hsmkeys.ID("kts-kek-1")); err != nil {
		t.Fatal(err)
	}
	aad := []byte("owner\x00name")
	sealed, err := keyring.Seal(ctx, set, []byte("deposit"), aad)
	if err != nil || sealed.KeyID != "hsm:kts-kek-1" {
		t.Fatalf("Seal = %+v, %v", sealed, err)
	}
	if pt, err := keyring.Open(ctx, set, sealed, aad); err != nil || string(pt) != "deposit" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := keyring.Open(ctx, set, sealed, []byte("other\x00name")); !errors.Is(err, keyring.ErrOpen) {
		t.Fatalf("Open for another deposit = %v, want ErrOpen", err)
	}
	if err := kr.Check(ctx, hsmkeys.ID("kts-kek-1")); err != nil {
		t.Fatal(err)
	}
	if err := kr.Check(ctx, hsmkeys.ID("kts-kek-9")); err == nil || !strings.Contains(err.Error(), `no key "kts-kek-9"`) {
		t.Fatalf("Check of a missing key = %v", err)
	}

	// The token goes away: an error that says "unavailable", and back.
	dir := hsmtest.TokenDir(c)
	away := filepath.Join(t.TempDir(), "away")
	if err := os.Rename(dir, away); err != nil {
		t.Fatal(err)
	}
	_, err = keyring.Open(ctx, set, sealed, aad)
	os.Rename(away, dir)
	if !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Open without the token = %v, want ErrUnavailable", err)
	}
	// The token reconnects at most once every hsm.RetryInterval.
	deadline := time.Now().Add(5 * time.Second)
	for {
		pt, err := keyring.Open(ctx, set, sealed, aad)
		if err == nil && string(pt) == "deposit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Open with the token back = %q, %v", pt, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStateFilesAreSealedForTheirName(t *testing.T) {
	tok, _ := openToken(t)
	key, err := tok.GenerateKey(config.DefaultHSMStateKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := hsmkeys.Seal(key, "/state/session.key", []byte("secret"))
	if err != nil || !hsmkeys.IsSealed(sealed) || strings.Contains(string(sealed), "secret") {
		t.Fatalf("Seal = %q, %v", sealed, err)
	}
	if pt, err := hsmkeys.Unseal(tok, "/elsewhere/session.key", sealed); err != nil || string(pt) != "secret" {
		t.Fatalf("Unseal = %q, %v", pt, err)
	}
	if _, err := hsmkeys.Unseal(tok, "/state/server-key.asc", sealed); err == nil {
		t.Fatal("a sealed session key opened as the server key")
	}
	p := filepath.Join(t.TempDir(), "session.key")
	os.WriteFile(p, sealed, 0o600)
	if _, err := hsmkeys.ReadStateFile(nil, p); err == nil || !strings.Contains(err.Error(), "HSM_MODULE") {
		t.Fatalf("reading a sealed file without an HSM = %v", err)
	}
	if pt, err := hsmkeys.ReadStateFile(tok, p); err != nil || string(pt) != "secret" {
		t.Fatalf("ReadStateFile = %q, %v", pt, err)
	}
}

func TestPINSources(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "pin"), []byte("1234\n"), 0o600)
	t.Setenv("KTS_TEST_PIN", "5678")
	for _, tc := range []struct {
		cfg  config.Config
		want string
		err  string
	}{
		{config.Config{HSMPINFile: "pin"}, "1234", ""},
		{config.Config{HSMPINEnv: "KTS_TEST_PIN"}, "5678", ""},
		{config.Config{HSMPINScript: "/bin/echo 9012"}, "9012", ""},
		{config.Config{HSMPINEnv: "KTS_TEST_NO_SUCH_PIN"}, "", "not set"},
		{config.Config{HSMPINFile: "missing"}, "", "HSM_PIN_FILE"},
		{config.Config{HSMPINScript: "/bin/false"}, "", "HSM_PIN_SCRIPT"},
	} {
		pin, err := hsmkeys.PIN(dir, tc.cfg)
		if pin != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("PIN(%+v) = %q, %v", tc.cfg, pin, err)
		}
	}
}

func newFileKeyring(t *testing.T) *keyring.FileKeyring {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keyring.json")
	if err := keyring.CreateFile(p); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
