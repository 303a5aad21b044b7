package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/localdb"
	"trustee.dev/trustee/server/orgadmin"
	"trustee.dev/trustee/server/store"
)

func newKeyHSMCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "keyhsm",
		Short: "Keep the server's keys in an HSM (PKCS#11): init, check, migrate, rotate",
		Long: `keyhsm puts the server's key-encryption keys in a PKCS#11 token (an HSM),
as ktadmin keyhsm does: AES-256 keys generated inside the token, sensitive and
never extractable, that wrap every deposit's data key; the server's OpenPGP
key, session key and file keyring are sealed by a token key too, so a copy of
the state directory and the database opens nothing without the token.

The token's PIN comes from a file, an environment variable or a command
(--pin-file, --pin-env, --pin-script), never from the command line.`,
	}
	cmd.PersistentFlags().StringVarP(&dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	cmd.AddCommand(newKeyHSMInitCommand(&dir), newKeyHSMCheckCommand(&dir), newKeyHSMMigrateCommand(&dir), newKeyHSMRotateCommand(&dir))
	return cmd
}

func newKeyHSMInitCommand(dir *string) *cobra.Command {
	var module, token, pinFile, pinEnv, pinScript, keyLabel, stateKey string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create (or adopt) the HSM's keys, seal the state directory's secrets, and wrap new deposits in the HSM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(*dir)
			if err != nil {
				return err
			}
			if cfg.HasHSM() && (cfg.HSMModule != module || cfg.HSMTokenLabel != token) {
				return fmt.Errorf("%s already keeps its keys in the HSM %s; a state directory uses one HSM", *dir, hsmkeys.Describe(cfg))
			}
			cfg.HSMModule, cfg.HSMTokenLabel, cfg.HSMPINFile, cfg.HSMPINEnv, cfg.HSMPINScript = module, token, pinFile, pinEnv, pinScript
			if stateKey != "" {
				cfg.HSMStateKey = stateKey
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			if err := confdir.CheckTrusted(*dir, cfg); err != nil { // before the PIN script runs
				return err
			}
			return recordedHSM(cmd, *dir, audit.ActionHSMInit, cfg, map[string]any{"key_label": keyLabel, "seal_state": cfg.HSMSealState}, func() error {
				return keyHSMInit(cmd.Context(), cmd.OutOrStdout(), *dir, cfg, keyLabel)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&module, "module", "", "PKCS#11 library of the HSM (e.g. /usr/lib/softhsm/libsofthsm2.so)")
	f.StringVar(&token, "token-label", "", "label of the token that holds the keys")
	f.StringVar(&pinFile, "pin-file", "", "file holding the token's user PIN")
	f.StringVar(&pinEnv, "pin-env", "", "environment variable holding the token's user PIN")
	f.StringVar(&pinScript, "pin-script", "", "command (absolute path, no shell) that prints the token's user PIN")
	f.StringVar(&keyLabel, "key-label", hsmkeys.KEKLabelPrefix+"1", "label of the key that wraps deposits (adopted when the token has it)")
	f.StringVar(&stateKey, "state-key", "", "label of the key that seals the state directory's secrets (default "+config.DefaultHSMStateKey+")")
	cmd.MarkFlagRequired("module")
	cmd.MarkFlagRequired("token-label")
	return cmd
}

// keyHSMInit does kts keyhsm init for a validated configuration.
func keyHSMInit(ctx context.Context, out io.Writer, dir string, cfg config.Config, keyLabel string) error {
	tok, err := hsmkeys.OpenToken(dir, cfg)
	if err != nil {
		return fmt.Errorf("the HSM %s: %w", hsmkeys.Describe(cfg), err)
	}
	defer tok.Close()
	passive := cfg.Role == config.RolePassive
	var db *store.Store
	if !passive {
		if db, err = localdb.Open(ctx, dir); err != nil {
			return err
		}
		defer db.Close()
		if cur, err := db.CurrentKEK(ctx); err != nil {
			return err
		} else if label, ok := hsmkeys.Label(cur); ok {
			keyLabel = label // already initialized: adopt what wraps now
		}
	}
	labels := []string{keyLabel}
	if cfg.HSMSealState {
		labels = append(labels, cfg.HSMStateKey)
	}
	for _, label := range labels {
		if err := hsmkeys.CheckAdoptable(tok, label); err != nil {
			return err
		}
	}
	var stateKey *hsm.Key
	var made string
	if cfg.HSMSealState {
		if stateKey, made, err = hsmkeys.AdoptOrCreate(tok, cfg.HSMStateKey, passive); err != nil {
			return err
		}
		fmt.Fprintf(out, "HSM %s: state key %q %s\n", hsmkeys.Describe(cfg), cfg.HSMStateKey, made)
	}
	if _, made, err = hsmkeys.AdoptOrCreate(tok, keyLabel, passive); err != nil {
		return err
	}
	fmt.Fprintf(out, "deposit key %q %s\n", keyLabel, made)
	// The configuration first: a sealed file needs it to be read.
	if err := cfg.Save(dir); err != nil {
		return err
	}
	toSeal := hsmkeys.SealedFiles(cfg)
	if !cfg.HSMSealState {
		toSeal = nil
		fmt.Fprintln(out, "HSM_SEAL_STATE is false: the secrets stay as they are; the HSM holds the deposit keys")
	}
	for _, name := range toSeal {
		sealed, err := hsmkeys.SealFile(stateKey, cfg.Path(dir, name))
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
	if err := db.MakeCurrentKEK(ctx, hsmkeys.ID(keyLabel)); err != nil {
		return err
	}
	left, err := db.CountNotCurrent(ctx, hsmkeys.ID(keyLabel))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "new deposits are wrapped by HSM key %q once the servers restart (they open the HSM at start)\n", keyLabel)
	if left > 0 {
		fmt.Fprintf(out, "%d deposits are still wrapped by the file keyring: run `kts keyhsm migrate`\n", left)
	}
	return nil
}

func newKeyHSMCheckCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Show the HSM, its keys and their attributes, and test wrapping with each",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(*dir)
			if err != nil {
				return err
			}
			return recordedHSM(cmd, *dir, audit.ActionHSMCheck, cfg, nil, func() error { return keyHSMCheck(cmd, *dir) })
		},
	}
}

