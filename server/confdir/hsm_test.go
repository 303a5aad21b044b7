package confdir

import (
	"os"
	"path/filepath"
	"testing"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/openpgp"
)

// TestOpenUnsealedWithHSM opens a state directory whose identity is on a
// read-only mount, not sealed, and whose HSM holds the deposit keys only
// (HSM_SEAL_STATE false), as Kubernetes runs a member.
func TestOpenUnsealedWithHSM(t *testing.T) {
	token := hsmtest.NewToken(t)
	root := t.TempDir()
	files, err := NewIdentity(IdentityOptions{Hostname: "h", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	files["pin"] = []byte(token.PIN + "\n")
	mount := filepath.Join(root, "identity")
	os.Mkdir(mount, 0o755)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(mount, name), data, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(mount, 0o555)
	t.Cleanup(func() { os.Chmod(mount, 0o755) })
	dir := filepath.Join(root, "state")
	os.Mkdir(dir, 0o700)
	cfg := config.Default("h")
	cfg.ServerKey, cfg.Keyring = filepath.Join(mount, IdentityServerKey), filepath.Join(mount, IdentityKeyring)
	cfg.SessionKey, cfg.DBPasswordFile = filepath.Join(mount, IdentitySessionKey), filepath.Join(mount, IdentityDBPassword)
	cfg.HSMModule, cfg.HSMTokenLabel, cfg.HSMPINFile = token.Module, token.TokenLabel, filepath.Join(mount, "pin")
	cfg.HSMSealState = false
	if err := cfg.Save(dir); err != nil {
		t.Fatal(err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.HSM == nil {
		t.Fatal("the HSM is not open")
	}
	if _, err := st.HSM.GenerateKey("kts-kek-1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Keyring.SetCurrent(hsmkeys.ID("kts-kek-1")); err != nil {
		t.Fatal(err)
	}
	if id, _, err := st.Keyring.Wrap(t.Context(), make([]byte, 32), []byte("aad")); err != nil || id != "hsm:kts-kek-1" {
		t.Fatalf("Wrap = %q, %v", id, err)
	}
	for name := range files {
		if data, _ := os.ReadFile(filepath.Join(mount, name)); hsmkeys.IsSealed(data) {
			t.Errorf("%s was sealed", name)
		}
	}
}
