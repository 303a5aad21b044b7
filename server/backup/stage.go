package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Unpack reads a whole archive from r and stages it inside stateDir (which
// it creates, 0700, when missing). finish, when not nil, is called once r
// has been read to its end and gives the verdict of the layer r came
// through (an OpenPGP decryption's integrity check). Only when everything
// checked out is the Staged returned; otherwise nothing is left behind.
// The caller places what it needs and then calls Remove.
func Unpack(r io.Reader, finish func() error, stateDir string) (_ *Staged, err error) {
	created := false
	if _, statErr := os.Stat(stateDir); errors.Is(statErr, os.ErrNotExist) {
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return nil, err
		}
		created = true
	}
	dir, err := os.MkdirTemp(stateDir, stagePrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("staging the archive in %s: %w", stateDir, err)
	}
	cleanup := func() {
		os.RemoveAll(dir)
		if created {
			os.Remove(stateDir)
		}
	}
	s, err := Extract(r, dir)
	if err == nil {
		// The end of the tar is not the end of the input: the layer below
		// checks its integrity only at its own end.
		_, err = io.Copy(io.Discard, r)
	}
	if finish != nil {
		err = errors.Join(err, finish())
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	s.createdStateDir = created
	return s, nil
}

// Remove deletes the staging directory and what is left in it.
func (s *Staged) Remove() error { return os.RemoveAll(s.Dir) }

// Abandon is Remove for a restore that gave up before placing anything:
// a state directory that Unpack created is removed as well.
func (s *Staged) Abandon(stateDir string) {
	s.Remove()
	if s.createdStateDir {
		os.Remove(stateDir)
	}
}

// CreatedStateDir reports whether Unpack created the state directory.
func (s *Staged) CreatedStateDir() bool { return s.createdStateDir }
