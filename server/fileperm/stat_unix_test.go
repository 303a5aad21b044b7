//go:build unix

package fileperm

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// postgres returns the uid and gid of the PostgreSQL account, the other
// account of these tests, which need root to give it files.
func postgres(t *testing.T) (int, int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving files to another account needs root")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres account: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// TestGatherOnDisk checks real files: their owners and modes as Stat
// reads them, and the directories holding them, as named and behind
// symbolic links as a Kubernetes Secret volume has them.
func TestGatherOnDisk(t *testing.T) {
	uid, gid := postgres(t)
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own := write("own/keytrustee.conf", 0o600)
	theirs := write("theirs/keytrustee.conf", 0o600)
	if err := os.Chown(theirs, uid, gid); err != nil {
		t.Fatal(err)
	}
	groupDir := write("groupdir/keytrustee.conf", 0o600)
	if err := os.Chown(filepath.Dir(groupDir), 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(groupDir), 0o770); err != nil {
		t.Fatal(err)
	}
	// A Secret volume: tls.key → ..data/tls.key, ..data → ..2026_12_07/,
	// whose directory the PostgreSQL account's group may write.
	real := write("secret/..2026_12_07/tls.key", 0o440)
	if err := os.Chown(filepath.Dir(real), 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(real), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..2026_12_07", filepath.Join(dir, "secret/..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "secret/tls.key")
	if err := os.Symlink("..data/tls.key", link); err != nil {
		t.Fatal(err)
	}

	me := Current()
	for _, tc := range []struct {
		path, refused, writer string
	}{
		{own, "", ""},
		{theirs, theirs, `account "postgres"`},
		{groupDir, filepath.Dir(groupDir), `group "postgres"`},
		{link, filepath.Dir(real), `group "postgres"`},
	} {
		files, err := Gather(tc.path, "keytrustee.conf")
		if err != nil {
			t.Fatal(err)
		}
		err = CheckAll(me, files)
		if tc.refused == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.path, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.refused+" (") || !strings.Contains(err.Error(), tc.writer) {
			t.Errorf("%s: %v; want %s refused, changeable by %s", tc.path, err, tc.refused, tc.writer)
		}
	}
	if _, err := Gather(filepath.Join(dir, "missing"), "KEYRING"); !os.IsNotExist(err) {
		t.Errorf("Gather of a missing file: %v; want not-exist", err)
	}
}
