package cmd

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
	"trustee.dev/trustee/server/store"
)

type drillFlags struct {
	restoreFlags
	work string
}

func newBackupVerifyCommand() *cobra.Command {
	var f drillFlags
	cmd := &cobra.Command{
		Use:   "verify ARCHIVE",
		Short: "Restore a server backup into a throw-away PostgreSQL and compare it with what was backed up (a restore drill)",
		Long: `verify is a restore drill: it decrypts and checks the archive (its
manifest and the checksum of every entry) and, as kts restore does, that the
configured HSM opens its sealed secrets and holds every key its deposits are
wrapped with; then it creates a new PostgreSQL cluster
in a temporary directory, loads the archive's database dump into it, dumps
that database again and compares the two table by table: the number of rows
and a checksum of them. It changes no server and removes what it made.

It exits 0 when every table came back with the same rows, and 1 naming each
table that did not, or the step that failed (an archive that cannot be
decrypted, is damaged, or does not load): a backup that does not restore is
a failed backup.

An encrypted archive is opened with the secret key in --gpg-keyring or with
GnuPG's keyring of the account running it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runDrill(cmd, f, args[0]) },
	}
	fl := cmd.Flags()
	addArchiveFlags(fl, &f.restoreFlags)
	fl.StringVar(&f.work, "work-dir", "", "where to make the throw-away cluster (default: the system's temporary directory)")
	return cmd
}

// drillResult is what a restore drill found.
type drillResult struct {
	tables   []backup.TableSum
	contents store.Contents
}

func runDrill(cmd *cobra.Command, f drillFlags, archive string) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	res, err := drill(ctx, f, archive)
	if err != nil {
		return fmt.Errorf("restore drill of %s: %w", archive, err)
	}
	fmt.Fprintf(out, "restore drill of %s: ok, %s\n", filepath.Base(archive), res.summary())
	return nil
}

// summary says what a drill that passed restored.
func (res drillResult) summary() string {
	var rows int64
	for _, t := range res.tables {
		rows += t.Rows
	}
	c := res.contents
	return fmt.Sprintf("%d tables and %d rows restored as they were backed up (%d organizations, %d clients, %d deposits)",
		len(res.tables), rows, c.Organizations, c.Clients, c.Deposits)
}

func drill(ctx context.Context, f drillFlags, archive string) (res drillResult, err error) {
	work, err := os.MkdirTemp(f.work, "kts-drill-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	staged, err := restore.Unpack(ctx, archive, restore.Decryption{KeyFile: f.keyFile, PassphraseFile: f.passFile}, filepath.Join(work, "state"))
	if err != nil {
		return res, err
	}
	defer staged.Remove()
	if staged.Kind != backup.KindServer {
		return res, errors.New("it is a client backup, which holds no database to restore")
	}
	// What a restore checks before it writes anything, the drill checks
	// too: a drill passes only where a restore would.
	cfg, err := restore.Config(staged)
	if err != nil {
		return res, err
	}
	tok, err := restore.Check(staged, filepath.Join(work, "state"), cfg)
	if err != nil {
		return res, err
	}
	if tok != nil {
		tok.Close()
	}
	dumpFile := staged.File(staged.Dump)
	want, err := sumFile(dumpFile)
	if err != nil {
		return res, fmt.Errorf("reading its database dump: %w", err)
	}

	port, err := pg.FreePort()
	if err != nil {
		return res, err
	}
	inst := &pg.Instance{DataDir: filepath.Join(work, "db"), Host: "127.0.0.1", Port: port, User: "kts_drill",
		RunAs: f.runAs, SocketDir: filepath.Join(work, "run")}
	if _, err := inst.PrepareStateDir(work); err != nil {
		return res, err
	}
	pw := rand.Text()
	if err := inst.Init(ctx, pw); err != nil {
		return res, fmt.Errorf("creating the throw-away PostgreSQL cluster: %w", err)
	}
	if err := inst.Start(ctx); err != nil {
		return res, fmt.Errorf("starting the throw-away PostgreSQL cluster: %w", err)
	}
	defer func() { err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx))) }()
	db := "drill_" + strings.ToLower(rand.Text()[:8])
	if err := inst.CreateDatabase(ctx, pw, db); err != nil {
		return res, err
	}
	dump, err := os.Open(dumpFile)
	if err != nil {
		return res, err
	}
	defer dump.Close()
	if err := inst.Load(ctx, pw, db, dump); err != nil {
		return res, fmt.Errorf("its database dump does not load: %w", err)
	}
	again, dumping := io.Pipe()
	go func() { dumping.CloseWithError(inst.Dump(ctx, pw, db, dumping)) }()
	got, err := backup.SumTables(again)
	again.CloseWithError(err)
	if err != nil {
		return res, fmt.Errorf("reading the restored database back: %w", err)
	}
	if diffs := backup.CompareTables(want, got); len(diffs) > 0 {
		return res, fmt.Errorf("the restored database differs from the backup:\n  %s", strings.Join(diffs, "\n  "))
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", inst.Host, inst.Port, inst.User, pw, db))
	if err != nil {
		return res, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if res.contents, err = store.ReadContents(ctx, conn); err != nil {
		return res, err
	}
	res.tables = want
	return res, nil
}

func sumFile(path string) ([]backup.TableSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return backup.SumTables(f)
}
