package fileperm

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	root := Account{Name: "root", UID: 0, Groups: []uint32{0}}
	pod := Account{Name: "", UID: 10001, Groups: []uint32{10001, 2000}} // 2000: the pod's fsGroup
	file := func(mode fs.FileMode, uid, gid uint32) File {
		return File{Path: "/var/lib/keytrustee/keytrustee.conf", What: "keytrustee.conf", Mode: mode, UID: uid, GID: gid,
			Owner: map[uint32]string{0: "root", 101: "postgres"}[uid], Group: map[uint32]string{0: "root", 104: "postgres"}[gid]}
	}
	dir := func(mode fs.FileMode, uid, gid uint32) File {
		f := file(mode, uid, gid)
		f.Path, f.What, f.Dir = "/var/lib/keytrustee", "the directory holding keytrustee.conf", true
		return f
	}
	readOnly := func(f File) File { f.ReadOnly = true; return f }
	for _, tc := range []struct {
		name   string
		who    Account
		f      File
		writer string // "" = accepted
		fix    string
	}{
		{"root's file, 0600", root, file(0o600, 0, 0), "", ""},
		{"root's file, group postgres may read", root, file(0o640, 0, 104), "", ""},
		{"root's file in root's group, group-writable", root, file(0o660, 0, 0), "", ""},
		{"owned by postgres", root, file(0o600, 101, 104), `account "postgres" (uid 101), which owns it`, "chown root /var/lib/keytrustee/keytrustee.conf"},
		{"owned by an account without a name", root, file(0o400, 4242, 0), "account with uid 4242, which owns it", "chown root /var/lib/keytrustee/keytrustee.conf"},
		{"group postgres may write", root, file(0o620, 0, 104), `group "postgres" (gid 104)`, "chmod g-w /var/lib/keytrustee/keytrustee.conf"},
		{"everyone may write", root, file(0o602, 0, 0), "everyone", "chmod o-w /var/lib/keytrustee/keytrustee.conf"},
		{"state directory of older versions, postgres's", root, dir(0o700, 101, 104), `account "postgres" (uid 101), which owns it`, "chown root /var/lib/keytrustee"},
		{"state directory postgres passes through", root, dir(0o710, 0, 104), "", ""},
		{"state directory postgres's group may write", root, dir(0o770, 0, 104), `group "postgres" (gid 104)`, "chmod g-w /var/lib/keytrustee"},
		{"world-writable directory", root, dir(0o777, 0, 0), "everyone", "chmod o-w /var/lib/keytrustee"},
		{"sticky world-writable directory (/tmp)", root, dir(0o777|fs.ModeSticky, 0, 0), "", ""},
		{"sticky directory of another account", root, dir(0o777|fs.ModeSticky, 101, 104), `account "postgres" (uid 101), which owns it`, "chown root /var/lib/keytrustee"},
		{"Secret on a read-only mount: root's, 0440, fsGroup", pod, readOnly(file(0o440, 0, 2000)), "", ""},
		{"Secret on a read-only mount with a writable mode", pod, readOnly(file(0o666, 0, 2000)), "", ""},
		{"read-only mount of another account", pod, readOnly(file(0o440, 101, 2000)), `account "postgres" (uid 101), which owns it`, "chown 10001 /var/lib/keytrustee/keytrustee.conf"},
		{"the pod's own file", pod, file(0o600, 10001, 10001), "", ""},
		{"volume writable by the pod's fsGroup", pod, dir(0o770, 0, 2000), "", ""},
		{"group-writable by a group the pod is not in", pod, file(0o660, 10001, 3000), "group with gid 3000", "chmod g-w /var/lib/keytrustee/keytrustee.conf"},
		{"root's file, writable by others, on a writable mount", pod, file(0o646, 0, 0), "everyone", "chmod o-w /var/lib/keytrustee/keytrustee.conf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Check(tc.who, tc.f)
			switch {
			case tc.writer == "" && p != nil:
				t.Fatalf("refused: %v", p)
			case tc.writer == "":
				return
			case p == nil:
				t.Fatalf("accepted; want it changeable by %s", tc.writer)
			}
			if p.Writer != tc.writer || p.Fix != tc.fix {
				t.Errorf("writer %q, fix %q; want %q, %q", p.Writer, p.Fix, tc.writer, tc.fix)
			}
			msg := p.Error()
			for _, want := range []string{tc.f.Path, tc.f.What, tc.writer, tc.fix} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
		})
	}
}

func TestCheckAllNamesEveryProblem(t *testing.T) {
	root := Account{Name: "root", Groups: []uint32{0}}
	files := []File{
		{Path: "/s/keytrustee.conf", What: "keytrustee.conf", Mode: 0o600, UID: 101, Owner: "postgres"},
		{Path: "/s", What: "the directory holding keytrustee.conf", Dir: true, Mode: 0o710, GID: 104},
		{Path: "/usr/local/bin/pw", What: "SSL_PRIVATE_KEY_PASSWORD_SCRIPT", Mode: 0o757},
	}
	err := CheckAll(root, files)
	if !errors.Is(err, ErrUntrusted) {
		t.Fatalf("CheckAll: %v; want ErrUntrusted", err)
	}
	var p Problem
	if !errors.As(err, &p) || p.File.Path != "/s/keytrustee.conf" {
		t.Errorf("errors.As: %+v", p)
	}
	msg := err.Error()
	for _, want := range []string{"/s/keytrustee.conf", `"postgres"`, "/usr/local/bin/pw", "SSL_PRIVATE_KEY_PASSWORD_SCRIPT", "everyone", "chmod o-w"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not name %q", msg, want)
		}
	}
	if strings.Contains(msg, "/s (") {
		t.Errorf("%q names the directory, which only postgres's group may pass through", msg)
	}
	if err := CheckAll(root, files[1:2]); err != nil {
		t.Errorf("CheckAll of a safe directory: %v", err)
	}
}
