package confdir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/openpgp"
)

func TestInitCreatesOnceAndOpens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	res, err := Init(dir, InitOptions{Hostname: "kts01.example.com", KeyType: openpgp.Ed25519, DBPort: 12345})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Created) != 8 || len(res.Warnings) != 1 || !strings.HasPrefix(res.ServerID, "255E/") {
		t.Fatalf("first Init: %+v", res)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v", fi.Mode().Perm(), err)
	}
	key, _ := os.ReadFile(filepath.Join(dir, "server-key.asc"))
	again, err := Init(dir, InitOptions{Hostname: "other", KeyType: openpgp.RSA4096})
	if err != nil || len(again.Created) != 0 || again.ServerID != res.ServerID {
		t.Fatalf("second Init: %+v, %v", again, err)
	}
	if key2, _ := os.ReadFile(filepath.Join(dir, "server-key.asc")); string(key2) != string(key) {
		t.Fatal("second Init replaced the server key")
	}
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config.DBPort != 12345 || st.ServerKey.Public().ID() != res.ServerID || !strings.Contains(st.DSN(), ":12345/keytrustee") {
		t.Fatalf("Open: port %d, id %s, dsn has password? %v", st.Config.DBPort, st.ServerKey.Public().ID(), strings.Contains(st.DSN(), st.DBPassword))
	}
}

func TestOpenExplainsWhatIsMissing(t *testing.T) {
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "kts init") {
		t.Fatalf("Open of an empty dir: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Init(dir, InitOptions{Hostname: "h", KeyType: openpgp.Ed25519}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "session.key"), []byte("short\n"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "session.key") {
		t.Fatalf("Open with a short session key: %v", err)
	}
	os.Remove(filepath.Join(dir, "deposit-keyring.json"))
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "kts init") {
		t.Fatalf("Open without keyring: %v", err)
	}
}

func TestInitFromActive(t *testing.T) {
	root := t.TempDir()
	active, passive := filepath.Join(root, "active"), filepath.Join(root, "passive")
	a, err := Init(active, InitOptions{Hostname: "kts01.example.com", KeyType: openpgp.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InitFromActive(active, passive, PassiveOptions{}); err == nil || !strings.Contains(err.Error(), "--role active") {
		t.Fatalf("passive made from an unpaired active: %v", err)
	}
	cfg, _ := config.Load(active)
	cfg.StandbyName = "kts_passive"
	if err := cfg.Save(active); err != nil {
		t.Fatal(err)
	}
	o := PassiveOptions{Hostname: "kts02.example.com", ListenAddress: "127.0.0.1:11372", DBPort: 11382,
		ActiveURL: "https://kts01.example.com:11371", ActiveDB: "kts01.example.com:11381"}
	p, err := InitFromActive(active, passive, o)
	if err != nil {
		t.Fatal(err)
	}
	if p.ServerID != a.ServerID {
		t.Fatalf("passive identity %s, active %s: the pair must share one", p.ServerID, a.ServerID)
	}
	st, err := Open(passive)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config.Role != "passive" || st.Config.DBPort != 11382 || st.Config.ActiveURL != o.ActiveURL {
		t.Fatalf("passive config: %+v", st.Config)
	}
	for _, same := range []string{"deposit-keyring.json", "session.key", "db.password", "replication.password"} {
		x, _ := os.ReadFile(filepath.Join(active, same))
		y, _ := os.ReadFile(filepath.Join(passive, same))
		if string(x) != string(y) || len(x) == 0 {
			t.Errorf("%s differs between the pair", same)
		}
	}
	ac, _ := os.ReadFile(filepath.Join(active, ".ssl", "ssl-cert-keytrustee.pem"))
	pc, _ := os.ReadFile(filepath.Join(passive, ".ssl", "ssl-cert-keytrustee.pem"))
	ca, _ := os.ReadFile(filepath.Join(passive, "active-ca.pem"))
	if string(ac) == string(pc) || string(ca) != string(ac) {
		t.Fatal("the passive must have its own certificate and the active's as ACTIVE_CA")
	}
	if _, err := os.Stat(filepath.Join(passive, ".ssl", "ssl-cert-keytrustee-pk.pem")); err != nil {
		t.Fatal(err)
	}
	// Again: nothing changes.
	again, err := InitFromActive(active, passive, o)
	if err != nil || len(again.Created) != 0 {
		t.Fatalf("second InitFromActive: %+v %v", again, err)
	}
	// A passive's directory is no source.
	if _, err := InitFromActive(passive, filepath.Join(root, "third"), o); err == nil {
		t.Fatal("made a passive from a passive")
	}
}

func TestPassiveConfigKeepsTheActiveHostsSettings(t *testing.T) {
	base := config.Default("kts01")
	base.Role, base.StandbyName, base.SMTPHost, base.ExternalURL = config.RoleActive, "kts_passive", "mail.example.com", "https://kts.example.com"
	o := PassiveOptions{Hostname: "kts02", ListenAddress: ":11371", DBPort: 11381, ActiveURL: "https://kts01:11371", ActiveDB: "kts01:11381"}
	for _, tc := range []struct {
		name     string
		active   func(*config.Config)
		o        func(*PassiveOptions)
		want     func(*config.Config)
		warnings []string
	}{
		{"defaults", func(*config.Config) {}, func(*PassiveOptions) {}, func(*config.Config) {}, nil},
		{"admin API on the active, none asked for", func(c *config.Config) { c.AdminListenAddress, c.AdminCAFile = ":11373", "admin-ca.pem" },
			func(*PassiveOptions) {}, func(c *config.Config) { c.AdminCAFile = "admin-ca.pem" }, []string{"ADMIN_LISTEN_ADDRESS (\":11373\")", "--admin-listen"}},
		{"admin API on a port of the passive's", func(c *config.Config) { c.AdminListenAddress, c.AdminCAFile = ":11373", "admin-ca.pem" },
			func(o *PassiveOptions) { o.AdminListenAddress = "127.0.0.1:11374" },
			func(c *config.Config) { c.AdminListenAddress, c.AdminCAFile = "127.0.0.1:11374", "admin-ca.pem" }, nil},
		{"the active's database addresses and paths", func(c *config.Config) {
			c.DBHost, c.DBListenAddresses, c.DBDataDir, c.DBSocketDir = "10.0.0.1", "10.0.0.1,127.0.0.1", "/srv/kts/db", "/run/kts"
		}, func(*PassiveOptions) {}, func(*config.Config) {}, []string{"DB_HOST (\"10.0.0.1\")", "DB_LISTEN_ADDRESSES", "DB_DATA_DIR (\"/srv/kts/db\")", "DB_SOCKET_DIR (\"/run/kts\")"}},
		{"relative paths stay", func(c *config.Config) { c.DBDataDir, c.DBSocketDir = "pgdata", "run" },
			func(*PassiveOptions) {}, func(c *config.Config) { c.DBDataDir, c.DBSocketDir = "pgdata", "run" }, nil},
		{"the active's TLS", func(c *config.Config) {
			c.SSLCertificate, c.SSLPrivateKey, c.SSLCertificateChain, c.SSLPrivateKeyPasswordScript = "/etc/kts/cert.pem", "/etc/kts/key.pem", "/etc/kts/chain.pem", "/usr/local/bin/pw"
		}, func(*PassiveOptions) {}, func(*config.Config) {}, nil},
		{"its listen address and port", func(c *config.Config) { c.ListenAddress, c.DBPort = "127.0.0.1:20000", 20001 },
			func(o *PassiveOptions) { o.ListenAddress, o.DBPort = "127.0.0.1:20002", 20003 },
			func(c *config.Config) { c.ListenAddress, c.DBPort = "127.0.0.1:20002", 20003 }, nil},
	} {
		active := base
		tc.active(&active)
		po := o
		tc.o(&po)
		want := base
		want.Hostname, want.Role, want.ListenAddress, want.DBPort = po.Hostname, config.RolePassive, po.ListenAddress, po.DBPort
		want.ActiveURL, want.ActiveDB, want.ActiveCA = po.ActiveURL, po.ActiveDB, "active-ca.pem"
		tc.want(&want)
		got, warnings := PassiveConfig(active, po)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			t.Errorf("%s: PassiveConfig =\n%+v\nwant\n%+v", tc.name, got, want)
		}
		joined := strings.Join(warnings, "\n")
		if (len(warnings) == 0) != (len(tc.warnings) == 0) {
			t.Errorf("%s: warnings %q, want about %q", tc.name, warnings, tc.warnings)
		}
		for _, w := range tc.warnings {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: warnings %q lack %q", tc.name, warnings, w)
			}
		}
	}
}

