package member

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// fakeCluster is a cluster as setup observes it.
type fakeCluster struct{ initialized, standby bool }

func (c fakeCluster) Initialized() bool { return c.initialized }
func (c fakeCluster) IsStandby() bool   { return c.standby }

var (
	noCluster = fakeCluster{}
	primary   = fakeCluster{initialized: true}
	standby   = fakeCluster{initialized: true, standby: true}
)

// Markers as readMarker observes them.
var (
	noMarker     = marker{}
	absent       = marker{Path: "/identity/m"}
	unreadable   = marker{Path: "/identity/m", Present: true, Err: fs.ErrPermission}
	unreachable  = marker{Path: "/identity/m", Err: fs.ErrPermission}
	markerSaying = func(v string) marker { return marker{Path: "/identity/m", Present: true, Read: true, Value: v} }
)

func wantErr(t *testing.T, name string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: %v; want no error", name, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v; want an error with %q", name, err, want)
	}
}

func TestRoleAgreed(t *testing.T) {
	for _, tc := range []struct {
		name        string
		active      marker
		member      string
		role        string
		want        bool
		wantRecords string
	}{
		{"no marker given: nothing agreed", noMarker, "b", config.RoleActive, false, ""},
		{"no name given: nothing agreed", markerSaying("b"), "", config.RoleActive, false, "b"},
		{"marker absent: a is the active", absent, "a", config.RoleActive, true, "a"},
		{"marker absent: b is not the active", absent, "b", config.RoleActive, false, "a"},
		{"marker absent: b is the passive", absent, "b", config.RolePassive, true, "a"},
		{"marker names b: b is the active", markerSaying("b"), "b", config.RoleActive, true, "b"},
		{"marker names b: a is the passive", markerSaying("b"), "a", config.RolePassive, true, "b"},
		{"marker names b: a is not the active", markerSaying("b"), "a", config.RoleActive, false, "b"},
		{"marker names b: b is not the passive", markerSaying("b"), "b", config.RolePassive, false, "b"},
		{"marker unreadable: nothing agreed", unreadable, "a", config.RoleActive, false, ""},
		{"marker names someone else: only the passive role", markerSaying("c"), "a", config.RolePassive, true, "c"},
	} {
		if got := roleAgreed(tc.active, tc.member, tc.role); got != tc.want {
			t.Errorf("%s: roleAgreed = %v, want %v", tc.name, got, tc.want)
		}
		if got, _ := recordedActive(tc.active); got != tc.wantRecords {
			t.Errorf("%s: recordedActive = %q, want %q", tc.name, got, tc.wantRecords)
		}
	}
}

func TestCheckRoleAndInstalled(t *testing.T) {
	for _, tc := range []struct {
		name, member, confRole string
		want                   string
	}{
		{"active", config.RoleActive, config.RoleActive, ""},
		{"passive", config.RolePassive, config.RolePassive, ""},
		{"no role", "backup", config.RoleActive, `--member "backup": use active or passive`},
		{"the other member's file", config.RolePassive, config.RoleActive, `/c.conf is the configuration of the active (ROLE "active"), but --member is passive: give this member's own file`},
	} {
		err := checkMember(tc.member)
		if err == nil {
			err = checkConfigRole(tc.member, "/c.conf", tc.confRole)
		}
		wantErr(t, tc.name, err, tc.want)
	}
	for _, tc := range []struct {
		name      string
		installed string
		loadErr   error
		role      string
		agreed    bool
		want      string
	}{
		{"nothing installed", "", fs.ErrNotExist, config.RoleActive, false, ""},
		{"nothing installed (wrapped)", "", fmt.Errorf("open: %w", fs.ErrNotExist), config.RolePassive, false, ""},
		{"the same role", config.RoleActive, nil, config.RoleActive, false, ""},
		{"the other role, not agreed", config.RolePassive, nil, config.RoleActive, false,
			"/state holds the state of the passive, and this is the active: give each member its own state directory"},
		{"the other role, agreed: a switchover", config.RolePassive, nil, config.RoleActive, true, ""},
		{"unreadable configuration", "", errors.New("bad JSON"), config.RoleActive, true, "the installed configuration: bad JSON"},
	} {
		wantErr(t, tc.name, checkInstalled("/state", tc.installed, tc.loadErr, tc.role, tc.agreed), tc.want)
	}
}

