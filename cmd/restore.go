package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/gnupg"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

type restoreFlags struct {
	confdir, client   string
	keyFile, passFile string
	dbPort            int
	runAs             string
}

func newRestoreCommand() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore ARCHIVE",
		Short: "Restore the state directory and database from a backup",
		Long: `restore puts back what kts backup (or ktbackup.sh) archived: the state
directory and the database, on a fresh host or over an existing server.

An encrypted archive is decrypted with GnuPG (the recipient's secret key in
the keyring of the account running restore) or with --gpg-keyring, a secret
key file. The whole archive is read and checked before anything changes: a
damaged, truncated, altered or foreign archive changes nothing.

Over an existing server, its database is replaced in one step and its
keytrustee.conf and database passwords stay (they belong to this host's
database); keys, certificates and the rest of the state come from the
archive. Stop the kts server first (PostgreSQL may keep running) and start
it again afterwards. Deposits made after the backup are not restored.

With --client DIR it restores a client's state directory from a client
archive.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRestore(cmd, f, args[0]) },
	}
	addConfdirFlag(cmd, &f.confdir)
	fl := cmd.Flags()
	addArchiveFlags(fl, &f)
	fl.IntVar(&f.dbPort, "database-port", 0, "database port (default: the state directory's DB_PORT, 11381)")
	fl.StringVar(&f.client, "client", "", "restore a client archive into this client state directory")
	return cmd
}

// addArchiveFlags adds what opening an archive and running its PostgreSQL
// take (kts restore, kts backup verify).
func addArchiveFlags(fl *pflag.FlagSet, f *restoreFlags) {
	fl.StringVar(&f.keyFile, "gpg-keyring", "", "decrypt with the secret key in this file instead of GnuPG")
	fl.StringVar(&f.passFile, "passphrase-file", "", "file holding the passphrase of the key in --gpg-keyring")
	fl.StringVar(&f.runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
}

func runRestore(cmd *cobra.Command, f restoreFlags, archive string) error {
	ctx := cmd.Context()
	target := f.confdir
	if f.client != "" {
		target = f.client
	}
	target, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	staged, err := unpackArchive(ctx, archive, f, target)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was changed", archive, err)
	}
	defer staged.Remove()
	out := cmd.OutOrStdout()
	taken := fmt.Sprintf("the backup of %s taken at %s", staged.Host, staged.Created.UTC().Format(time.DateTime+" MST"))
	if f.client != "" {
		if staged.Kind != backup.KindClient {
			staged.Abandon(target)
			return fmt.Errorf("%s is a server backup; restore it without --client; nothing was changed", archive)
		}
		outside, err := staged.Place(target, func(string) bool { return false })
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "restored client state directory %s (%d entries) from %s\n", target, len(staged.Entries), taken)
		printOutside(out, outside, archive)
		return nil
	}
	if staged.Kind != backup.KindServer {
		staged.Abandon(target)
		return fmt.Errorf("%s is a client backup; restore it with --client DIR; nothing was changed", archive)
	}
	res, err := restoreServer(ctx, staged, target, f, archive)
	if err != nil {
		return err
	}
	c := res.contents
	fmt.Fprintf(out, "restored state directory %s and database %q from %s\n", target, res.cfg.DBName, taken)
	fmt.Fprintf(out, "restored rows: %d organizations, %d clients, %d deposits (%d in all)\n",
		c.Organizations, c.Clients, c.Deposits, c.Organizations+c.Clients+c.Deposits)
	fmt.Fprintln(out, "deposits made after the backup was taken are not restored")
	if res.standalone {
		fmt.Fprintln(out, "the backup came from a passive; it was restored as a standalone server (pair it again as docs/OPERATIONS.md says)")
	}
	if staged.Fingerprint != "" {
		fmt.Fprintf(out, "server key %s\n", staged.Fingerprint)
	}
	printOutside(out, res.outside, archive)
	fmt.Fprintln(out, "start (or restart) the kts server now")
	return nil
}

// unpackArchive reads, decrypts when needed, checks and stages an archive.
func unpackArchive(ctx context.Context, archive string, f restoreFlags, target string) (*backup.Staged, error) {
	file, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 64<<10)
	head, _ := br.Peek(512)
	var r io.Reader = br
	var finish func() error
	if gnupg.IsEncrypted(head) {
		dec, err := gnupg.Decrypt(ctx, br, gnupg.DecryptOptions{SecretKeyFile: f.keyFile, PassphraseFile: f.passFile})
		if err != nil {
			return nil, err
		}
		r, finish = dec, dec.Close
	}
	return backup.Unpack(r, finish, target)
}

type serverRestore struct {
	cfg        config.Config
	contents   store.Contents
	outside    []string
	standalone bool // a passive's backup restored as a standalone server
}

// restoreServer puts a staged server archive in place: over an existing
// server the database is replaced first and the files follow; on a fresh
// host the files come first, then a new database cluster takes the dump.
func restoreServer(ctx context.Context, staged *backup.Staged, target string, f restoreFlags, archive string) (res serverRestore, err error) {
	existing := true
	res.cfg, err = config.Load(target)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			staged.Abandon(target)
			return res, fmt.Errorf("%w; nothing was changed", err)
		}
		existing = false
		if res.cfg, err = stagedConfig(staged); err != nil {
			staged.Abandon(target)
			return res, fmt.Errorf("%w; nothing was changed", err)
		}
		if res.cfg.Role == config.RolePassive {
			res.cfg.Role, res.cfg.ActiveURL, res.cfg.ActiveCA, res.cfg.ActiveDB, res.cfg.StandbyName = config.RoleActive, "", "", "", ""
			res.standalone = true
		}
	}
	if res.cfg.Role == config.RolePassive {
		staged.Abandon(target)
		return res, fmt.Errorf("%s is a passive's state directory, whose database follows the active's: restore on the active "+
			"(the passive follows; when the restored keys differ from the passive's, set it up again with `kts init --from-active`); nothing was changed", target)
	}
	if f.dbPort != 0 {
		res.cfg.DBPort = f.dbPort
	}
	cfg := res.cfg
	tok, err := stagedHSM(staged, target, cfg)
	if err != nil {
		staged.Abandon(target)
		return res, fmt.Errorf("%w; nothing was changed", err)
	}
	if tok != nil {
		defer tok.Close()
	}
	keep := func(rel string) bool {
		return existing && (rel == config.FileName || rel == cfg.DBPasswordFile || rel == cfg.ReplicationPasswordFile)
	}
	inst := pgInstance(target, cfg, f.runAs)
	placed := false
	place := func() error {
		res.outside, err = staged.Place(target, keep)
		if err == nil && !existing {
			err = cfg.Save(target)
		}
		placed = true
		return err
	}
	if !inst.Initialized() {
		// A fresh host: the files go first, for the new cluster takes the
		// restored database password.
		if err := place(); err != nil {
			return res, err
		}
		if err := initDB(ctx, target, cfg, inst); err != nil {
			return res, fmt.Errorf("the state directory is restored, but creating its database failed: %w", err)
		}
	}
	st, err := inst.Status(ctx)
	if err != nil {
		return res, err
	}
	if !st.Running {
		if err := inst.Start(ctx); err != nil {
			return res, err
		}
		defer func() { err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx))) }()
	}
	pw, err := confdir.ReadDBPassword(target, cfg)
	if err != nil && !placed {
		pw, err = stagedSecret(staged, cfg.DBPasswordFile)
	}
	if err != nil {
		return res, err
	}
	if err := checkPassiveAttached(ctx, inst, cfg, pw); err != nil {
		return res, unchanged(err, placed, staged, target)
	}
	if res.contents, err = replaceDatabase(ctx, inst, cfg, pw, staged, tok, archive); err != nil {
		return res, unchanged(err, placed, staged, target)
	}
	// The anchor names a checkpoint of the replaced chain; the server
	// writes the restored chain's at its next checkpoint.
	if err := os.Remove(filepath.Join(target, audit.AnchorFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("the database is restored, but removing the audit anchor file failed: %w", err)
	}
	if !placed {
		if err := place(); err != nil {
			return res, fmt.Errorf("the database is restored, but putting the state directory back failed: %w", err)
		}
	}
	return res, nil
}

// replaceDatabase replaces the server's database by the staged archive's
// dump in one step, after checking what it holds and recording the
// restore in its audit chain; it returns what the restored database holds.
func replaceDatabase(ctx context.Context, inst *pg.Instance, cfg config.Config, pw string, staged *backup.Staged, tok *hsm.Token, archive string) (contents store.Contents, err error) {
	dump, err := os.Open(staged.File(staged.Dump))
	if err != nil {
		return contents, err
	}
	defer dump.Close()
	replaced := replacedChain(ctx, inst, cfg, pw)
	err = inst.Replace(ctx, pw, cfg.DBName, dump, func(ctx context.Context, conn *pgx.Conn) error {
		var err error
		if contents, err = store.ReadContents(ctx, conn); err != nil {
			return err
		}
		if err := checkHSMKeys(ctx, conn, tok, cfg); err != nil {
			return err
		}
		// The restore is recorded in the restored database's audit chain
		// before that database is put in place: it fails closed.
		if err := store.MigrateConn(ctx, conn); err != nil {
			return err
		}
		details := map[string]any{"archive": filepath.Base(archive), "backup_host": staged.Host,
			"backup_time": staged.Created.UTC().Format(time.RFC3339), "server_key": staged.Fingerprint,
			"organizations": contents.Organizations, "clients": contents.Clients, "deposits": contents.Deposits}
		for k, v := range replaced {
			details[k] = v
		}
		return store.RecordChangeOn(ctx, conn, audit.Change(ctx, audit.ActionRestore, "database:"+cfg.DBName, audit.OutcomeOK, details))
	})
	return contents, err
}

// replacedChain describes the audit chain of the database a restore
// replaces (its head), for the restore's record: the records after the
// backup leave with that database.
func replacedChain(ctx context.Context, inst *pg.Instance, cfg config.Config, pw string) map[string]any {
	conn, err := pgx.Connect(ctx, inst.ConnString(cfg.DBName, pw))
	if err != nil {
		return map[string]any{"replaced_chain": "none"}
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var seq int64
	var hash []byte
	if err := conn.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &hash); err != nil {
		return map[string]any{"replaced_chain": "none"}
	}
	return map[string]any{"replaced_chain_seq": seq, "replaced_chain_hash": fmt.Sprintf("%x", hash)}
}

// unchanged says, for a restore that failed before it changed anything,
// that nothing was changed.
func unchanged(err error, placed bool, staged *backup.Staged, target string) error {
	if placed {
		return err
	}
	staged.Abandon(target)
	return fmt.Errorf("%w; nothing was changed", err)
}

// checkPassiveAttached refuses to restore on the active of a pair while
// its passive is away: the restore is a write, and writes need both.
func checkPassiveAttached(ctx context.Context, inst *pg.Instance, cfg config.Config, pw string) error {
	if cfg.StandbyName == "" {
		return nil
	}
	st, err := inst.ReplicationStatus(ctx, pw)
	if err != nil {
		return err
	}
	if !st.Attached || st.SyncState != "sync" {
		return fmt.Errorf("the passive's database (%s) is not connected to this active: writes, a restore too, need both servers; start it first", cfg.StandbyName)
	}
	return nil
}

// stagedConfig reads the configuration in a staged archive.
func stagedConfig(staged *backup.Staged) (config.Config, error) {
	data, err := stagedFile(staged, config.FileName)
	if err != nil {
		return config.Config{}, err
	}
	return config.Parse(data)
}

// stagedSecret reads a secret file of the staged state directory.
func stagedSecret(staged *backup.Staged, rel string) (string, error) {
	data, err := stagedFile(staged, rel)
	return string(trimNewline(data)), err
}

func stagedFile(staged *backup.Staged, rel string) ([]byte, error) {
	i, ok := staged.StateFile(rel)
	if !ok {
		return nil, fmt.Errorf("the archive holds no %s", rel)
	}
	return os.ReadFile(staged.File(i))
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// printOutside tells the operator about archived files from outside the
// state directory, which restore does not write.
func printOutside(out io.Writer, outside []string, archive string) {
	for _, p := range outside {
		fmt.Fprintf(out, "not restored, outside the state directory: %s (extract it with `tar -xf %s -C / %s` after decrypting)\n",
			p, archive, p[1:])
	}
}

// stagedHSM opens the HSM that sealed the archive's secrets, and checks
// that it unseals them: a backup whose keys are in an HSM restores only
// where that HSM (with the same keys) is. It returns nil when the archive
// holds no sealed file.
func stagedHSM(staged *backup.Staged, target string, cfg config.Config) (*hsm.Token, error) {
	var sealed []string
	for _, name := range hsmkeys.SealedFiles(cfg) {
		if data, err := stagedFile(staged, name); err == nil && hsmkeys.IsSealed(data) {
			sealed = append(sealed, name)
		}
	}
	if len(sealed) == 0 {
		if !cfg.HasHSM() {
			return nil, nil
		}
		// Secrets kept unsealed (HSM_SEAL_STATE false): the token still
		// holds the keys of the deposits, which checkHSMKeys looks for.
		tok, err := hsmkeys.OpenToken(target, cfg)
		if err != nil {
			return nil, fmt.Errorf("the configuration names the HSM %s, which holds the deposits' keys; restore needs it: %w", hsmkeys.Describe(cfg), err)
		}
		return tok, nil
	}
	if !cfg.HasHSM() {
		return nil, fmt.Errorf("the backup's %s are sealed by an HSM, and the configuration names none (keytrustee.conf HSM_MODULE)", strings.Join(sealed, ", "))
	}
	tok, err := hsmkeys.OpenToken(target, cfg)
	if err != nil {
		return nil, fmt.Errorf("the backup's secrets are sealed by the HSM %s; restore needs it: %w", hsmkeys.Describe(cfg), err)
	}
	for _, name := range sealed {
		data, _ := stagedFile(staged, name)
		pt, err := hsmkeys.Unseal(tok, name, data)
		clear(pt)
		if err != nil {
			tok.Close()
			return nil, fmt.Errorf("the HSM %s does not open the backup's %s (restore needs the same HSM key): %w", hsmkeys.Describe(cfg), name, err)
		}
	}
	return tok, nil
}

// checkHSMKeys checks that the token holds every HSM key the restored
// deposits are wrapped with.
func checkHSMKeys(ctx context.Context, conn *pgx.Conn, tok *hsm.Token, cfg config.Config) error {
	rows, err := conn.Query(ctx, `SELECT DISTINCT kek_id FROM deposits WHERE kek_id LIKE 'hsm:%'`)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		label, _ := hsmkeys.Label(id)
		if tok == nil {
			return fmt.Errorf("the backup's deposits are wrapped by HSM key %q, and the configuration names no HSM", label)
		}
		if _, err := tok.Key(label); err != nil {
			return fmt.Errorf("the backup's deposits are wrapped by HSM key %q, which the HSM %s does not hold (restore needs the same HSM key): %w",
				label, hsmkeys.Describe(cfg), err)
		}
	}
	return nil
}
