package contract

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInSync(t *testing.T) {
	for _, tc := range []struct {
		attached  bool
		syncState string
		want      bool
	}{
		{true, "sync", true},
		{true, "async", false},
		{true, "potential", false},
		{true, "quorum", false}, // the active names its standby FIRST 1: never quorum
		{true, "", false},
		{false, "sync", false},
		{false, "", false},
	} {
		if got := InSync(tc.attached, tc.syncState); got != tc.want {
			t.Errorf("InSync(%v, %q) = %v, want %v", tc.attached, tc.syncState, got, tc.want)
		}
	}
}

func TestRecordedActive(t *testing.T) {
	for _, tc := range []struct {
		value []byte
		want  string
	}{
		{nil, MemberA}, {[]byte("a"), MemberA}, {[]byte("b"), MemberB}, {[]byte("c"), MemberA}, {[]byte("b\n"), MemberA},
	} {
		if got := RecordedActive(tc.value); got != tc.want {
			t.Errorf("RecordedActive(%q) = %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestSetupArgs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup Setup
		want  string
	}{
		{"a backup Job's pod", Setup{Member: "passive", ConfigOnly: true, ConfigFile: "/etc/kts/backup.conf", Dir: "/var/lib/kts-backup"},
			"member setup --member passive --config-only --config /etc/kts/backup.conf --confdir /var/lib/kts-backup"},
		{"a passive member", Setup{Member: "passive", ConfigFile: "/c/b.conf", Dir: "/d", Name: "b", ActiveMarker: "/id/active-member"},
			"member setup --member passive --config /c/b.conf --confdir /d --name b --active-marker /id/active-member"},
		{"an active member", Setup{Member: "active", ConfigFile: "/c/a.conf", Dir: "/d", Name: "a", ActiveMarker: "/id/active-member", CreatedMarker: "/id/database-created"},
			"member setup --member active --config /c/a.conf --confdir /d --name a --active-marker /id/active-member --created-marker /id/database-created"},
		{"an active started from a backup", Setup{Member: "active", ConfigFile: "/c/a.conf", Dir: "/d", Name: "a", ActiveMarker: "/id/am", CreatedMarker: "/id/dc",
			RestoreArchive: "/bootstrap/archive/backup.tar", RestoreKey: "/bootstrap/key/secret.asc"},
			"member setup --member active --config /c/a.conf --confdir /d --name a --active-marker /id/am --created-marker /id/dc " +
				"--restore-archive /bootstrap/archive/backup.tar --restore-key /bootstrap/key/secret.asc"},
	} {
		if got := strings.Join(tc.setup.Args(), " "); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	if args := (Setup{Member: "active", ConfigFile: "a b.conf", Dir: "/d"}).Args(); !slices.Contains(args, "a b.conf") {
		t.Errorf("a path with a space is not one argument: %q", args)
	}
}

// TestReadyzJSON pins the bytes of the /readyz answers: the field names
// both sides read, in the order they always had.
func TestReadyzJSON(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	lag, receiver := 1.5, "streaming"
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"writable", Readyz{Status: "ready", Role: "active", Writable: true,
			Replication: Replication{Paired: true, Attached: true, SyncState: "sync", LagBytes: 8, CheckedAt: at}},
			`{"replication":{"paired":true,"attached":true,"sync_state":"sync","lag_bytes":8,"checked_at":"2026-12-07T10:00:00Z"},"role":"active","status":"ready","writable":true}`},
		{"refusing writes", Readyz{Status: "ready", Role: "active", WriteRefusal: "the passive server's database is not connected",
			Replication: Replication{Paired: true, CheckedAt: at, Err: "timeout"}},
			`{"replication":{"paired":true,"attached":false,"lag_bytes":0,"checked_at":"2026-12-07T10:00:00Z","error":"timeout"},"role":"active","status":"ready","writable":false,"write_refusal":"the passive server's database is not connected"}`},
		{"the passive", PassiveReadyz{Status: "ready", Role: "passive", ActiveURL: "https://a:11371", InRecovery: true, WALReceiver: &receiver, SecondsSinceLastReplayedCommit: &lag},
			`{"active_url":"https://a:11371","in_recovery":true,"role":"passive","seconds_since_last_replayed_commit":1.5,"status":"ready","wal_receiver":"streaming"}`},
		{"the passive, nothing replayed", PassiveReadyz{Status: "ready", Role: "passive", ActiveURL: "https://a:11371", InRecovery: true},
			`{"active_url":"https://a:11371","in_recovery":true,"role":"passive","seconds_since_last_replayed_commit":null,"status":"ready","wal_receiver":null}`},
	} {
		got, err := json.Marshal(tc.v)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %s, %v\nwant %s", tc.name, got, err, tc.want)
		}
	}
	var r Readyz
	if err := json.Unmarshal([]byte(`{"replication":{"attached":true,"sync_state":"sync"}}`), &r); err != nil || !InSync(r.Replication.Attached, r.Replication.SyncState) {
		t.Errorf("decoding the operator's view: %+v, %v", r, err)
	}
}
