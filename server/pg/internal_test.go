package pg

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":   `'127.0.0.1'`,
		`/srv/it's`:   `'/srv/it''s'`,
		`C:\x`:        `'C:\\x'`,
		"line\nbreak": `'line\nbreak'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	old := "old 1\nold 2\n"
	if err := os.WriteFile(path, []byte(old+"new 1\nnew 2\nnew 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := logTail(path, int64(len(old)), 2); got != "new 2\nnew 3" {
		t.Errorf("tail since offset = %q", got)
	}
	if got := logTail(path, 1<<20, 2); got != "new 2\nnew 3" {
		t.Errorf("tail with nothing new = %q", got)
	}
	if got := logTail(path, 0, 10); strings.Count(got, "\n") != 4 {
		t.Errorf("whole tail = %q", got)
	}
}

func TestSettings(t *testing.T) {
	i := &Instance{Host: "127.0.0.1", Port: 5000, NoSync: true}
	got := map[string]string{}
	for _, s := range i.settings("/data", nil) {
		got[s.name] = s.value
	}
	for k, want := range map[string]string{
		"port":                    "5000",
		"fsync":                   "off",
		"unix_socket_directories": "'/data'",
		"listen_addresses":        "'127.0.0.1'",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}

func settingsMap(i *Instance, up *upstream) map[string]string {
	got := map[string]string{}
	for _, s := range i.settings("/data", up) {
		got[s.name] = s.value
	}
	return got
}

func TestReplicationSettings(t *testing.T) {
	active := settingsMap(&Instance{Standby: "kts_passive"}, nil)
	for k, want := range map[string]string{
		"wal_level":                 "replica",
		"max_wal_senders":           "10",
		"max_replication_slots":     "10",
		"hot_standby":               "on",
		"synchronous_commit":        "remote_apply",
		"synchronous_standby_names": `'FIRST 1 ("kts_passive")'`,
	} {
		if active[k] != want {
			t.Errorf("active: %s = %q, want %q", k, active[k], want)
		}
	}
	if _, ok := active["primary_conninfo"]; ok {
		t.Error("active sets primary_conninfo")
	}
	if _, ok := settingsMap(&Instance{}, nil)["synchronous_standby_names"]; ok {
		t.Error("active without Standby sets synchronous_standby_names")
	}

	up := &upstream{host: "db.example", port: 5432, user: "kts_replication"}
	passive := settingsMap(&Instance{Role: RolePassive, Standby: "it's"}, up)
	for k, want := range map[string]string{
		"primary_conninfo": `'host=''db.example'' port=5432 user=''kts_replication'' ` +
			`passfile=''/data/replication.pgpass'' application_name=''it\\''s'' connect_timeout=10'`,
		"primary_slot_name": "'kts_passive'",
		"hot_standby":       "on",
		"max_wal_senders":   active["max_wal_senders"],
	} {
		if passive[k] != want {
			t.Errorf("passive: %s = %s, want %s", k, passive[k], want)
		}
	}
	for _, k := range []string{"synchronous_standby_names", "synchronous_commit"} {
		if _, ok := passive[k]; ok {
			t.Errorf("passive sets %s", k)
		}
	}
}

func TestHBA(t *testing.T) {
	hba := (&Instance{ReplicationFrom: []string{"10.0.0.7/32"}}).hbaConf()
	if !strings.Contains(hba, "host    replication  \"kts_replication\"  10.0.0.7/32  scram-sha-256\n") ||
		strings.Count(hba, "host    replication") != 1 {
		t.Errorf("hba with ReplicationFrom:\n%s", hba)
	}
	hba = (&Instance{}).hbaConf()
	for _, want := range []string{
		"host    replication  \"kts_replication\"  127.0.0.1/32  scram-sha-256\n",
		"host    replication  \"kts_replication\"  ::1/128  scram-sha-256\n",
	} {
		if !strings.Contains(hba, want) {
			t.Errorf("default hba lacks %q:\n%s", want, hba)
		}
	}
}

func TestHBAClients(t *testing.T) {
	// By default, and with the loopback networks, the file is the same:
	// every role may connect over loopback already.
	def := (&Instance{}).hbaConf()
	if got := (&Instance{ClientsFrom: []string{"127.0.0.1/32", "::1/128"}}).hbaConf(); got != def {
		t.Errorf("hba with loopback ClientsFrom differs from the default:\n%s", got)
	}
	if strings.Contains(def, `"keytrustee"`) {
		t.Errorf("default hba names the database user:\n%s", def)
	}

	// What the operator sets for a member: the user from anywhere, next
	// to the replication lines, and nobody else.
	i := &Instance{User: "keytrustee", ReplicationFrom: []string{"0.0.0.0/0", "::/0"},
		ClientsFrom: []string{"0.0.0.0/0", "::/0", "127.0.0.1/32"}}
	hba := i.hbaConf()
	want := `# Managed by Trustee: rewritten on every start. Local changes are lost.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
host    replication  "kts_replication"  0.0.0.0/0  scram-sha-256
host    replication  "kts_replication"  ::/0  scram-sha-256
host    all          "keytrustee"  0.0.0.0/0  scram-sha-256
host    all          "keytrustee"  ::/0  scram-sha-256
`
	if hba != want {
		t.Errorf("hba with ClientsFrom:\n%s\nwant\n%s", hba, want)
	}
	if err := i.checkClients(); err != nil {
		t.Errorf("checkClients: %v", err)
	}
	other := (&Instance{User: "kts_owner", ClientsFrom: []string{"10.244.0.0/16"}}).hbaConf()
	if !strings.HasSuffix(other, "host    all          \"kts_owner\"  10.244.0.0/16  scram-sha-256\n") {
		t.Errorf("hba for user kts_owner:\n%s", other)
	}

	for _, bad := range []struct {
		i    Instance
		want string
	}{
		{Instance{ClientsFrom: []string{"10.0.0.7"}}, `client network "10.0.0.7" is not a network in CIDR notation`},
		{Instance{ClientsFrom: []string{"10.0.0.7/8"}}, "write 10.0.0.0/8, or 10.0.0.7/32 for the one address"},
		{Instance{User: `a"b`, ClientsFrom: []string{"10.0.0.0/8"}}, `database user "a\"b" cannot be admitted`},
	} {
		if err := bad.i.checkClients(); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("checkClients(%v): %v, want %q", bad.i.ClientsFrom, err, bad.want)
		}
	}
	// A user pg_hba.conf cannot name is fine while only loopback admits it.
	if err := (&Instance{User: `a"b`, ClientsFrom: []string{"127.0.0.1/32"}}).checkClients(); err != nil {
		t.Errorf("loopback only: %v", err)
	}
}

func TestPassLine(t *testing.T) {
	u := &upstream{host: "::1", port: 5432, user: "kts_replication"}
	line := u.passLine(`p:a\s s`)
	if line != `\:\:1:5432:replication:kts_replication:p\:a\\s s`+"\n" {
		t.Errorf("passLine = %q", line)
	}
	f := splitPassLine(strings.TrimSuffix(line, "\n"))
	if len(f) != 5 || f[0] != "::1" || f[1] != "5432" || f[3] != "kts_replication" || f[4] != `p:a\s s` {
		t.Errorf("splitPassLine = %q", f)
	}
}

func TestScramVerifier(t *testing.T) {
	v, err := scramVerifier("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`).MatchString(v) {
		t.Errorf("verifier %q has the wrong form", v)
	}
	if w, _ := scramVerifier("pw"); w == v {
		t.Error("two verifiers share a salt")
	}
}
