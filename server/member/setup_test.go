//go:build unix

package member

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm/hsmtest"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/tlsconf"
)

// backupConf writes the files a backup Job's pod mounts (identity,
// replication password, TLS) and its keytrustee.conf for member, which
// names the member's PostgreSQL on another host, and returns the file.
func backupConf(t *testing.T, member string) string {
	t.Helper()
	dir := t.TempDir()
	identity, err := confdir.NewIdentity(confdir.IdentityOptions{Hostname: "localhost", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	files := identity
	for k, v := range confdir.NewReplicationSecret() {
		files[k] = v
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o440); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := tlsconf.GenerateSelfSigned([]string{"localhost"}, cert, key, time.Hour); err != nil {
		t.Fatal(err)
	}
	c := config.Default("kts-" + member + "-0.kts-members.ns.svc")
	c.SSLCertificate, c.SSLPrivateKey = cert, key
	c.ServerKey = filepath.Join(dir, confdir.IdentityServerKey)
	c.Keyring = filepath.Join(dir, confdir.IdentityKeyring)
	c.SessionKey = filepath.Join(dir, confdir.IdentitySessionKey)
	c.DBPasswordFile = filepath.Join(dir, confdir.IdentityDBPassword)
	c.ReplicationPasswordFile = filepath.Join(dir, confdir.ReplicationPassword)
	c.DBHost, c.DBPort = "kts-"+member+"-0.kts-members.ns.svc", 5432
	c.StandbyName = "kts_passive"
	c.DBSocketDir = filepath.Join(dir, "run", "postgresql")
	if member == config.RolePassive {
		c.Role, c.ActiveURL, c.ActiveCA, c.ActiveDB = config.RolePassive, "https://kts-active-0:11371", cert, "kts-active-0:5432"
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "backup.conf")
	if err := os.WriteFile(conf, data, 0o440); err != nil {
		t.Fatal(err)
	}
	return conf
}

// setup runs the setup s asks for (kts member setup with s.Args()).
func setup(s contract.Setup) (string, error) {
	var out bytes.Buffer
	err := Options{Setup: s, RunAs: pg.DefaultRunAs}.Run(context.Background(), &out)
	return out.String(), err
}

// TestMemberSetupConfigOnly installs a backup Job's configuration and
// checks its files as setup does, and sets up no PostgreSQL: no data
// directory, no socket directory, the state directory left to its owner.
func TestMemberSetupConfigOnly(t *testing.T) {
	conf := backupConf(t, config.RolePassive)
	state := filepath.Join(t.TempDir(), "state")
	socketDir := filepath.Join(filepath.Dir(conf), "run", "postgresql")

	configOnly := contract.Setup{Member: config.RolePassive, ConfigOnly: true, ConfigFile: conf, Dir: state}
	out, err := setup(configOnly)
	if err != nil {
		t.Fatalf("setup --config-only: %v\n%s", err, out)
	}
	for _, want := range []string{"installed " + conf + " as " + filepath.Join(state, config.FileName),
		"configuration only: nothing set up for PostgreSQL; the database is the passive's at kts-passive-0.kts-members.ns.svc:5432"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	installed, err := os.ReadFile(filepath.Join(state, config.FileName))
	if err != nil || !bytes.Equal(installed, must(os.ReadFile(conf))) {
		t.Fatalf("installed configuration: %v", err)
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v, %v; want mode 0700", fi, err)
	}
	entries, _ := os.ReadDir(state)
	if len(entries) != 1 {
		t.Fatalf("the state directory holds %v; want only %s", entries, config.FileName)
	}
	if _, err := os.Stat(filepath.Dir(socketDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("DB_SOCKET_DIR was made: %v", err)
	}
	if fi, err := os.Stat(state); err == nil && fi.Sys().(*syscall.Stat_t).Uid != uint32(os.Geteuid()) {
		t.Fatalf("the state directory was given to uid %d", fi.Sys().(*syscall.Stat_t).Uid)
	}

	// Again: nothing changes.
	out, err = setup(configOnly)
	if err != nil || !strings.Contains(out, "keytrustee.conf is up to date") {
		t.Fatalf("second setup --config-only: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(state); len(entries) != 1 {
		t.Fatalf("after a second run the state directory holds %v", entries)
	}
}

// TestMemberSetupConfigOnlyChecks refuses what setup refuses, before it
// installs anything.
func TestMemberSetupConfigOnlyChecks(t *testing.T) {
	conf := backupConf(t, config.RoleActive)
	missing := filepath.Join(filepath.Dir(conf), "missing.conf")
	data := bytes.Replace(must(os.ReadFile(conf)), []byte("/"+confdir.IdentitySessionKey+`"`), []byte(`/session-old.key"`), 1)
	if err := os.WriteFile(missing, data, 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	for _, tc := range []struct {
		member, conf string
		want         string
	}{
		{"passive", conf, `is the configuration of the active (ROLE "active"), but --member is passive`},
		{"backup", conf, `--member "backup": use active or passive`},
		{"active", missing, "SESSION_KEY: " + filepath.Join(filepath.Dir(conf), "session-old.key") + " does not exist"},
		{"active", filepath.Join(filepath.Dir(conf), "none.conf"), "--config: open"},
	} {
		s := contract.Setup{Member: tc.member, ConfigFile: tc.conf, ConfigOnly: true, Dir: state}
		out, err := setup(s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("setup %v: %v\n%s\nwant %q", s.Args(), err, out, tc.want)
		}
		if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("setup %v created %s", s.Args(), state)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestMemberSetupHSMChecks refuses, before it changes anything, a token
// that does not open with the PIN, an identity HSM_SEAL_STATE says is
// sealed but is not, and a passive with a cluster whose token lacks the
// deposit key. No message holds a PIN.
func TestMemberSetupHSMChecks(t *testing.T) {
	token := hsmtest.NewToken(t)
	variant := func(member, name, pin string, edit func(*config.Config)) string {
		conf := backupConf(t, member)
		dir := filepath.Dir(conf)
		c, err := config.Parse(must(os.ReadFile(conf)))
		if err != nil {
			t.Fatal(err)
		}
		c.HSMModule, c.HSMTokenLabel, c.HSMPINFile = token.Module, token.TokenLabel, filepath.Join(dir, "hsm.pin")
		c.HSMSealState = false
		if edit != nil {
			edit(&c)
		}
		if err := os.WriteFile(c.HSMPINFile, []byte(pin+"\n"), 0o440); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".conf")
		if err := os.WriteFile(p, must(json.MarshalIndent(c, "", "  ")), 0o440); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const wrongPIN = "0000000000000000"
	for _, tc := range []struct {
		member, conf string
		cluster      bool // the state directory holds a cluster
		want         []string
	}{
		{config.RoleActive, variant(config.RoleActive, "sealed", token.PIN, func(c *config.Config) { c.HSMSealState = true }), false,
			[]string{"HSM_SEAL_STATE is true, but setup seals nothing", "these are not sealed: ", "server-key.asc", "session.key", "deposit-keyring.json"}},
		{config.RoleActive, variant(config.RoleActive, "wrong-pin", wrongPIN, nil), false,
			[]string{"the HSM (module " + token.Module + `, token "` + token.TokenLabel + `")`}},
		{config.RolePassive, variant(config.RolePassive, "no-key", token.PIN, nil), true,
			[]string{`has no key "kts-kek-1": a passive uses the active's deposit keys`}},
	} {
		state := filepath.Join(t.TempDir(), "state")
		if tc.cluster {
			if err := os.MkdirAll(filepath.Join(state, "db"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(state, "db", "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		out, err := setup(contract.Setup{Member: tc.member, ConfigFile: tc.conf, Dir: state})
		t.Logf("setup with %s: %v", filepath.Base(tc.conf), err)
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("setup with %s: %v\n%s\nwant %q", filepath.Base(tc.conf), err, out, want)
			}
		}
		if err != nil && (strings.Contains(err.Error(), token.PIN) || strings.Contains(err.Error(), wrongPIN)) {
			t.Errorf("setup with %s: the error holds a PIN: %v", filepath.Base(tc.conf), err)
		}
		if _, err := os.Stat(filepath.Join(state, config.FileName)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("setup with %s installed its configuration", filepath.Base(tc.conf))
		}
	}
}
