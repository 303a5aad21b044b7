package confdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/keyring"
	"trustee.dev/trustee/server/openpgp"
)

func TestNewIdentity(t *testing.T) {
	files, err := NewIdentity(IdentityOptions{Hostname: "kts.example.com", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(IdentityKeys) {
		t.Fatalf("keys %v, want %v", len(files), IdentityKeys)
	}
	key, err := openpgp.ReadPrivate(files[IdentityServerKey])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key.Public().ID(), "255E/") || !strings.Contains(string(files[IdentityServerKey]), "PGP PRIVATE KEY") {
		t.Errorf("server key %s", key.Public().ID())
	}
	if _, err := keyring.ParseFile(files[IdentityKeyring], IdentityKeyring); err != nil {
		t.Error(err)
	}
	if _, err := auth.NewTokens([]byte(strings.TrimSpace(string(files[IdentitySessionKey])))); err != nil {
		t.Error(err)
	}
	other, err := NewIdentity(IdentityOptions{Name: "Other", Email: "o@example.com", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range IdentityKeys {
		if string(files[k]) == string(other[k]) {
			t.Errorf("two identities share %s", k)
		}
	}
	for _, k := range []string{IdentitySessionKey, IdentityDBPassword} {
		if s := strings.TrimSpace(string(files[k])); len(s) < 32 || !strings.HasSuffix(string(files[k]), "\n") {
			t.Errorf("%s = %q", k, files[k])
		}
	}
	if _, err := NewIdentity(IdentityOptions{Name: "only a name"}); err == nil {
		t.Error("an identity without host name or e-mail address")
	}
	repl := NewReplicationSecret()
	if len(repl) != 1 || len(strings.TrimSpace(string(repl[ReplicationPassword]))) < 32 {
		t.Errorf("replication secret %v", repl)
	}
	if string(NewReplicationSecret()[ReplicationPassword]) == string(repl[ReplicationPassword]) {
		t.Error("two replication secrets are the same")
	}
}

// TestIdentityOnMounts opens a state directory whose configuration names
// the identity on read-only, group-readable files elsewhere, as Kubernetes
// mounts a Secret.
func TestIdentityOnMounts(t *testing.T) {
	root := t.TempDir()
	files, err := NewIdentity(IdentityOptions{Hostname: "h", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
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
	cfg.SSLCertificate, cfg.SSLPrivateKey = filepath.Join(mount, "tls.crt"), filepath.Join(mount, "tls.key")
	if err := cfg.Save(dir); err != nil {
		t.Fatal(err)
	}
	err = CheckFiles(dir, cfg)
	if err == nil || !strings.Contains(err.Error(), `SSL_CERTIFICATE: `+mount+`/tls.crt does not exist: the Secret mounted at `+mount+` lacks the key "tls.crt"`) ||
		!strings.Contains(err.Error(), "SSL_PRIVATE_KEY:") || strings.Contains(err.Error(), "SERVER_KEY") {
		t.Errorf("CheckFiles without the certificate: %v", err)
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.DBPassword != strings.TrimSpace(string(files[IdentityDBPassword])) {
		t.Error("the database password was not read from the mount")
	}
	for name := range files {
		if fi, _ := os.Stat(filepath.Join(mount, name)); fi.Mode().Perm() != 0o440 {
			t.Errorf("%s is now %v", name, fi.Mode().Perm())
		}
	}

	cfg.SSLCertificate, cfg.SSLPrivateKey = config.DefaultSSLCertificate, config.DefaultSSLPrivateKey
	cfg.Role, cfg.StandbyName, cfg.ActiveURL, cfg.ActiveDB, cfg.ActiveCA = config.RolePassive, "kts_passive", "https://a:1", "a:2", "relative-ca.pem"
	err = CheckFiles(dir, cfg)
	for _, want := range []string{"SSL_CERTIFICATE: " + dir + "/.ssl/ssl-cert-keytrustee.pem does not exist", "REPLICATION_PASSWORD_FILE:", "ACTIVE_CA: " + dir + "/relative-ca.pem does not exist"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckFiles of a passive: %v; want %q", err, want)
		}
	}
}
