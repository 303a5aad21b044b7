package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"
)

// FormatVersion is the version of the archive layout this package writes
// and reads.
const FormatVersion = 1

// ManifestExt ends the name of the manifest: the archive's first entry,
// beside the SQL dump.
const ManifestExt = ".manifest.json"

// Manifest describes an archive; it is its first entry.
type Manifest struct {
	Format  int       `json:"format"`
	Kind    Kind      `json:"kind"`
	Host    string    `json:"host"`
	Created time.Time `json:"created"`
	// StateDir is the absolute path of the state directory backed up.
	StateDir string `json:"state_dir"`
	// Fingerprint is the server key's ID (servers only).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Role is the server's place in a pair when it was backed up.
	Role string `json:"role,omitempty"`
	// Entries are the archive's other entries, in archive order.
	Entries []Entry `json:"entries"`
	// Dump is the entry of the SQL dump (servers only), or -1.
	Dump int `json:"dump"`
	// Checksum is the SHA-256 (hex) of the manifest's encoding with an
	// empty Checksum: damage to the manifest itself shows.
	Checksum string `json:"checksum"`
}

// encode returns the manifest's bytes as written to an archive, with its
// checksum set.
func (m Manifest) encode() ([]byte, error) {
	m.Checksum = ""
	plain, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(plain)
	m.Checksum = hex.EncodeToString(sum[:])
	data, err := json.MarshalIndent(m, "", "  ")
	return append(data, '\n'), err
}

// Entry is a directory or regular file in the archive.
type Entry struct {
	// Name is the path in the archive: the absolute path it was backed up
	// from, without the leading slash, as ktbackup.sh archives it.
	Name   string      `json:"name"`
	Mode   fs.FileMode `json:"mode"` // type bits (directory or none) and permissions
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256,omitempty"` // hex; files only
}

// IsDir reports whether e is a directory.
func (e Entry) IsDir() bool { return e.Mode.IsDir() }

// stateRel returns e's path inside the state directory, or false when e
// lies outside it.
func (m *Manifest) stateRel(e Entry) (string, bool) {
	root := strings.TrimPrefix(m.StateDir, "/")
	if e.Name == root {
		return ".", true
	}
	rel, ok := strings.CutPrefix(e.Name, root+"/")
	return rel, ok
}

// maxManifest bounds the manifest a restore reads.
const maxManifest = 1 << 20

// parseManifest decodes and checks a manifest read from an archive.
func parseManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if canonical, err := m.encode(); err != nil || !bytes.Equal(canonical, data) {
		return nil, errors.New("manifest: damaged (it does not match its checksum)")
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("manifest: archive format %d; this kts reads format %d (use the kts version that made it)", m.Format, FormatVersion)
	}
	if m.Kind != KindServer && m.Kind != KindClient {
		return nil, fmt.Errorf("manifest: unknown kind %q", m.Kind)
	}
	if !path.IsAbs(m.StateDir) || path.Clean(m.StateDir) != m.StateDir || m.StateDir == "/" {
		return nil, fmt.Errorf("manifest: state directory %q is not a clean absolute path", m.StateDir)
	}
	if len(m.Entries) == 0 {
		return nil, errors.New("manifest: no entries")
	}
	seen := map[string]bool{}
	for i, e := range m.Entries {
		if err := checkName(e.Name); err != nil {
			return nil, fmt.Errorf("manifest entry %d: %w", i, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("manifest: %s listed twice", e.Name)
		}
		seen[e.Name] = true
		switch {
		case e.Mode.IsDir():
			if e.Size != 0 || e.SHA256 != "" {
				return nil, fmt.Errorf("manifest: directory %s has contents", e.Name)
			}
		case e.Mode.IsRegular():
			if e.Size < 0 || len(e.SHA256) != 64 {
				return nil, fmt.Errorf("manifest: file %s has no valid size and checksum", e.Name)
			}
		default:
			return nil, fmt.Errorf("manifest: %s is neither a directory nor a regular file", e.Name)
		}
		if e.Mode&^(fs.ModeDir|fs.ModePerm) != 0 {
			return nil, fmt.Errorf("manifest: %s has mode %v; only permission bits are kept", e.Name, e.Mode)
		}
	}
	if rel, ok := m.stateRel(m.Entries[0]); !ok || rel != "." || !m.Entries[0].IsDir() {
		return nil, errors.New("manifest: the first entry is not the state directory")
	}
	switch {
	case m.Kind == KindServer && (m.Dump < 0 || m.Dump >= len(m.Entries) || m.Entries[m.Dump].IsDir()):
		return nil, errors.New("manifest: a server archive without its database dump")
	case m.Kind == KindClient && m.Dump != -1:
		return nil, errors.New("manifest: a client archive with a database dump")
	}
	return &m, nil
}

// checkName accepts archive paths that are clean, relative and stay below
// the root they are extracted to.
func checkName(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("unsafe path %q", name)
	}
	return nil
}
