package backupjob

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
)

func TestRecipientChoice(t *testing.T) {
	for _, tc := range []struct {
		cleartext  bool
		recipient  string
		wantLookup bool
		errSub     string
	}{
		{false, "admin@example.com", true, ""},
		{true, "", false, ""},
		{true, "admin@example.com", false, "--cleartext and --gpg-recipient contradict each other; choose one"},
		{false, "", false, "no --gpg-recipient: backups hold every key"},
	} {
		lookup, err := recipientChoice(tc.cleartext, tc.recipient)
		if lookup != tc.wantLookup || (err == nil) != (tc.errSub == "") || (err != nil && !strings.Contains(err.Error(), tc.errSub)) {
			t.Errorf("recipientChoice(%v, %q) = %v, %v; want %v, %q", tc.cleartext, tc.recipient, lookup, err, tc.wantLookup, tc.errSub)
		}
	}
}

func TestHostNamesTheArchive(t *testing.T) {
	named := func(h string, err error) func() (string, error) { return func() (string, error) { return h, err } }
	for _, tc := range []struct {
		configured string
		hostname   func() (string, error)
		want       string
	}{
		{"kts01", named("node7", nil), "kts01"},
		{"", named("node7", nil), "node7"},
		{"", named("", nil), "localhost"},
		{"", named("node7", errors.New("no name")), "localhost"},
	} {
		if got := host(tc.configured, tc.hostname); got != tc.want {
			t.Errorf("host(%q) = %q; want %q", tc.configured, got, tc.want)
		}
	}
}

func TestStateSkipLeavesOutWhatIsNotState(t *testing.T) {
	const dir = "/srv/kts"
	inside := config.Config{DBDataDir: "db"}
	nested := config.Config{DBDataDir: "/srv/kts/pg/data"}
	outside := config.Config{DBDataDir: "/var/lib/kts-db"}
	for _, tc := range []struct {
		cfg  config.Config
		rel  string
		want bool
	}{
		{inside, "db", true},
		{inside, "standby-caught-up", true},
		{inside, "audit", true},
		{inside, "keytrustee.conf", false},
		{inside, "db.conf", false},
		{inside, "audit/2026.jsonl", false}, // only the journal directory itself is named; the archive walk skips below it
		{nested, "pg/data", true},
		{nested, "db", false},
		{outside, "db", false},
	} {
		if got := stateSkip(dir, tc.cfg)(tc.rel); got != tc.want {
			t.Errorf("stateSkip(DB_DATA_DIR %s)(%q) = %v; want %v", tc.cfg.DBDataDir, tc.rel, got, tc.want)
		}
	}
}

func TestEncryptionDetail(t *testing.T) {
	e, err := openpgp.NewEntity("Key Admin", "", "admin@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		to   *openpgp.Entity
		want string
	}{
		{"cleartext", nil, "cleartext"},
		{"a recipient", e, fmt.Sprintf("to %X", e.PrimaryKey.Fingerprint)},
	} {
		if got := encryption(tc.to); got != tc.want {
			t.Errorf("%s: encryption = %q; want %q", tc.name, got, tc.want)
		}
	}
}

func TestResultLines(t *testing.T) {
	made := backup.Result{Path: "/srv/kts_bak_kts01_2026.tar", Size: 2048, DumpSize: 1000}
	server := Result{Result: made, Kind: backup.KindServer, StateDir: "/srv/kts"}
	rolled := server
	rolled.Removed = []string{"/srv/old1.tar", "/srv/old2.tar"}
	rolled.Drilled = "restore drill: ok, 3 tables"
	client := Result{Result: made, Kind: backup.KindClient, StateDir: "/home/c/.kts"}
	warning := "WARNING: the archive is not encrypted and holds every key of the server; keep it safe"
	for _, tc := range []struct {
		name string
		res  Result
		want []string
	}{
		{"server, cleartext", server, []string{"backed up state directory /srv/kts and database (1000 bytes of SQL)", warning,
			"wrote /srv/kts_bak_kts01_2026.tar (2048 bytes)"}},
		{"rolled after a drill", rolled, []string{"backed up state directory /srv/kts and database (1000 bytes of SQL)", warning,
			"removed older backup /srv/old1.tar", "removed older backup /srv/old2.tar", "wrote /srv/kts_bak_kts01_2026.tar (2048 bytes)", "restore drill: ok, 3 tables"}},
		{"client", client, []string{"backed up state directory /home/c/.kts", warning, "wrote /srv/kts_bak_kts01_2026.tar (2048 bytes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.res.Lines(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Lines =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
