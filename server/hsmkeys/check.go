package hsmkeys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

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
	return append(keys, ScanVersions(keks).Keys...)
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

// Checkup is kts keyhsm check: the token, every key the server needs with
// its attributes and a wrap/unwrap self-test, the deposits each key
// version wraps, and whether the state directory's secrets are sealed.
type Checkup struct {
	Dir    string
	Config config.Config
	Token  *hsm.Token
	// KEKs reads the database's key versions; nil on a passive, whose
	// versions are the active's.
	KEKs func(context.Context) ([]store.KEK, error)
	// Out is told what is found, a line each.
	Out io.Writer
}

// Run checks, telling c.Out what it finds; it fails naming each key or
// file that failed.
func (c Checkup) Run(ctx context.Context) error {
	cfg, out := c.Config, c.Out
	info, err := c.Token.Info()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "module:       %s\ntoken:        %s (%s %s, serial %s)\n", info.Module, info.Label, info.Manufacturer, info.Model, info.Serial)
	var keks []store.KEK
	if c.KEKs != nil {
		if keks, err = c.KEKs(ctx); err != nil {
			return err
		}
	}
	kr := NewKeyring(c.Token, Describe(cfg))
	var failed []string
	for _, k := range KeysToCheck(cfg, keks) {
		a, err := CheckKey(ctx, c.Token, kr, k.Label)
		line, ok := keyLine(k, a, err)
		fmt.Fprintln(out, line)
		if !ok {
			failed = append(failed, k.Label)
		}
	}
	for _, k := range keks {
		fmt.Fprintln(out, versionLine(k))
	}
	for _, name := range SealedFiles(cfg) {
		data, err := os.ReadFile(cfg.Path(c.Dir, name))
		if err != nil {
			return err
		}
		state, ok := sealedState(data, cfg.HSMSealState)
		fmt.Fprintf(out, "%s: %s\n", name, state)
		if !ok {
			failed = append(failed, name)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("HSM check failed for %s", strings.Join(failed, ", "))
	}
	return nil
}

// keyLine says what the check of a token key found (a, err from
// CheckKey), and whether it passed.
func keyLine(k CheckedKey, a hsm.KeyAttributes, err error) (string, bool) {
	if errors.Is(err, hsm.ErrNoKey) {
		return fmt.Sprintf("key %-12q (%s) MISSING: %v", k.Label, k.Use, err), false
	}
	verdict := "wrap/unwrap self-test ok"
	if err != nil {
		verdict = "FAILED: " + err.Error()
	}
	return fmt.Sprintf("key %-12q (%s) %s %d-bit, sensitive=%v always-sensitive=%v extractable=%v never-extractable=%v token=%v; %s",
		k.Label, k.Use, a.KeyType, a.ValueLen*8, a.Sensitive, a.AlwaysSensitive, a.Extractable, a.NeverExtractable, a.Token, verdict), err == nil
}

// versionLine says how many deposits a key version wraps.
func versionLine(k store.KEK) string {
	state := k.State
	if state == "" {
		state = "file keyring"
	}
	return fmt.Sprintf("deposits wrapped by %s (%s): %d", k.ID, state, k.Deposits)
}

// sealedState says whether a state file (its contents data) is sealed as
// the configuration wants (sealState: HSM_SEAL_STATE), and whether that
// is right.
func sealedState(data []byte, sealState bool) (string, bool) {
	switch {
	case IsSealed(data):
		return "sealed by the HSM", true
	case !sealState:
		return "not sealed (HSM_SEAL_STATE is false)", true
	}
	return "NOT sealed (run kts keyhsm init)", false
}
