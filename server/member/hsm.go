package member

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// The HSM of a member (HSM_MODULE set). Setup keeps the identity where the
// configuration names it, usually a read-only Secret: it seals nothing and
// does not rewrite keytrustee.conf (the operator renders it, with
// HSM_SEAL_STATE false). The HSM holds the deposit keys, made in the token
// as kts keyhsm makes them (AES-256, sensitive, never extractable), so a
// copy of the database or the volume opens no deposit without it.

// firstKEKLabel is the deposit key an HSM starts with. Keys are never
// removed from the token (a retired version stays for older backups), so
// every token of the server holds it.
const firstKEKLabel = hsmkeys.KEKLabelPrefix + "1"

// checkHSM opens the configuration's token before setup changes anything:
// its module, token and PIN must do. With HSM_SEAL_STATE the identity must
// be sealed already, for setup seals nothing; with needKey the token must
// hold the deposit key.
func checkHSM(dir string, cfg config.Config, needKey bool) error {
	if cfg.HSMSealState {
		var plain []string
		for _, name := range hsmkeys.SealedFiles(cfg) {
			data, err := os.ReadFile(cfg.Path(dir, name))
			if err != nil {
				return err
			}
			if !hsmkeys.IsSealed(data) {
				plain = append(plain, name)
			}
			clear(data)
		}
		if len(plain) > 0 {
			return fmt.Errorf("HSM_SEAL_STATE is true, but setup seals nothing (it keeps the identity where the configuration names it), and these are not sealed: %s. "+
				"Set HSM_SEAL_STATE to false to keep them as they are, the HSM holding the deposit keys (as the operator does)", strings.Join(plain, ", "))
		}
	}
	tok, err := hsmkeys.OpenToken(dir, cfg)
	if err != nil {
		return fmt.Errorf("the HSM %s: %w", hsmkeys.Describe(cfg), err)
	}
	defer tok.Close()
	if needKey {
		return passiveKEK(tok, cfg)
	}
	return nil
}

// passiveKEK checks that the token holds the deposit key the active made.
func passiveKEK(tok *hsm.Token, cfg config.Config) error {
	_, err := tok.Key(firstKEKLabel)
	if errors.Is(err, hsm.ErrNoKey) {
		return fmt.Errorf("the HSM %s has no key %q: a passive uses the active's deposit keys, which the active's setup creates; "+
			"give both members the same token (or tokens holding the same keys), and set up the active first", hsmkeys.Describe(cfg), firstKEKLabel)
	}
	if err != nil {
		return fmt.Errorf("the HSM %s: key %q: %w", hsmkeys.Describe(cfg), firstKEKLabel, err)
	}
	return nil
}

// setupActiveHSM makes the HSM wrap the active's deposits: it adopts the
// deposit key the database records as current, or else creates the next
// one in the token (adopting it when the token has it) and records it as
// current; then it re-wraps every deposit wrapped by another key (the file
// keyring's, when the HSM is added to a server that has deposits), as
// kts keyhsm migrate does. It opens the state directory as the server does,
// so what the server needs is checked too. PostgreSQL is started for it and
// stopped again. Run again, it changes nothing.
func setupActiveHSM(ctx context.Context, out io.Writer, dir string, inst *pg.Instance) (err error) {
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	desc := hsmkeys.Describe(st.Config)
	if err := inst.Start(ctx); err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx)))
	}()
	// The commits of this session (the schema, the current key, re-wrapped
	// deposits) do not wait for the synchronous standby, which is not
	// attached while the active sets up: waiting would never end. That is
	// safe: a passive made later copies the whole cluster, and one that
	// exists receives these commits through its replication slot when it
	// attaches, before any later commit of the server (which waits for it).
	// A passive that never receives them still holds a state that opens
	// every deposit: a re-wrapped row opens with its old wrapping too, the
	// file keyring stays in the identity and the key in the token.
	db, err := store.Open(ctx, st.DSN()+"&synchronous_commit=local", 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	keks, err := db.KEKs(ctx)
	if err != nil {
		return err
	}
	label, adopt := decideKEK(keks)
	cur := hsmkeys.ID(label)
	if adopt {
		if _, err := st.HSM.Key(label); err != nil {
			if errors.Is(err, hsm.ErrNoKey) {
				return fmt.Errorf("the database records HSM key %q as the one that wraps deposits, and the HSM %s has no such key: give this member the token that holds the server's keys", label, desc)
			}
			return fmt.Errorf("the HSM %s: key %q: %w", desc, label, err)
		}
		fmt.Fprintf(out, "HSM %s: deposit key %q is in the token and wraps new deposits\n", desc, label)
	} else {
		_, made, err := hsmkeys.AdoptOrCreate(st.HSM, label, false)
		if err != nil {
			return fmt.Errorf("the HSM %s: %w", desc, err)
		}
		fmt.Fprintf(out, "HSM %s: deposit key %q %s\n", desc, label, made)
		if err := db.MakeCurrentKEK(ctx, cur); err != nil {
			return err
		}
		fmt.Fprintf(out, "recorded %s in the database as the key that wraps new deposits\n", cur)
	}
	left, err := db.CountNotCurrent(ctx, cur)
	if err != nil || left == 0 {
		return err
	}
	// No server writes meanwhile: the active's is not running yet, and the
	// passive's forwards its writes to it.
	fmt.Fprintf(out, "%d deposits are wrapped by another key than %s: re-wrapping them\n", left, cur)
	n, err := hsmkeys.Rewrap(ctx, db, st.Keyring, cur, hsmkeys.ProgressTo(out))
	if err != nil {
		return fmt.Errorf("after re-wrapping %d deposits: %w (setup goes on where it stopped when run again)", n, err)
	}
	fmt.Fprintf(out, "every deposit is wrapped by %s; the file keyring stays in the identity for older backups\n", cur)
	return nil
}

// decideKEK decides which HSM key wraps the active's deposits from the
// keys the database records: the one recorded as current when it is an
// HSM key (adopt: the token must hold it), or else the next version, which
// setup creates in the token (or adopts when the token has it) and records.
func decideKEK(keks []store.KEK) (label string, adopt bool) {
	v := hsmkeys.ScanVersions(keks)
	if label, ok := hsmkeys.Label(v.Current); ok {
		return label, true
	}
	return hsmkeys.KEKLabelPrefix + strconv.Itoa(v.Next), false
}

// setupPassiveHSM checks that the passive opens its state directory as the
// server does and that the token holds the active's deposit key. It
// changes nothing: the passive uses the keys the active made and chose.
func setupPassiveHSM(out io.Writer, dir string) error {
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := passiveKEK(st.HSM, st.Config); err != nil {
		return err
	}
	fmt.Fprintf(out, "HSM %s: deposit key %q is in the token; this passive uses the keys the active chooses\n", hsmkeys.Describe(st.Config), firstKEKLabel)
	return nil
}