// TestDecidePromote: a standby's cluster is never promoted without the
// marker's agreement.
func TestDecidePromote(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       fakeCluster
		agreed  bool
		promote bool
		want    string
	}{
		{"no cluster", noCluster, false, false, ""},
		{"the active's own cluster", primary, false, false, ""},
		{"the active's own cluster, agreed", primary, true, false, ""},
		{"a copy, the marker agrees: promote", standby, true, true, ""},
		{"a copy, the marker does not agree: refused", standby, false, false,
			"/state/db holds a passive's copy, and this is the active: a copy is promoted only when the operator has recorded this member as the active"},
	} {
		promote, err := decidePromote(tc.c, tc.agreed, "/state/db")
		wantErr(t, tc.name, err, tc.want)
		if promote != tc.promote {
			t.Errorf("%s: promote = %v, want %v", tc.name, promote, tc.promote)
		}
	}
}

// TestDecideReplace: a primary's cluster on a passive is never replaced
// without the marker's agreement.
func TestDecideReplace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       fakeCluster
		agreed  bool
		replace bool
		want    string
	}{
		{"no cluster: a first copy", noCluster, false, false, ""},
		{"the passive's standby", standby, false, false, ""},
		{"the passive's standby, agreed", standby, true, false, ""},
		{"a former active's cluster, the marker agrees: move it aside", primary, true, true, ""},
		{"an active's cluster, the marker does not agree: refused", primary, false, false,
			"/state/db holds an active's cluster, and this is the passive: it is replaced by a copy of the active only when the operator has recorded the other member as the active"},
	} {
		replace, err := decideReplace(tc.c, tc.agreed, "/state/db")
		wantErr(t, tc.name, err, tc.want)
		if replace != tc.replace {
			t.Errorf("%s: replace = %v, want %v", tc.name, replace, tc.replace)
		}
	}
}

