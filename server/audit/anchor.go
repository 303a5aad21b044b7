package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// AnchorFile is where the active server keeps, in its state directory, the
// head its latest checkpoint of the database chain signs. It lives outside
// the database: a database chain that no longer holds a checkpoint of that
// head was cut short (or rewritten) after it, which the chain alone cannot
// show. `kts audit verify` checks it.
const AnchorFile = JournalDir + "/db-anchor.json"

// Anchor is a signed head of the database chain, as the anchor file keeps it.
type Anchor struct {
	Seq  int64  `json:"signed_seq"`
	Hash string `json:"signed_hash"`
	Time string `json:"time"`
}

// Head is the anchor's head.
func (a Anchor) Head() (Head, error) {
	h, err := ParseHash(a.Hash)
	return Head{Seq: a.Seq, Hash: h}, err
}

// WriteAnchor replaces the anchor file at path with h, atomically.
func WriteAnchor(path string, h Head, now time.Time) error {
	b, err := json.Marshal(Anchor{Seq: h.Seq, Hash: h.Hash.String(), Time: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".anchor-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(b, '\n'))
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ReadAnchor reads the anchor file at path; ok is false when there is none.
func ReadAnchor(path string) (a Anchor, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, false, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := a.Head(); err != nil {
		return a, false, fmt.Errorf("%s: %w", path, err)
	}
	return a, true, nil
}
