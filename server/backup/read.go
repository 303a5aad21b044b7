package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrInvalid means an archive is not a complete, intact Trustee backup.
var ErrInvalid = errors.New("not a complete, intact Trustee backup archive")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Staged is an archive whose every entry was checked against its manifest
// and whose files wait in a staging directory.
type Staged struct {
	*Manifest
	// Dir is the staging directory; entry i's contents are in File(i).
	Dir string

	createdStateDir bool // Unpack created the state directory
}

// File returns where entry i's contents are staged.
func (s *Staged) File(i int) string { return filepath.Join(s.Dir, strconv.Itoa(i)) }

// Extract reads an archive from r and stages its files in dir, an empty
// directory. It checks that the first entry is a manifest and that the
// other entries are exactly the manifest's, in order, of the sizes and
// checksums it lists, followed by the end of the archive. Anything else —
// another tar, a truncated or altered archive — is an error wrapping
// ErrInvalid; the staged files are then the caller's to remove. Nothing
// is written outside dir: file names in the archive are never used as
// paths.
func Extract(r io.Reader, dir string) (*Staged, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return nil, invalid("no tar entries (%v)", err)
	}
	if !strings.HasSuffix(hdr.Name, ManifestExt) || hdr.Typeflag != tar.TypeReg {
		return nil, invalid("its first entry is %q, not a manifest (kts backup writes one first)", hdr.Name)
	}
	if hdr.Size > maxManifest {
		return nil, invalid("manifest of %d bytes", hdr.Size)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, invalid("reading the manifest: %v", err)
	}
	m, err := parseManifest(data)
	if err != nil {
		return nil, invalid("%v", err)
	}
	if want := archiveName(path.Join(path.Dir(m.StateDir), "x")); path.Dir(hdr.Name) != path.Dir(want) {
		return nil, invalid("manifest %q is not beside the state directory %s", hdr.Name, m.StateDir)
	}
	s := &Staged{Manifest: m, Dir: dir}
	for i, e := range m.Entries {
		hdr, err := tr.Next()
		if err != nil {
			return nil, invalid("archive ends before %s (%v): truncated?", e.Name, err)
		}
		if err := s.stage(i, e, hdr, tr); err != nil {
			return nil, err
		}
	}
	switch hdr, err := tr.Next(); {
	case err == nil:
		return nil, invalid("unexpected entry %q after the last one the manifest lists", hdr.Name)
	case err != io.EOF:
		return nil, invalid("after the last entry: %v", err)
	}
	return s, nil
}

// stage checks entry i of the archive against its manifest entry e and
// copies a file's contents to the staging directory.
func (s *Staged) stage(i int, e Entry, hdr *tar.Header, r io.Reader) error {
	name := strings.TrimSuffix(hdr.Name, "/")
	if name != e.Name {
		return invalid("entry %d is %q where the manifest lists %q", i+1, hdr.Name, e.Name)
	}
	if e.IsDir() {
		if hdr.Typeflag != tar.TypeDir {
			return invalid("%s is not a directory", e.Name)
		}
		return nil
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size != e.Size || isSparse(hdr) {
		return invalid("%s is not the file of %d bytes the manifest lists", e.Name, e.Size)
	}
	f, err := os.OpenFile(s.File(i), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err = errors.Join(err, f.Close()); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return invalid("%s is cut short: truncated?", e.Name)
		}
		return fmt.Errorf("staging %s: %w", e.Name, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return invalid("%s does not match its checksum: the archive was altered or damaged", e.Name)
	}
	return nil
}

// isSparse reports a PAX sparse file, which expands to more bytes than the
// archive holds.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// Lookup returns the index of the file at p: an absolute path, as a
// file outside the state directory was archived, or a path inside the
// archived state directory.
func (s *Staged) Lookup(p string) (int, bool) {
	if !strings.HasPrefix(p, "/") {
		return s.StateFile(p)
	}
	name := strings.TrimPrefix(path.Clean(p), "/")
	for i, e := range s.Entries {
		if e.Name == name && !e.IsDir() && i != s.Dump {
			return i, true
		}
	}
	return 0, false
}

// StateFile returns the index of the file at rel (slash-separated) in the
// archived state directory.
func (s *Staged) StateFile(rel string) (int, bool) {
	for i, e := range s.Entries {
		if r, ok := s.stateRel(e); ok && r == rel && !e.IsDir() && i != s.Dump {
			return i, true
		}
	}
	return 0, false
}