// keyHSMCheck does kts keyhsm check.
func keyHSMCheck(cmd *cobra.Command, dir string) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if st.HSM == nil {
		return fmt.Errorf("%s keeps no keys in an HSM; set one up with `kts keyhsm init`", dir)
	}
	cfg := st.Config
	info, err := st.HSM.Info()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "module:       %s\ntoken:        %s (%s %s, serial %s)\n", info.Module, info.Label, info.Manufacturer, info.Model, info.Serial)
	var keks []store.KEK
	if cfg.Role != config.RolePassive {
		db, err := localdb.Open(ctx, dir)
		if err != nil {
			return err
		}
		defer db.Close()
		if keks, err = db.KEKs(ctx); err != nil {
			return err
		}
	}
	kr := hsmkeys.NewKeyring(st.HSM, hsmkeys.Describe(cfg))
	var failed []string
	for _, k := range hsmkeys.KeysToCheck(cfg, keks) {
		a, err := hsmkeys.CheckKey(ctx, st.HSM, kr, k.Label)
		if errors.Is(err, hsm.ErrNoKey) {
			fmt.Fprintf(out, "key %-12q (%s) MISSING: %v\n", k.Label, k.Use, err)
			failed = append(failed, k.Label)
			continue
		}
		verdict := "wrap/unwrap self-test ok"
		if err != nil {
			verdict, failed = "FAILED: "+err.Error(), append(failed, k.Label)
		}
		fmt.Fprintf(out, "key %-12q (%s) %s %d-bit, sensitive=%v always-sensitive=%v extractable=%v never-extractable=%v token=%v; %s\n",
			k.Label, k.Use, a.KeyType, a.ValueLen*8, a.Sensitive, a.AlwaysSensitive, a.Extractable, a.NeverExtractable, a.Token, verdict)
	}
	for _, k := range keks {
		state := k.State
		if state == "" {
			state = "file keyring"
		}
		fmt.Fprintf(out, "deposits wrapped by %s (%s): %d\n", k.ID, state, k.Deposits)
	}
	for _, name := range hsmkeys.SealedFiles(cfg) {
		data, err := os.ReadFile(cfg.Path(dir, name))
		if err != nil {
			return err
		}
		state := "sealed by the HSM"
		switch {
		case hsmkeys.IsSealed(data):
		case !cfg.HSMSealState:
			state = "not sealed (HSM_SEAL_STATE is false)"
		default:
			state, failed = "NOT sealed (run kts keyhsm init)", append(failed, name)
		}
		fmt.Fprintf(out, "%s: %s\n", name, state)
	}
	if len(failed) > 0 {
		return fmt.Errorf("HSM check failed for %s", strings.Join(failed, ", "))
	}
	return nil
}

func newKeyHSMMigrateCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Re-wrap the deposits still wrapped by the file keyring with the HSM's current key (resumable)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHSMStore(cmd, *dir, audit.ActionHSMMigrate, func(ctx context.Context, st *confdir.State, db *store.Store) error {
				cur, err := db.CurrentKEK(ctx)
				if err != nil {
					return err
				}
				if _, ok := hsmkeys.Label(cur); !ok {
					return errors.New("no HSM key wraps new deposits yet; run `kts keyhsm init` first")
				}
				n, err := hsmkeys.Rewrap(ctx, db, st.Keyring, cur, hsmkeys.ProgressTo(cmd.OutOrStdout()))
				if err != nil {
					return fmt.Errorf("after re-wrapping %d deposits: %w (run migrate again to go on)", n, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "every deposit is wrapped by %s; the file keyring stays (sealed) for older backups\n", cur)
				return nil
			})
		},
	}
}

func newKeyHSMRotateCommand(dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Make a new HSM key version current and re-wrap every deposit with it (resumable; no downtime)",
		Long: `rotate creates the next deposit key version in the token (kts-kek-N), makes
it current — running servers wrap new deposits with it within seconds — and
re-wraps every existing deposit's data key with it in the background of the
servers, showing progress. Deposits stay readable throughout: a row holds its
old or its new wrapping, and the old key opens the old one. When no deposit
uses the old version any more, it is marked retired; it stays in the token,
for backups made before the rotation need it. A new version takes a label
the token does not hold yet: a key the database never recorded (made by a
rotation after the backup it was restored from) is left alone, unused.

Interrupted, it is resumed by running it again: while an older version still
wraps deposits, rotate finishes that rotation instead of starting another.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHSMStore(cmd, *dir, audit.ActionHSMRotate, func(ctx context.Context, st *confdir.State, db *store.Store) error {
				return hsmkeys.Rotation{DB: db, Token: st.HSM, Keyring: st.Keyring, Wait: 2*daemon.KEKPoll + time.Second, Out: cmd.OutOrStdout()}.Rotate(ctx)
			})
		},
	}
}

// withHSMStore opens the state directory (and its HSM) and the database of
// an active for a keyhsm command, and records the command's outcome as
// action.
func withHSMStore(cmd *cobra.Command, dir, action string, run func(context.Context, *confdir.State, *store.Store) error) error {
	ctx := cmd.Context()
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if st.HSM == nil {
		return fmt.Errorf("%s keeps no keys in an HSM; set one up with `kts keyhsm init`", dir)
	}
	if st.Config.Role == config.RolePassive {
		return orgadmin.Passive(st.Config.ActiveURL, st.Config.ActiveDB)
	}
	return recordedHSM(cmd, dir, action, st.Config, nil, func() error {
		db, err := localdb.Open(ctx, dir)
		if err != nil {
			return err
		}
		defer db.Close()
		return run(ctx, st, db)
	})
}

// recordedHSM runs an HSM operation and records its outcome in the audit
// log. It does nothing when the log cannot be reached (fail closed).
func recordedHSM(cmd *cobra.Command, dir, action string, cfg config.Config, details map[string]any, run func() error) error {
	ctx := cmd.Context()
	log, err := localdb.OpenRecorder(ctx, dir)
	if err != nil {
		return fmt.Errorf("nothing was done: %w", err)
	}
	defer log.Close()
	err = run()
	outcome, more := localdb.Outcome(err)
	details = localdb.JoinDetails(map[string]any{"module": cfg.HSMModule, "token": cfg.HSMTokenLabel}, details, more)
	if rerr := log.Record(context.WithoutCancel(ctx), action, "hsm:"+cfg.HSMTokenLabel, outcome, details); rerr != nil {
		if err == nil {
			return fmt.Errorf("done, but recording it in the audit log failed: %w", rerr)
		}
		return errors.Join(err, rerr)
	}
	return err
}
