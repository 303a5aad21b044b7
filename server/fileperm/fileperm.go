// Package fileperm decides whether a file the server trusts — its
// configuration, a key, a program it runs — and the directory holding it
// can be changed by an account other than the one running the server (or
// root). Such an account could plant a configuration whose password script
// the server runs, or its own keys.
//
// Check is a pure function of the files' owners and modes; Stat gathers
// them from the file system.
package fileperm

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Account is the account running the server: its uid and every group it
// is in (effective and supplementary), with its name for messages.
type Account struct {
	Name   string
	UID    uint32
	Groups []uint32
}

// File is what Check needs to know about one file or directory.
type File struct {
	// Path names it in messages; What says what it is to the server,
	// such as "keytrustee.conf" or "SSL_PRIVATE_KEY".
	Path, What string
	Dir        bool
	Mode       fs.FileMode // permission bits and the sticky bit
	UID, GID   uint32
	// Owner and Group are the names of UID and GID ("" when unknown).
	Owner, Group string
	// ReadOnly says it lies on a file system mounted read-only, such as
	// a Kubernetes Secret volume.
	ReadOnly bool
}

// Problem is a file another account can change: who, and what to do.
type Problem struct {
	File File
	// Writer is the account, group or "everyone" that can change it.
	Writer string
	// Fix is the command that takes the permission away.
	Fix string
}

func (p Problem) Error() string {
	what := "file"
	if p.File.Dir {
		what = "directory"
	}
	return fmt.Sprintf("%s %s (%s) can be changed by %s: run `%s`", what, p.File.Path, p.File.What, p.Writer, p.Fix)
}

// Check returns the problem of f for the server running as who, or nil
// when only who and root can change f. A file is changed by its owner, by
// its group when the group may write, and by everyone when others may
// write; in a directory, whoever may write can rename and replace the
// files in it, unless the directory is sticky (as /tmp is), where only a
// file's owner may. A file on a read-only mount that root owns is taken as
// it is: no one can write it there, whatever its mode says (a Kubernetes
// Secret volume: root's, mode 0440, group-readable).
func Check(who Account, f File) *Problem {
	if f.UID != who.UID && f.UID != 0 {
		return &Problem{File: f, Writer: describe("account", f.Owner, "uid", f.UID) + ", which owns it", Fix: fmt.Sprintf("chown %s %s", who.nameOr(), f.Path)}
	}
	if f.ReadOnly && f.UID == 0 {
		return nil
	}
	if f.Dir && f.Mode&fs.ModeSticky != 0 {
		return nil // only the owner, checked above, replaces the file
	}
	perm := f.Mode.Perm()
	if perm&0o002 != 0 {
		return &Problem{File: f, Writer: "everyone", Fix: "chmod o-w " + f.Path}
	}
	if perm&0o020 != 0 && f.GID != 0 && !slices.Contains(who.Groups, f.GID) {
		return &Problem{File: f, Writer: describe("group", f.Group, "gid", f.GID), Fix: "chmod g-w " + f.Path}
	}
	return nil
}

// CheckAll applies Check to every file and joins the problems into one
// error that names them all.
func CheckAll(who Account, files []File) error {
	var errs []error
	for _, f := range files {
		if p := Check(who, f); p != nil {
			errs = append(errs, *p)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &Error{Problems: errs}
}

// Error is what CheckAll returns: every file another account can change.
type Error struct{ Problems []error }

func (e *Error) Error() string {
	lines := make([]string, 0, len(e.Problems)+1)
	lines = append(lines, "refusing to use files that another account can change (it could make kts run its programs or use its keys):")
	for _, p := range e.Problems {
		lines = append(lines, "  "+p.Error())
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each Problem.
func (e *Error) Unwrap() []error { return e.Problems }

// Is makes errors.Is(err, ErrUntrusted) true.
func (e *Error) Is(target error) bool { return target == ErrUntrusted }

// ErrUntrusted is what every Error is.
var ErrUntrusted = errors.New("a file the server trusts can be changed by another account")

func describe(kind, name, idKind string, id uint32) string {
	if name == "" {
		return fmt.Sprintf("%s with %s %d", kind, idKind, id)
	}
	return fmt.Sprintf("%s %q (%s %d)", kind, name, idKind, id)
}

func (a Account) nameOr() string {
	if a.Name != "" {
		return a.Name
	}
	return fmt.Sprint(a.UID)
}
