package restore

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/gnupg"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// Decryption names the secret key (and its passphrase file) that opens an
// encrypted archive; empty fields leave it to GnuPG's keyring.
type Decryption struct {
	KeyFile, PassphraseFile string
}

// Unpack reads the archive at path, decrypting it when it is encrypted,
// checks every byte and stages it in target.
func Unpack(ctx context.Context, path string, dec Decryption, target string) (*backup.Staged, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 64<<10)
	head, _ := br.Peek(512)
	var r io.Reader = br
	var finish func() error
	if gnupg.IsEncrypted(head) {
		d, err := gnupg.Decrypt(ctx, br, gnupg.DecryptOptions{SecretKeyFile: dec.KeyFile, PassphraseFile: dec.PassphraseFile})
		if err != nil {
			return nil, err
		}
		r, finish = d, d.Close
	}
	return backup.Unpack(r, finish, target)
}

// ReplaceDatabase replaces the server's database by the staged archive's
// dump in one step, after checking what it holds and recording the
// restore in its audit chain; it returns what the restored database holds.
func ReplaceDatabase(ctx context.Context, inst *pg.Instance, cfg config.Config, pw string, staged *backup.Staged, archive string) (contents store.Contents, err error) {
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
	head, err := store.ReadAuditHead(ctx, conn)
	if err != nil {
		return map[string]any{"replaced_chain": "none"}
	}
	return map[string]any{"replaced_chain_seq": head.Seq, "replaced_chain_hash": fmt.Sprintf("%x", head.Hash)}
}

// CheckPassiveAttached refuses to restore on the active of a pair while
// its passive is away: the restore is a write, and writes need both.
func CheckPassiveAttached(ctx context.Context, inst *pg.Instance, cfg config.Config, pw string) error {
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
