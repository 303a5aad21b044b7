package cmd

import (
	"testing"

	"trustee.dev/trustee/server/member"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/pg"
)

// TestMemberSetupParsesTheOperatorsArguments: the arguments the operator
// builds (contract.Setup.Args) parse back into what it asked for.
func TestMemberSetupParsesTheOperatorsArguments(t *testing.T) {
	for _, want := range []contract.Setup{
		{Member: "passive", ConfigOnly: true, ConfigFile: "/etc/kts/backup.conf", Dir: "/var/lib/kts-backup"},
		{Member: "passive", ConfigFile: "/c/b.conf", Dir: "/d", Name: "b", ActiveMarker: "/id/active-member"},
		{Member: "active", ConfigFile: "/c/a.conf", Dir: "/d", Name: "a", ActiveMarker: "/id/active-member", CreatedMarker: "/id/database-created",
			RestoreArchive: "/bootstrap/archive/backup.tar", RestoreKey: "/bootstrap/key/secret.asc"},
	} {
		var o member.Options
		cmd := memberSetupCommand(&o)
		args := want.Args()
		if args[0] != newMemberCommand().Name() || args[1] != cmd.Name() {
			t.Fatalf("%q does not name kts member setup", args)
		}
		if err := cmd.ParseFlags(args[2:]); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if o.Setup != want || o.RunAs != pg.DefaultRunAs {
			t.Errorf("%q parsed into %+v, want %+v", args, o, want)
		}
	}
}
