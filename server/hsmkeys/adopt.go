package hsmkeys

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"trustee.dev/trustee/server/hsm"
)

// CheckAdoptable refuses a key the token holds under label unless the token
// generated it and never lets it out (sensitive, never extractable, AES-256):
// one planted with a known or extractable value would give its maker every
// deposit or secret it wraps. A label the token does not hold is fine.
func CheckAdoptable(tok *hsm.Token, label string) error {
	key, err := tok.Key(label)
	if errors.Is(err, hsm.ErrNoKey) {
		return nil
	}
	if err != nil {
		return err
	}
	a, err := key.Attributes()
	if err == nil {
		err = a.Check()
	}
	if err != nil {
		return fmt.Errorf("the token's key %q cannot be adopted: %w; nothing was changed; "+
			"a key Trustee uses must be generated in the token (sensitive, never extractable): "+
			"delete that object (pkcs11-tool --delete-object --type secrkey --label %s) or choose another label", label, err, label)
	}
	return nil
}

// AdoptOrCreate finds the token key label, or creates it (never on a
// passive, which must use the active's keys).
func AdoptOrCreate(tok *hsm.Token, label string, adoptOnly bool) (*hsm.Key, string, error) {
	key, err := tok.Key(label)
	if err == nil {
		return key, "adopted (it was in the token)", nil
	}
	if !errors.Is(err, hsm.ErrNoKey) {
		return nil, "", err
	}
	if adoptOnly {
		return nil, "", fmt.Errorf("the token has no key %q: a passive uses the active's keys; give it the same token (or one holding the same keys) and run keyhsm init on the active first", label)
	}
	key, err = tok.GenerateKey(label)
	if err != nil {
		return nil, "", err
	}
	return key, "created in the token", nil
}

// SealFile replaces the state file at path by its sealed form, unless it is
// sealed already. The sealed file is written next to it and renamed over it.
func SealFile(key *hsm.Key, path string) (bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	if IsSealed(data) {
		return false, nil
	}
	sealed, err := Seal(key, path, data)
	clear(data)
	if err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".sealing-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(sealed)
	if err = errors.Join(err, tmp.Sync(), tmp.Close()); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

// ProgressTo prints re-wrap progress lines.
func ProgressTo(out io.Writer) func(done, total int64) {
	return func(done, total int64) {
		fmt.Fprintf(out, "re-wrapped %d of %d deposits\n", done, total)
	}
}
