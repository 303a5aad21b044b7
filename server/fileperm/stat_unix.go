//go:build unix

package fileperm

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Current returns the account running this process.
func Current() Account {
	a := Account{UID: uint32(os.Geteuid())}
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		a.Name = u.Username
	}
	a.Groups = append(a.Groups, uint32(os.Getegid()))
	if gids, err := os.Getgroups(); err == nil {
		for _, g := range gids {
			a.Groups = append(a.Groups, uint32(g))
		}
	}
	return a
}

// Stat describes path, following symbolic links, as Check needs it; what
// says what the file is to the server.
func Stat(path, what string) (File, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return File{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return File{}, fmt.Errorf("%s: no owner information", path)
	}
	f := File{Path: path, What: what, Dir: fi.IsDir(), Mode: fi.Mode() & (fs.ModePerm | fs.ModeSticky),
		UID: st.Uid, GID: st.Gid, ReadOnly: readOnlyMount(path)}
	if u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10)); err == nil {
		f.Owner = u.Username
	}
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(st.Gid), 10)); err == nil {
		f.Group = g.Name
	}
	return f, nil
}

// Gather describes path and the directories that hold it: the one it is
// named in and, when symbolic links lead elsewhere (as in a Kubernetes
// Secret volume), the one it really is in. An error wraps fs.ErrNotExist
// when path does not exist.
func Gather(path, what string) ([]File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	f, err := Stat(abs, what)
	if err != nil {
		return nil, err
	}
	files := []File{f}
	dirs := []string{filepath.Dir(abs)}
	if real, err := filepath.EvalSymlinks(abs); err == nil && filepath.Dir(real) != dirs[0] {
		dirs = append(dirs, filepath.Dir(real))
	}
	for _, d := range dirs {
		fd, err := Stat(d, "the directory holding "+what)
		if err != nil {
			return nil, err
		}
		files = append(files, fd)
	}
	return files, nil
}
