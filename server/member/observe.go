package member

import (
	"errors"
	"io/fs"
	"os"
	"strings"
)

// cluster is what setup's decisions observe of the member's PostgreSQL
// cluster: a *pg.Instance, or a fake in the tests.
type cluster interface {
	// Initialized: the data directory holds a cluster.
	Initialized() bool
	// IsStandby: that cluster is a standby (a copy of the active's).
	IsStandby() bool
}

// marker is a file of the state Secret as the pod mounts it: a key
// absent from the Secret is a file that does not exist.
type marker struct {
	// Path is "" when setup was not given the file.
	Path string
	// Present: the file exists (os.Stat succeeds), readable or not.
	Present bool
	// Read: its content was read, Value without surrounding space.
	Read  bool
	Value string
	// Err is why it could not be read, other than its absence.
	Err error
}

// readMarker observes the marker file at path ("" for none).
func readMarker(path string) marker {
	if path == "" {
		return marker{}
	}
	m := marker{Path: path}
	_, err := os.Stat(path)
	m.Present = err == nil
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		m.Err = err
	default:
		m.Read, m.Value = true, strings.TrimSpace(string(b))
	}
	return m
}