func TestDecideBootstrap(t *testing.T) {
	const archive = "/bootstrap/backup.tar"
	for _, tc := range []struct {
		name                 string
		archive              string
		pending, initialized bool
		created              marker
		want                 bootstrapStep
	}{
		{"no archive", "", false, false, absent, bootstrapStep{}},
		{"no archive, a load pending", "", true, true, absent, bootstrapStep{}},
		{"a new server: load", archive, false, false, absent, bootstrapStep{Load: true}},
		{"a new server without created marker flag: load", archive, false, false, noMarker, bootstrapStep{Load: true}},
		{"a cluster exists: never touched", archive, false, true, absent, bootstrapStep{}},
		{"the load did not finish: start over", archive, true, true, absent, bootstrapStep{StartOver: true, Load: true}},
		{"the load failed before the cluster: load", archive, true, false, absent, bootstrapStep{Load: true}},
		{"the database existed: the volume was lost, no load", archive, false, false, markerSaying("2026-11-27T10:00:00Z"), bootstrapStep{}},
		{"the database existed, an unreadable marker: no load", archive, false, false, unreadable, bootstrapStep{}},
		{"a marker that cannot be looked at: load", archive, false, false, unreachable, bootstrapStep{Load: true}},
		{"the load did not finish, the database existed: start over only", archive, true, true, markerSaying("x"), bootstrapStep{StartOver: true}},
	} {
		if got := decideBootstrap(tc.archive, tc.pending, tc.initialized, tc.created); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestDecideActive: an empty active is refused once its database existed.
func TestDecideActive(t *testing.T) {
	for _, tc := range []struct {
		name        string
		initialized bool
		created     marker
		standby     string
		want        activeStep
		wantErr     string
		volumeLost  bool
	}{
		{"first start of a single server", false, noMarker, "", activeStep{InitDB: true}, "", false},
		{"first start of a pair", false, absent, "kts_passive", activeStep{InitDB: true, Replication: true}, "", false},
		{"a later start", true, markerSaying("2026-11-27T10:00:00Z"), "kts_passive", activeStep{Replication: true}, "", false},
		{"a later start, single", true, unreadable, "", activeStep{}, "", false},
		{"empty volume, the database existed: lost", false, markerSaying("2026-11-27T10:00:00Z"), "kts_passive", activeStep{},
			"the active's volume holds no database (/state/db), but this server's database was created on 2026-11-27T10:00:00Z: refusing to create an empty one in its place", true},
		{"lost: the message names the key to delete", false, markerSaying("x"), "", activeStep{}, "delete the key m from the server's state Secret (SERVER-state)", true},
		{"empty volume, the marker unreadable", false, unreadable, "", activeStep{}, "reading /identity/m: permission denied", false},
		{"empty volume, the marker cannot be looked at", false, unreachable, "", activeStep{}, "reading /identity/m: permission denied", false},
	} {
		got, err := decideActive(tc.initialized, tc.created, tc.standby, "/state/db")
		wantErr(t, tc.name, err, tc.wantErr)
		if errors.Is(err, ErrVolumeLost) != tc.volumeLost {
			t.Errorf("%s: %v is ErrVolumeLost: %v, want %v", tc.name, err, !tc.volumeLost, tc.volumeLost)
		}
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestDecideStandby: a passive's copy is copied anew only when it is known
// to be stale.
func TestDecideStandby(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale bool
		err   error
		want  standbyStep
	}{
		{"follows", false, nil, keepFollowing},
		{"stale: copy anew", true, nil, copyAnew},
		{"the active does not answer: keep", false, errors.New("connection refused"), keepUnknown},
		{"an error wins over stale", true, errors.New("timeout"), keepUnknown},
	} {
		if got := decideStandby(tc.stale, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	copyErr := &pg.CopyError{Host: "kts-a", Port: 5432, Output: "pg_basebackup: error: could not connect\n", Err: errors.New("exit status 1")}
	for _, tc := range []struct {
		name        string
		err         error
		initialized bool
		again       bool
	}{
		{"the copy failed and left no cluster: wait for the active", copyErr, false, true},
		{"the copy failed (wrapped) and left no cluster", fmt.Errorf("reseed: %w", copyErr), false, true},
		{"the copy failed, the old cluster is back: fail", copyErr, true, false},
		{"another failure: fail", errors.New("disk full"), false, false},
	} {
		reason, again := copyAfterFailedReseed(tc.err, tc.initialized)
		if again != tc.again || (again && reason != "could not connect") {
			t.Errorf("%s: %q, %v; want again %v", tc.name, reason, again, tc.again)
		}
	}
}

func TestCopyRetries(t *testing.T) {
	var got []time.Duration
	for d := firstCopyRetry; len(got) < 6; d = nextCopyRetry(d) {
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("retries %v, want %v", got, want)
	}
	for _, tc := range []struct {
		role        string
		initialized bool
		want        bool
	}{
		{config.RolePassive, true, true},
		{config.RolePassive, false, false},
		{config.RoleActive, true, false},
		{config.RoleActive, false, false},
	} {
		if got := needsKEK(tc.role, tc.initialized); got != tc.want {
			t.Errorf("needsKEK(%s, %v) = %v", tc.role, tc.initialized, got)
		}
	}
}

// TestReadMarker observes the marker files as the pod mounts them.
func TestReadMarker(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path string
		want       marker
	}{
		{"none given", "", marker{}},
		{"absent", dir + "/none", marker{Path: dir + "/none"}},
		{"a value", write("active-member", "b\n"), marker{Path: dir + "/active-member", Present: true, Read: true, Value: "b"}},
		{"empty", write("empty", ""), marker{Path: dir + "/empty", Present: true, Read: true}},
	} {
		if got := readMarker(tc.path); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if m := readMarker(dir); !m.Present || m.Read || m.Err == nil {
		t.Errorf("a directory: %+v, want present and unreadable", m)
	}
}

// TestDecideKEK: the active's HSM set-up adopts the recorded HSM key, or
// makes the next version.
func TestDecideKEK(t *testing.T) {
	hsmKey := func(label, state string) store.KEK { return store.KEK{ID: hsmkeys.ID(label), State: state} }
	for _, tc := range []struct {
		name      string
		keks      []store.KEK
		label     string
		wantAdopt bool
	}{
		{"nothing recorded: the first key", nil, "kts-kek-1", false},
		{"the file keyring's key wraps deposits: the first key", []store.KEK{{ID: "file-key-1", State: store.KEKCurrent}}, "kts-kek-1", false},
		{"an HSM key is current: adopt it", []store.KEK{hsmKey("kts-kek-1", store.KEKRetired), hsmKey("kts-kek-2", store.KEKCurrent)}, "kts-kek-2", true},
		{"HSM keys only retired: the next one", []store.KEK{hsmKey("kts-kek-3", store.KEKRetired), {ID: "file-key-1", State: store.KEKCurrent}}, "kts-kek-4", false},
	} {
		label, adopt := decideKEK(tc.keks)
		if label != tc.label || adopt != tc.wantAdopt {
			t.Errorf("%s: %q, adopt %v; want %q, %v", tc.name, label, adopt, tc.label, tc.wantAdopt)
		}
	}
}
