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
	switch {
	case uid == a.uid:
		if perm&0o100 == 0 {
			return "u"
		}
	case a.inGroup(gid):
		if perm&0o010 == 0 {
			return "g"
		}
	case perm&0o001 == 0:
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
