package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
)

// What a restore does with a file the configuration names outside the
// state directory.
const (
	// Write: the file is missing; the archive's copy is written.
	Write = "write"
	// Same: the file is there with the archive's contents.
	Same = "same"
	// Differs: the file is there with other contents (or is not a
	// regular file). It is left as it is: a restore never replaces or
	// writes through anything outside the state directory.
	Differs = "differs"
	// Missing: the archive does not hold the file (an archive made before
	// backups held such files), and it is not on this host either.
	Missing = "missing"
)

// OutsideFile is a file named by the archived configuration outside the
// state directory, and what the restore does with it.
type OutsideFile struct {
	Path   string // absolute
	Action string
	entry  int
	mode   fs.FileMode
}

// PlanOutside decides, for every file the archived configuration cfg names
// outside the archived state directory, what the restore does with it. It
// writes nothing. Only these paths are ever written: an archive entry
// from outside the state directory that cfg does not name is ignored.
func PlanOutside(staged *backup.Staged, cfg config.Config) ([]OutsideFile, error) {
	var plan []OutsideFile
	for _, p := range OutsideFiles(filepath.FromSlash(staged.StateDir), cfg) {
		f := OutsideFile{Path: p, entry: -1}
		i, archived := staged.Lookup(filepath.ToSlash(p))
		if archived {
			f.entry, f.mode = i, staged.Entries[i].Mode.Perm()
		}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && archived:
			f.Action = Write
		case errors.Is(err, fs.ErrNotExist):
			f.Action = Missing
		case err != nil:
			return nil, err
		case !archived:
			continue // on this host, not in the archive: nothing to do
		case !fi.Mode().IsRegular():
			f.Action = Differs
		default:
			have, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			want, err := os.ReadFile(staged.File(i))
			if err != nil {
				return nil, err
			}
			f.Action = Differs
			if bytes.Equal(have, want) {
				f.Action = Same
			}
		}
		plan = append(plan, f)
	}
	return plan, nil
}

// WriteOutside writes the files plan says to write. Each is written to a
// temporary file beside it, flushed, and then linked to its name, which
// fails if anything (a file, a symbolic link) has appeared there since:
// nothing is replaced and no link is followed. Missing directories are
// created 0700. The mode is the archived one, at most 0640: never
// executable, never writable by others than the owner, never readable by
// all. undo removes what was written and the
// directories made, and is to be called when the restore fails later; on
// an error, what was written is already removed.
func WriteOutside(staged *backup.Staged, plan []OutsideFile) (written []string, undo func(), err error) {
	var made []string // files and directories, in the order made
	undo = func() {
		for i := len(made) - 1; i >= 0; i-- {
			os.Remove(made[i])
		}
	}
	for _, f := range plan {
		if f.Action != Write {
			continue
		}
		dirs, err := mkdirs(filepath.Dir(f.Path))
		made = append(made, dirs...)
		if err == nil {
			err = writeNew(f.Path, staged.File(f.entry), f.mode&0o640)
		}
		if err != nil {
			undo()
			return nil, func() {}, fmt.Errorf("writing %s, which the configuration names: %w", f.Path, err)
		}
		made = append(made, f.Path)
		written = append(written, f.Path)
	}
	return written, undo, nil
}

// mkdirs creates dir and its missing parents 0700, and returns those it
// created, outermost first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		missing = append([]string{d}, missing...)
	}
	var made []string
	for _, d := range missing {
		if err := os.Mkdir(d, 0o700); err != nil {
			return made, err
		}
		made = append(made, d)
	}
	return made, nil
}

// writeNew writes the contents of src to a new file at p with mode, which
// appears whole or not at all and never replaces anything at p.
func writeNew(p, src string, mode fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".kts-restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err = errors.Join(err, tmp.Close()); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), p); err != nil {
		return err
	}
	return backup.SyncDir(filepath.Dir(p))
}

// Report says, one line each, what a restore did with the files outside
// the state directory.
func Report(plan []OutsideFile, archive string) []string {
	var out []string
	for _, f := range plan {
		switch f.Action {
		case Write:
			out = append(out, fmt.Sprintf("restored %s (outside the state directory)", f.Path))
		case Differs:
			out = append(out, fmt.Sprintf("kept %s as it is: it differs from the backup's copy (a restore replaces nothing outside the state directory; "+
				"the backup's is in the archive as %s, which `tar -xf` extracts after decrypting %s)", f.Path, f.Path[1:], archive))
		case Missing:
			out = append(out, fmt.Sprintf("missing: %s, which keytrustee.conf names, is neither on this host nor in the backup; put it back before starting the server", f.Path))
		}
	}
	return out
}
