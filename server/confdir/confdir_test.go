package confdir

import (
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
