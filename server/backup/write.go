package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Archive is an archive being put together: its manifest and where each
// entry's contents are read from.
type Archive struct {
	Manifest
	disk []string // per entry: the file to read
	base string   // archive file name without extension: names the manifest and dump
}

// NewArchive starts kind's archive of the state directory stateDir (an
// absolute path) taken on host at created; base names its manifest and
// dump entries (the archive's file name without extension).
func NewArchive(kind Kind, host string, created time.Time, stateDir, base string) (*Archive, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return nil, err
	}
	return &Archive{
		Manifest: Manifest{Format: FormatVersion, Kind: kind, Host: host, Created: created.UTC().Truncate(time.Second),
			StateDir: filepath.ToSlash(abs), Dump: -1},
		base: base,
	}, nil
}

// archiveName is the entry name of the file at the absolute path p.
func archiveName(p string) string {
	return strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
}

// AddStateDir adds the state directory and everything in it except the
// paths (relative to it, slash-separated) for which skip reports true.
// Symbolic links are archived as the file they point to; other special
// files are refused.
func (a *Archive) AddStateDir(skip func(rel string) bool) error {
	root := filepath.FromSlash(a.StateDir)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." && skip(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return a.add(p)
	})
}

// AddFile adds a file from outside the state directory, such as a TLS
// certificate the configuration names by absolute path. A file already
// added is not added again.
func (a *Archive) AddFile(p string) error {
	name := archiveName(p)
	for _, e := range a.Entries {
		if e.Name == name {
			return nil
		}
	}
	return a.add(p)
}

func (a *Archive) add(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	e := Entry{Name: archiveName(p), Mode: fi.Mode() & (fs.ModeDir | fs.ModePerm)}
	switch {
	case fi.IsDir():
	case fi.Mode().IsRegular():
		if e.Size, e.SHA256, err = hashFile(p); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s is neither a directory nor a regular file; move it out of the state directory", p)
	}
	a.Entries = append(a.Entries, e)
	a.disk = append(a.disk, p)
	return nil
}

// AddDump adds the SQL dump in the file p, whose size and SHA-256 (hex)
// were taken while it was written. Its entry sits beside the state
// directory, named after the archive, as in ktbackup.sh archives.
func (a *Archive) AddDump(p string, size int64, sum string) {
	a.Dump = len(a.Entries)
	a.Entries = append(a.Entries, Entry{Name: a.besideStateDir(".sql"), Mode: 0o600, Size: size, SHA256: sum})
	a.disk = append(a.disk, p)
}

// besideStateDir names an entry in the state directory's parent.
func (a *Archive) besideStateDir(ext string) string {
	return archiveName(path.Join(path.Dir(a.StateDir), a.base+ext))
}

// WriteTo writes the archive: the manifest, then every entry. A file that
// no longer matches the size and checksum it was added with fails the
// write, so the archive is never inconsistent with its manifest.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	manifest, err := a.Manifest.encode()
	if err != nil {
		return cw.n, err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: a.besideStateDir(ManifestExt), Mode: 0o600,
		Size: int64(len(manifest)), ModTime: a.Created, Uid: os.Getuid(), Gid: os.Getgid()}
	if err := tw.WriteHeader(hdr); err != nil {
		return cw.n, err
	}
	if _, err := tw.Write(manifest); err != nil {
		return cw.n, err
	}
	buf := make([]byte, copyBuffer)
	for i, e := range a.Entries {
		// The dump was hashed as it was written, to a private file of
		// ours; state files are hashed again, in case they changed.
		if err := writeEntry(tw, e, a.disk[i], i != a.Dump, buf); err != nil {
			return cw.n, err
		}
	}
	err = tw.Close()
	return cw.n, err
}

// copyBuffer is the size of the buffer archive contents are copied with.
// Larger buffers measured slower here.
const copyBuffer = 32 << 10

func writeEntry(tw *tar.Writer, e Entry, p string, verify bool, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	hdr, err := tar.FileInfoHeader(fi, "")
	if err != nil {
		return err
	}
	hdr.Name, hdr.Mode = e.Name, int64(e.Mode.Perm())
	if e.IsDir() {
		hdr.Name += "/"
		return tw.WriteHeader(hdr)
	}
	if fi.Size() != e.Size {
		return fmt.Errorf("%s changed while it was backed up (size %d, was %d); run the backup again", p, fi.Size(), e.Size)
	}
	hdr.Size = e.Size
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !verify {
		n, err := io.CopyBuffer(tw, io.LimitReader(f, e.Size), buf)
		if err == nil && n != e.Size {
			err = fmt.Errorf("%s ended after %d of %d bytes", p, n, e.Size)
		}
		return err
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(tw, h), io.LimitReader(f, e.Size), buf); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != e.SHA256 {
		return fmt.Errorf("%s changed while it was backed up; run the backup again", p)
	}
	return nil
}

// hashFile returns the size and SHA-256 (hex) of the file p.
func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// HashingWriter passes writes on to W and keeps their count and SHA-256,
// for files written once and archived afterwards (the dump).
type HashingWriter struct {
	W io.Writer
	h hash.Hash
	n int64
}

func (w *HashingWriter) Write(p []byte) (int, error) {
	if w.h == nil {
		w.h = sha256.New()
	}
	n, err := w.W.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Sum returns the count and hex SHA-256 of the bytes written.
func (w *HashingWriter) Sum() (int64, string) {
	if w.h == nil {
		w.h = sha256.New()
	}
	return w.n, hex.EncodeToString(w.h.Sum(nil))
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
