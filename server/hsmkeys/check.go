package hsmkeys

import (
	"context"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/store"
)

// CheckedKey is a token key that kts keyhsm check examines, and why the
// server needs it.
type CheckedKey struct {
	Label string
	// Use says what the key is for: "state key", or the version's state
	// (current, retiring, retired), or "wraps deposits" for a key some
	// deposit uses that no version records.
	Use string
}

// KeysToCheck lists the token keys kts keyhsm check examines: the state
// key when it seals the state directory's secrets, and every HSM key
// version the database records or some deposit uses, retired ones too:
// backups made before a rotation need them.
func KeysToCheck(cfg config.Config, keks []store.KEK) []CheckedKey {
	var keys []CheckedKey
	if cfg.HSMSealState {
		keys = append(keys, CheckedKey{Label: cfg.HSMStateKey, Use: "state key"})
	}
	for _, k := range keks {
		label, ok := Label(k.ID)
		if !ok {
			continue
		}
		use := k.State
		switch use {
		case store.KEKRetired:
			use = "retired: older backups need it"
		case "":
			use = "wraps deposits"
		}
		keys = append(keys, CheckedKey{Label: label, Use: use})
	}
	return keys
}

// CheckKey finds the key in the token, checks its attributes (AES-256,
// sensitive, never extractable) and wraps and unwraps a test value with it.
// The attributes are returned as the token reports them, when it does.
func CheckKey(ctx context.Context, tok *hsm.Token, kr *Keyring, label string) (hsm.KeyAttributes, error) {
	key, err := tok.Key(label)
	if err != nil {
		return hsm.KeyAttributes{}, err
	}
	a, err := key.Attributes()
	if err != nil {
		return a, err
	}
	if err := a.Check(); err != nil {
		return a, err
	}
	return a, kr.Check(ctx, ID(label))
}
