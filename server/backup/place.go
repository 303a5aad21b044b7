package backup

import (
	"errors"
	"os"
	"path/filepath"
)

// Place moves the staged state directory files into stateDir, creating it
// and its subdirectories as the archive has them. A file for which keep
// (given its slash-separated path inside the state directory) reports true
// stays as it is when it exists. Entries from outside the state directory
// are not written anywhere: their original absolute paths are returned, for
// the operator to restore by hand. Each file replaces its old version in a
// single rename, so no file is ever seen half-written.
func (s *Staged) Place(stateDir string, keep func(rel string) bool) (outside []string, err error) {
	dirs := map[string]bool{}
	for i, e := range s.Entries {
		if i == s.Dump {
			continue
		}
		rel, ok := s.stateRel(e)
		if !ok {
			outside = append(outside, "/"+e.Name)
			continue
		}
		target := filepath.Join(stateDir, filepath.FromSlash(rel))
		if e.IsDir() {
			if err := os.MkdirAll(target, 0o700); err != nil {
				return outside, err
			}
			if err := os.Chmod(target, e.Mode.Perm()); err != nil {
				return outside, err
			}
			dirs[target] = true
			continue
		}
		if keep(rel) {
			if _, err := os.Lstat(target); err == nil {
				continue
			}
		}
		if err := os.Chmod(s.File(i), e.Mode.Perm()); err != nil {
			return outside, err
		}
		if err := os.Rename(s.File(i), target); err != nil {
			return outside, err
		}
	}
	var errs []error
	for d := range dirs {
		errs = append(errs, SyncDir(d))
	}
	return outside, errors.Join(errs...)
}

// SyncDir makes the renames and links in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
