//go:build unix

package pg

import (
	"os"
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
