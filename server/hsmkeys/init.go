package hsmkeys

import (
	"context"
	"fmt"
	"io"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
)

// KEKStore is what kts keyhsm init needs of the active's database: the
// key versions.
type KEKStore interface {
	CurrentKEK(ctx context.Context) (string, error)
	MakeCurrentKEK(ctx context.Context, id string) error
	CountNotCurrent(ctx context.Context, current string) (int64, error)
}

// InitLabels decides which token keys kts keyhsm init adopts or creates:
// the deposit key (the one that wraps now when an HSM key does already,
// else requested) and, when it seals the state directory's secrets, the
// state key. Every one is checked before anything is made.
func InitLabels(cfg config.Config, current, requested string) (keyLabel string, labels []string) {
	keyLabel = requested
	if label, ok := Label(current); ok {
		keyLabel = label // already initialized: adopt what wraps now
	}
	labels = []string{keyLabel}
	if cfg.HSMSealState {
		labels = append(labels, cfg.HSMStateKey)
	}
	return keyLabel, labels
}

// Init is kts keyhsm init on the state directory dir for its validated
// configuration cfg, with the token open: it adopts or creates the state
// key and the deposit key keyLabel (a passive only adopts: it uses the
// active's keys), saves cfg, seals the state directory's secrets, and on
// an active (db, which a passive does not use) makes the deposit key
// current. It tells out what it does.
func Init(ctx context.Context, out io.Writer, dir string, cfg config.Config, tok *hsm.Token, db KEKStore, keyLabel string) error {
	passive := cfg.Role == config.RolePassive
	current := ""
	if !passive {
		var err error
		if current, err = db.CurrentKEK(ctx); err != nil {
			return err
		}
	}
	keyLabel, labels := InitLabels(cfg, current, keyLabel)
	for _, label := range labels {
		if err := CheckAdoptable(tok, label); err != nil {
			return err
		}
	}
	var stateKey *hsm.Key
	var made string
	var err error
	if cfg.HSMSealState {
		if stateKey, made, err = AdoptOrCreate(tok, cfg.HSMStateKey, passive); err != nil {
			return err
		}
		fmt.Fprintf(out, "HSM %s: state key %q %s\n", Describe(cfg), cfg.HSMStateKey, made)
	}
	if _, made, err = AdoptOrCreate(tok, keyLabel, passive); err != nil {
		return err
	}
	fmt.Fprintf(out, "deposit key %q %s\n", keyLabel, made)
	// The configuration first: a sealed file needs it to be read.
	if err := cfg.Save(dir); err != nil {
		return err
	}
	toSeal := SealedFiles(cfg)
	if !cfg.HSMSealState {
		toSeal = nil
		fmt.Fprintln(out, "HSM_SEAL_STATE is false: the secrets stay as they are; the HSM holds the deposit keys")
	}
	for _, name := range toSeal {
		sealed, err := SealFile(stateKey, cfg.Path(dir, name))
		if err != nil {
			return err
		}
		if sealed {
			fmt.Fprintf(out, "sealed %s with the state key\n", name)
		}
	}
	if passive {
		fmt.Fprintln(out, "this passive uses the active's keys; the active chooses the key that wraps")
		return nil
	}
	if err := db.MakeCurrentKEK(ctx, ID(keyLabel)); err != nil {
		return err
	}
	left, err := db.CountNotCurrent(ctx, ID(keyLabel))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "new deposits are wrapped by HSM key %q once the servers restart (they open the HSM at start)\n", keyLabel)
	if left > 0 {
		fmt.Fprintf(out, "%d deposits are still wrapped by the file keyring: run `kts keyhsm migrate`\n", left)
	}
	return nil
}
