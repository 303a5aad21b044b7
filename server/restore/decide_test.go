package restore

import (
	"strings"
	"testing"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/store"
)

func TestDecideFreshHostOrInPlace(t *testing.T) {
	const dir, data = "/srv/kts", "/srv/kts/db"
	for _, tc := range []struct {
		name      string
		found     Found
		wantFresh bool
		errSub    string
	}{
		{"an empty directory is a fresh host", Found{}, true, ""},
		{"a configured active with its cluster is restored in place", Found{HasConfig: true, Role: config.RoleActive, HasCluster: true}, false, ""},
		{"a single server's configuration has no role", Found{HasConfig: true, HasCluster: true}, false, ""},
		{"a passive is refused", Found{HasConfig: true, Role: config.RolePassive, HasCluster: true}, false, "is a passive's state directory"},
		{"a passive without its cluster is refused as a passive", Found{HasConfig: true, Role: config.RolePassive}, false, "restore on the active"},
		{"a cluster without a configuration is refused", Found{HasCluster: true}, true, "holds a database cluster (" + data + ") but no " + config.FileName},
		{"a configuration without its cluster is refused", Found{HasConfig: true, Role: config.RoleActive}, false, "`kts db init --confdir " + dir + "`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.found.Dir, tc.found.DataDir = dir, data
			fresh, err := decide(tc.found)
			if tc.errSub == "" && (err != nil || fresh != tc.wantFresh) {
				t.Fatalf("decide = %v, %v; want %v", fresh, err, tc.wantFresh)
			}
			if tc.errSub != "" && (err == nil || !strings.Contains(err.Error(), tc.errSub)) {
				t.Fatalf("decide error = %v; want one with %q", err, tc.errSub)
			}
		})
	}
}

func TestCheckKindRefusesTheOtherKind(t *testing.T) {
	for _, tc := range []struct {
		kind   backup.Kind
		client bool
		errSub string
	}{
		{backup.KindServer, false, ""},
		{backup.KindClient, true, ""},
		{backup.KindServer, true, "a.tar is a server backup; restore it without --client; nothing was changed"},
		{backup.KindClient, false, "a.tar is a client backup; restore it with --client DIR; nothing was changed"},
	} {
		err := checkKind(tc.kind, tc.client, "a.tar")
		if (err == nil) != (tc.errSub == "") || (err != nil && err.Error() != tc.errSub) {
			t.Errorf("checkKind(%s, client %v) = %v; want %q", tc.kind, tc.client, err, tc.errSub)
		}
	}
}

func TestResultLines(t *testing.T) {
	server := Result{Dir: "/srv/kts", Archive: "b.tar.gpg", Taken: "the backup of kts01 taken at 2026-01-02 03:04:05 UTC", DBName: "keytrustee",
		Contents: store.Contents{Organizations: 1, Clients: 2, Deposits: 3}}
	head := []string{
		`restored state directory /srv/kts and database "keytrustee" from the backup of kts01 taken at 2026-01-02 03:04:05 UTC`,
		"restored rows: 1 organizations, 2 clients, 3 deposits (6 in all)",
		"deposits made after the backup was taken are not restored",
	}
	withKey := server
	withKey.Fingerprint = "ABCD"
	fresh := server
	fresh.Fresh = true
	paired := fresh
	paired.WasPaired = config.RoleActive
	outside := server
	outside.Outside = []OutsideFile{{Path: "/etc/kts/tls.pem", Action: Write}, {Path: "/etc/kts/ca.pem", Action: Same}}
	startFresh := "start its database and the server now: kts db start --confdir /srv/kts, then kts server --confdir /srv/kts"
	for _, tc := range []struct {
		name string
		res  Result
		want []string
	}{
		{"client", Result{Client: true, Dir: "/home/c/.kts", Entries: 4, Taken: "the backup of c1 taken at T"},
			[]string{"restored client state directory /home/c/.kts (4 entries) from the backup of c1 taken at T"}},
		{"in place", server, append(head, "start (or restart) the kts server now")},
		{"with the server key", withKey, append(head, "server key ABCD", "start (or restart) the kts server now")},
		{"outside files", outside, append(head, "restored /etc/kts/tls.pem (outside the state directory)", "start (or restart) the kts server now")},
		{"fresh host", fresh, append(head, startFresh)},
		{"fresh host from a pair", paired, append(head, "the backup came from the active of a pair; it was restored as a standalone server, which takes writes on its own "+
			"(pair it again as docs/OPERATIONS.md says: with its server stopped, kts db init --role active here, then kts init --from-active on the other host)", startFresh)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.res.Lines()
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("Lines =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestDrillSummary(t *testing.T) {
	for _, tc := range []struct {
		res  DrillResult
		want string
	}{
		{DrillResult{}, "0 tables and 0 rows restored as they were backed up (0 organizations, 0 clients, 0 deposits)"},
		{DrillResult{Tables: []backup.TableSum{{Rows: 2}, {Rows: 5}}, Contents: store.Contents{Organizations: 1, Clients: 1, Deposits: 5}},
			"2 tables and 7 rows restored as they were backed up (1 organizations, 1 clients, 5 deposits)"},
	} {
		if got := tc.res.Summary(); got != tc.want {
			t.Errorf("Summary = %q; want %q", got, tc.want)
		}
	}
}
