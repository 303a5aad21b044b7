package keyring

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// FileKeyring keeps key-encryption keys in a JSON file readable only by the
// server's account. The newest key wraps; every key in the file unwraps, so
// deposits sealed before a rotation stay readable.
type FileKeyring struct {
	current string
	keys    map[string]cipher.AEAD // built once: AES-GCM instances are safe for concurrent use
}

type fileFormat struct {
	Current string    `json:"current"`
	Keys    []fileKey `json:"keys"`
}

type fileKey struct {
	ID      string    `json:"id"`
	Key     []byte    `json:"key"` // base64 in JSON
	Created time.Time `json:"created"`
}

// NewFileContents returns the contents of a new keyring file with one
// fresh key: what CreateFile writes, for a keyring kept elsewhere than in a
// file of the state directory (such as a Kubernetes Secret).
func NewFileContents() ([]byte, error) {
	k, err := newFileKey()
	if err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(fileFormat{Current: k.ID, Keys: []fileKey{k}}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// CreateFile writes a new keyring file with one fresh key. It never
// overwrites an existing file.
func CreateFile(path string) error {
	data, err := NewFileContents()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("keyring %s already exists; refusing to overwrite deposit keys", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadFile reads a keyring file written by CreateFile.
func LoadFile(path string) (*FileKeyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read deposit keyring: %w (run `kts init` to create it)", err)
	}
	return ParseFile(data, path)
}

// ParseFile reads the contents of a keyring file written by CreateFile;
// path names it in errors.
func ParseFile(data []byte, path string) (*FileKeyring, error) {
	var ff fileFormat
	if err := json.Unmarshal(data, &ff); err != nil {
		return nil, fmt.Errorf("deposit keyring %s is not valid JSON: %w", filepath.Base(path), err)
	}
	kr := &FileKeyring{current: ff.Current, keys: make(map[string]cipher.AEAD, len(ff.Keys))}
	for _, k := range ff.Keys {
		if len(k.Key) != 32 {
			return nil, fmt.Errorf("deposit keyring %s: key %q is %d bytes, want 32", filepath.Base(path), k.ID, len(k.Key))
		}
		aead, err := newGCM(k.Key)
		if err != nil {
			return nil, err
		}
		kr.keys[k.ID] = aead
	}
	if _, ok := kr.keys[ff.Current]; !ok {
		return nil, fmt.Errorf("deposit keyring %s: current key %q is not in the file", filepath.Base(path), ff.Current)
	}
	return kr, nil
}

func newFileKey() (fileKey, error) {
	key := make([]byte, 32)
	id := make([]byte, 8)
	if _, err := rand.Read(key); err != nil {
		return fileKey{}, err
	}
	if _, err := rand.Read(id); err != nil {
		return fileKey{}, err
	}
	return fileKey{ID: "file-" + hex.EncodeToString(id), Key: key, Created: time.Now().UTC()}, nil
}

// CurrentKeyID implements Keyring.
func (k *FileKeyring) CurrentKeyID() string { return k.current }

// Wrap implements Keyring.
func (k *FileKeyring) Wrap(_ context.Context, dataKey, aad []byte) (string, []byte, error) {
	w, err := sealAEAD(k.keys[k.current], dataKey, WrapAAD(k.current, aad))
	return k.current, w, err
}

// Unwrap implements Keyring.
func (k *FileKeyring) Unwrap(_ context.Context, keyID string, wrapped, aad []byte) ([]byte, error) {
	kek, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("deposit was sealed under key %q, which is not in this server's keyring; restore the keyring file from backup", keyID)
	}
	return openAEAD(kek, wrapped, WrapAAD(keyID, aad))
}

// WrapAAD is the additional data a data key is wrapped with: the KEK's ID
// and the deposit's own AAD, so a wrapped key opens only under the key and
// for the deposit it was made for.
func WrapAAD(keyID string, aad []byte) []byte {
	return append([]byte("kts-kek-v1\x00"+keyID+"\x00"), aad...)
}
