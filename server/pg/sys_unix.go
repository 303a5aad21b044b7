//go:build unix

package pg

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// account returns the OS account to run PostgreSQL as: RunAs when the
// caller is root, nil (the caller itself) otherwise.
func (i *Instance) account() (*account, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	name := i.runAs()
	u, err := user.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("OS account %q, which runs PostgreSQL when Trustee runs as root, does not exist: "+
				"create it with `useradd --system %s` or pass --run-as", name, name)
		}
		return nil, fmt.Errorf("look up OS account %q: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS account %q: unexpected uid %q", name, u.Uid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("OS account %q is root, and PostgreSQL refuses to run as root: "+
			"pass --run-as with an unprivileged account such as postgres", name)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("OS account %q: unexpected gid %q", name, u.Gid)
	}
	a := &account{name: name, uid: uint32(uid), gid: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		gids = []string{u.Gid}
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			a.groups = append(a.groups, uint32(n))
		}
	}
	return a, nil
}

func (a *account) sysProcAttr() *syscall.SysProcAttr {
	if a == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}}
}

// owns reports whether the file described by fi belongs to the account
// (always true for the caller itself).
func (a *account) owns(fi os.FileInfo) bool {
	if a == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == a.uid && st.Gid == a.gid
}

// checkReach makes sure the account can enter dir and every directory
// above it, as PostgreSQL must to reach its data directory and files.
func (a *account) checkReach(dir string) error {
	if a == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if who := a.denied(fi.Mode().Perm(), st.Uid, st.Gid); who != "" {
			return fmt.Errorf("PostgreSQL runs as OS account %q, which cannot enter %s (mode %s, owner uid %d): "+
				"run `chmod %s+x %s` or use a directory that account can reach", a.name, d, fi.Mode().Perm(), st.Uid, who, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// denied applies the POSIX search-permission check for a directory with
// the given mode and owner. It returns "" when the account may enter, else
// the chmod class ("u", "g" or "o") whose x bit would let it in.
func (a *account) denied(perm os.FileMode, uid, gid uint32) string {
	return a.lacks(perm, uid, gid, 0o1)
}

// lacks applies the POSIX permission check for the permission bit (0o4
// read, 0o2 write, 0o1 execute or search) on a file with the given mode
// and owner. It returns "" when the account has the permission, else the
// chmod class ("u", "g" or "o") whose bit would grant it.
func (a *account) lacks(perm os.FileMode, uid, gid uint32, bit os.FileMode) string {
	switch {
	case uid == a.uid:
		if perm&(bit<<6) == 0 {
			return "u"
		}
	case a.inGroup(gid):
		if perm&(bit<<3) == 0 {
			return "g"
		}
	case perm&bit == 0:
		return "o"
	}
	return ""
}

func (a *account) inGroup(gid uint32) bool {
	if gid == a.gid {
		return true
	}
	for _, g := range a.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// processAlive reports whether pid is a running PostgreSQL server. Like
// pg_ctl, it treats our own and our parent's PID as stale. On Linux it also
// checks the process name and state, so that neither a reused PID in a
// postmaster.pid left by a crash nor a dead, unreaped server counts.
func processAlive(pid int) bool {
	if pid <= 0 || pid == os.Getpid() || pid == os.Getppid() {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	proc := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil {
		return true // no procfs: trust the signal check
	}
	name := strings.TrimSpace(string(comm))
	if !strings.Contains(name, "postgres") && !strings.Contains(name, "postmaster") {
		return false
	}
	// A crashed server nobody has reaped yet is a zombie: state Z, after
	// the parenthesized command name in /proc/PID/stat.
	stat, err := os.ReadFile(proc + "/stat")
	if err != nil {
		return true
	}
	end := bytes.LastIndexByte(stat, ')')
	return end < 0 || end+2 >= len(stat) || stat[end+2] != 'Z'
}

// checkTLSFiles makes sure PostgreSQL can use the TLS files: the server's
// certificate and key, and on the passive the active's CA file. The
// account that runs PostgreSQL must read them, and PostgreSQL takes a key
// only when that account owns it with mode 0600 or less, or root owns it
// with mode 0640 or less.
func (i *Instance) checkTLSFiles(a *account) error {
	if i.TLS == nil {
		return nil
	}
	type file struct{ what, path string }
	var files []file
	if i.serverTLS() {
		files = append(files, file{"certificate", i.TLS.CertFile}, file{"private key", i.TLS.KeyFile})
	}
	if ca := i.activeCA(); i.role() == RolePassive && ca != "" {
		files = append(files, file{"CA file of the active's certificate", ca})
	}
	for _, f := range files {
		path := tlsPath(f.path)
		fi, err := a.checkRead(path)
		if err != nil {
			return fmt.Errorf("PostgreSQL's TLS %s: %w", f.what, err)
		}
		if f.what == "private key" {
			if err := a.checkKeyMode(path, fi); err != nil {
				return fmt.Errorf("PostgreSQL's TLS private key: %w", err)
			}
		}
	}
	return nil
}

// checkRead makes sure the account can read the file path (following
// symbolic links, as a Kubernetes Secret volume has them) and returns what
// it is.
func (a *account) checkRead(path string) (os.FileInfo, error) {
	if a == nil {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", path)
		}
		return fi, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Dir(path), filepath.Dir(real)} {
		if err := a.checkReach(d); err != nil {
			return nil, err
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fi, nil
	}
	if who := a.lacks(fi.Mode().Perm(), st.Uid, st.Gid, 0o4); who != "" {
		return nil, fmt.Errorf("PostgreSQL runs as OS account %q, which cannot read %s (mode %s, owner uid %d, group gid %d): "+
			"make it readable by a group of that account, e.g. `chgrp %d %s` and `chmod 0440 %s` for a file root owns",
			a.name, path, fi.Mode().Perm(), st.Uid, st.Gid, a.gid, real, real)
	}
	return fi, nil
}

// checkKeyMode applies PostgreSQL's rule for its private key file: owned
// by the account that runs it with mode 0600 or less, or by root with mode
// 0640 or less.
func (a *account) checkKeyMode(path string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := uint32(os.Geteuid())
	name := "that runs it"
	if a != nil {
		uid, name = a.uid, fmt.Sprintf("%q", a.name)
	}
	perm := fi.Mode().Perm()
	switch {
	case st.Uid != uid && st.Uid != 0:
		return fmt.Errorf("%s is owned by uid %d, and PostgreSQL takes a private key only from the OS account %s or from root", path, st.Uid, name)
	case st.Uid == uid && uid != 0 && perm&0o077 != 0:
		return fmt.Errorf("%s has mode %s, and PostgreSQL takes a private key its own account owns only with mode 0600 or less: run `chmod 0600 %s`", path, perm, path)
	case st.Uid == 0 && perm&0o037 != 0:
		return fmt.Errorf("%s has mode %s, and PostgreSQL takes a private key root owns only with mode 0640 or less (0440 as a Kubernetes Secret has it): run `chmod 0440 %s`", path, perm, path)
	}
	return nil
}

// PrepareStateDir keeps dir, the state directory of the server that holds
// this Instance, its caller's while PostgreSQL runs as the run-as account:
// that account gets only what reaching its data directory and socket
// directory inside dir needs, the permission to pass through dir (search
// permission, through dir's group: mode 0710, group of the account),
// never the permission to rename or create files in it. A dir the account
// owns, as older versions of Trustee left it, is taken back: note says so,
// for the operator ("" when nothing needed saying). Nothing is done when
// the caller is not root (PostgreSQL runs as the caller), nor to a dir
// another account owns.
func (i *Instance) PrepareStateDir(dir string) (note string, err error) {
	a, err := i.account()
	if a == nil || err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("state directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() {
		return "", nil
	}
	me := uint32(os.Geteuid())
	perm := fi.Mode().Perm()
	switch {
	case st.Uid == a.uid:
		if err := os.Chown(dir, int(me), int(a.gid)); err != nil {
			return "", fmt.Errorf("give the state directory %s back to uid %d: %w", dir, me, err)
		}
		if err := os.Chmod(dir, 0o710); err != nil {
			return "", fmt.Errorf("state directory %s: %w", dir, err)
		}
		return fmt.Sprintf("the state directory %s was owned by OS account %q, which runs PostgreSQL, so that account could replace the files in it: "+
			"it is root's again, and %q may now only pass through it to the database (mode 0710, group %d)", dir, a.name, a.name, a.gid), nil
	case st.Uid != me || !i.inside(dir):
		return "", nil
	case a.denied(perm, st.Uid, st.Gid) == "":
		return "", nil // the account passes through already
	}
	if st.Gid != a.gid {
		if err := os.Chown(dir, -1, int(a.gid)); err != nil {
			return "", fmt.Errorf("let OS account %q pass through the state directory %s: %w", a.name, dir, err)
		}
		perm &^= 0o070 // the bits were another group's
	}
	if err := os.Chmod(dir, perm|0o010); err != nil {
		return "", fmt.Errorf("let OS account %q pass through the state directory %s: %w", a.name, dir, err)
	}
	return "", nil
}

// inside reports whether the data directory or the socket directory lie
// inside dir, so that PostgreSQL must pass through it.
func (i *Instance) inside(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for _, p := range []string{i.DataDir, i.SocketDir} {
		if p == "" {
			continue
		}
		if p, err = filepath.Abs(p); err != nil {
			continue
		}
		if rel, err := filepath.Rel(abs, p); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}
