//go:build unix

package pg

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestDenied(t *testing.T) {
	a := &account{name: "postgres", uid: 101, gid: 104, groups: []uint32{104, 103}}
	for _, c := range []struct {
		perm     os.FileMode
		uid, gid uint32
		want     string
	}{
		{0o755, 0, 0, ""},
		{0o700, 0, 0, "o"},
		{0o711, 0, 0, ""},
		{0o700, 101, 0, ""},
		{0o077, 101, 0, "u"}, // the owner class decides, even if others may enter
		{0o750, 0, 103, ""},
		{0o705, 0, 103, "g"},
		{0o1777, 0, 0, ""},
	} {
		if got := a.denied(c.perm, c.uid, c.gid); got != c.want {
			t.Errorf("denied(%v, uid %d, gid %d) = %q, want %q", c.perm, c.uid, c.gid, got, c.want)
		}
	}
}

func TestLacksRead(t *testing.T) {
	a := &account{name: "postgres", uid: 101, gid: 104, groups: []uint32{104, 103}}
	for _, c := range []struct {
		perm     os.FileMode
		uid, gid uint32
		want     string
	}{
		{0o440, 0, 104, ""}, // a Kubernetes Secret with fsGroup
		{0o440, 0, 0, "o"},
		{0o400, 0, 104, "g"},
		{0o600, 101, 0, ""},
		{0o044, 101, 104, "u"},
		{0o644, 0, 0, ""},
	} {
		if got := a.lacks(c.perm, c.uid, c.gid, 0o4); got != c.want {
			t.Errorf("lacks(%v, uid %d, gid %d, read) = %q, want %q", c.perm, c.uid, c.gid, got, c.want)
		}
	}
}

// TestPrepareStateDir runs as root with the PostgreSQL account: the state
// directory stays (or becomes again) root's, and the account may only pass
// through it to the data directory.
func TestPrepareStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("PostgreSQL runs as another account only when the caller is root")
	}
	i0 := &Instance{RunAs: DefaultRunAs}
	a, err := i0.account()
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		name         string
		uid, gid     int
		mode         os.FileMode
		dataOutside  bool
		wantUID      uint32
		wantGID      uint32
		wantMode     os.FileMode
		wantRepaired bool
	}{
		{name: "new, root's", uid: 0, gid: 0, mode: 0o700, wantGID: a.gid, wantMode: 0o710},
		{name: "older versions: the account's", uid: int(a.uid), gid: int(a.gid), mode: 0o700, wantGID: a.gid, wantMode: 0o710, wantRepaired: true},
		{name: "older versions, group and others", uid: int(a.uid), gid: int(a.gid), mode: 0o775, wantGID: a.gid, wantMode: 0o710, wantRepaired: true},
		{name: "already passable", uid: 0, gid: 0, mode: 0o711, wantGID: 0, wantMode: 0o711},
		{name: "root's group bits are not handed on", uid: 0, gid: 0, mode: 0o750, wantGID: a.gid, wantMode: 0o710},
		{name: "data directory elsewhere", uid: 0, gid: 0, mode: 0o700, dataOutside: true, wantGID: 0, wantMode: 0o700},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Under /tmp, which every account can pass through (t.TempDir's
			// parent is root's alone).
			parent, err := os.MkdirTemp("", "trustee-statedir-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(parent) })
			if err := os.Chmod(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(parent, "state")
			if err := os.Mkdir(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, tc.uid, tc.gid); err != nil {
				t.Fatal(err)
			}
			i := &Instance{RunAs: DefaultRunAs, DataDir: filepath.Join(dir, "db")}
			if tc.dataOutside {
				i.DataDir = filepath.Join(filepath.Dir(dir), "db")
			}
			note, err := i.PrepareStateDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if repaired := strings.Contains(note, `was owned by OS account "postgres"`); repaired != tc.wantRepaired || (note != "") != tc.wantRepaired {
				t.Errorf("note %q; want one saying the directory was taken back: %v", note, tc.wantRepaired)
			}
			fi, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != tc.wantUID || st.Gid != tc.wantGID || fi.Mode().Perm() != tc.wantMode {
				t.Errorf("uid %d gid %d mode %v; want uid %d gid %d mode %v", st.Uid, st.Gid, fi.Mode().Perm(), tc.wantUID, tc.wantGID, tc.wantMode)
			}
			if !tc.dataOutside {
				if err := a.checkReach(dir); err != nil {
					t.Error(err)
				}
			}
			if again, err := i.PrepareStateDir(dir); err != nil || again != "" {
				t.Errorf("a second time: %q, %v; want nothing to say", again, err)
			}
		})
	}
}