// TestInitFromActiveOnOneHost makes a pair's passive on the active's host:
// it does not take the active's admin API port; given its own, it has
// the active's admin CA.
func TestInitFromActiveOnOneHost(t *testing.T) {
	root := t.TempDir()
	active := filepath.Join(root, "active")
	if _, err := Init(active, InitOptions{Hostname: "localhost", KeyType: openpgp.Ed25519}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(active)
	cfg.StandbyName, cfg.AdminListenAddress, cfg.AdminCAFile = "kts_passive", "127.0.0.1:11373", "admin-ca.pem"
	os.WriteFile(filepath.Join(active, "admin-ca.pem"), []byte("CA"), 0o600)
	if err := cfg.Save(active); err != nil {
		t.Fatal(err)
	}
	o := PassiveOptions{Hostname: "localhost", ListenAddress: "127.0.0.1:11372", DBPort: 11382,
		ActiveURL: "https://127.0.0.1:11371", ActiveDB: "127.0.0.1:11381"}
	res, err := InitFromActive(active, filepath.Join(root, "p1"), o)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := config.Load(filepath.Join(root, "p1"))
	if p1.AdminListenAddress != "" || !strings.Contains(strings.Join(res.Warnings, "\n"), "--admin-listen") {
		t.Fatalf("the passive's ADMIN_LISTEN_ADDRESS is %q; warnings %q", p1.AdminListenAddress, res.Warnings)
	}
	o.AdminListenAddress = "127.0.0.1:11374"
	if _, err := InitFromActive(active, filepath.Join(root, "p2"), o); err != nil {
		t.Fatal(err)
	}
	p2, _ := config.Load(filepath.Join(root, "p2"))
	ca, _ := os.ReadFile(filepath.Join(root, "p2", "admin-ca.pem"))
	if p2.AdminListenAddress != "127.0.0.1:11374" || string(ca) != "CA" {
		t.Fatalf("the passive's ADMIN_LISTEN_ADDRESS is %q, its admin CA %q", p2.AdminListenAddress, ca)
	}
}
