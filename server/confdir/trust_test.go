package confdir

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/fileperm"
	"trustee.dev/trustee/server/openpgp"
)

func TestTrustedNamesProgramsNotTheirArguments(t *testing.T) {
	cfg := config.Default("kts01.example.com")
	cfg.SSLPrivateKeyPasswordScript = "/usr/local/bin/tls-pw --password hunter2"
	cfg.HSMModule = "/usr/lib/softhsm/libsofthsm2.so"
	cfg.AdminCAFile = "/etc/kts/admin-ca/ca.crt"
	got := map[string]string{}
	for _, f := range Trusted("/var/lib/keytrustee", cfg) {
		got[f.Key] = f.Path
	}
	for key, want := range map[string]string{
		config.FileName:                   "/var/lib/keytrustee/keytrustee.conf",
		"SSL_PRIVATE_KEY":                 "/var/lib/keytrustee/.ssl/ssl-cert-keytrustee-pk.pem",
		"SERVER_KEY":                      "/var/lib/keytrustee/server-key.asc",
		"SSL_PRIVATE_KEY_PASSWORD_SCRIPT": "/usr/local/bin/tls-pw",
		"HSM_MODULE":                      "/usr/lib/softhsm/libsofthsm2.so",
		"ADMIN_CA_FILE":                   "/etc/kts/admin-ca/ca.crt",
	} {
		if got[key] != want {
			t.Errorf("%s: %q, want %q", key, got[key], want)
		}
	}
	if _, ok := got["HSM_PIN_SCRIPT"]; ok {
		t.Error("an unset script is listed")
	}
}

// TestOpenRefusesWhatAnotherAccountCanChange runs as root with the
// PostgreSQL account as the other account.
func TestOpenRefusesWhatAnotherAccountCanChange(t *testing.T) {
	uid, gid := otherAccount(t)
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Init(dir, InitOptions{Hostname: "kts01.example.com", KeyType: openpgp.Ed25519}); err != nil {
		t.Fatal(err)
	}
	if err := CheckTrusted(dir, mustLoad(t, dir)); err != nil {
		t.Fatalf("a state directory made by Init: %v", err)
	}
	key := filepath.Join(dir, config.DefaultSessionKey)
	if err := os.Chown(key, uid, gid); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	var p fileperm.Problem
	if !errors.Is(err, fileperm.ErrUntrusted) || !errors.As(err, &p) || p.File.Path != key || p.File.What != "SESSION_KEY" ||
		!strings.Contains(err.Error(), `account "postgres"`) {
		t.Fatalf("Open with a session key postgres owns: %v", err)
	}
}

// TestInitTakesBackTheStateDirectory: run by root, Init takes back a state
// directory another account owns (the PostgreSQL account, in older
// versions) and says so; the permission to pass through it stays.
func TestInitTakesBackTheStateDirectory(t *testing.T) {
	uid, gid := otherAccount(t)
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Init(dir, InitOptions{Hostname: "kts01.example.com", KeyType: openpgp.Ed25519}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		t.Fatal(err)
	}
	res, err := Init(dir, InitOptions{Hostname: "kts01.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], `was owned by OS account "postgres" (uid `+strconv.Itoa(uid)+")") {
		t.Errorf("warnings %q; want one saying the directory was taken back", res.Warnings)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o710 {
		t.Errorf("uid %d mode %v; want root's, 0710", st.Uid, fi.Mode().Perm())
	}
	if err := CheckTrusted(dir, mustLoad(t, dir)); err != nil {
		t.Error(err)
	}
}

func otherAccount(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving files to another account needs root")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres account: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func mustLoad(t *testing.T, dir string) config.Config {
	t.Helper()
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
