package restore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Track notes what a fresh-host restore starts from: the entries of the
// state directory dir (when it exists) and whether the database's data
// directory exists. The returned undo removes what was made since: the
// whole of dir when the restore created it (created), otherwise each entry
// of dir that was not there, and the data directory when it was not there.
func Track(dir, dataDir string) (undo func(created bool) error, err error) {
	before := map[string]bool{}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		before[e.Name()] = true
	}
	_, statErr := os.Lstat(dataDir)
	hadData := statErr == nil
	return func(created bool) error {
		var errs []error
		if !hadData {
			errs = append(errs, os.RemoveAll(dataDir))
		}
		if created {
			return errors.Join(append(errs, os.RemoveAll(dir))...)
		}
		now, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return errors.Join(append(errs, err)...)
		}
		for _, e := range now {
			if !before[e.Name()] {
				errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
			}
		}
		return errors.Join(errs...)
	}, nil
}
