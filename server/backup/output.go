package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Output is an archive file being written. Until Commit it has a hidden
// temporary name in its directory, so a crash or an error never leaves a
// file with an archive's name that is not a whole archive.
type Output struct {
	*os.File
	final string
}

// CreateOutput starts the archive file name in the directory dir. It is
// created with mode 0600. An existing archive of that name is an error.
func CreateOutput(dir, name string) (*Output, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("output directory: %w (create it, or choose another with --output)", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("output %s is not a directory", dir)
	}
	final := filepath.Join(dir, name)
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("%s exists already; wait a second and run the backup again", final)
	}
	f, err := os.CreateTemp(dir, "."+name+".partial-*")
	if err != nil {
		return nil, err
	}
	return &Output{File: f, final: final}, nil
}

// Commit makes the finished file durable and gives it its archive name,
// never replacing another file. It returns the archive's path.
func (o *Output) Commit() (string, error) {
	tmp := o.Name()
	err := errors.Join(o.Sync(), o.Close())
	if err == nil {
		err = os.Link(tmp, o.final)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// No hard links on this file system: rename, having checked
			// that no archive of that name appeared meanwhile.
			if _, statErr := os.Lstat(o.final); errors.Is(statErr, fs.ErrNotExist) {
				err = os.Rename(tmp, o.final)
			}
		}
	}
	os.Remove(tmp)
	if err != nil {
		return "", fmt.Errorf("finishing %s: %w", o.final, err)
	}
	return o.final, SyncDir(filepath.Dir(o.final))
}

// Abort removes the unfinished file.
func (o *Output) Abort() {
	o.Close()
	os.Remove(o.Name())
}
