package restore

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

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// DrillOptions are what a restore drill (kts backup verify) needs.
type DrillOptions struct {
	Decryption
	// RunAs is the account that runs the throw-away PostgreSQL when kts
	// runs as root.
	RunAs string
	// WorkDir is where the throw-away cluster is made ("": the system's
	// temporary directory).
	WorkDir string
}

// DrillResult is what a restore drill that passed found.
type DrillResult struct {
	Tables   []backup.TableSum
	Contents store.Contents
}

// Summary says what a drill that passed restored.
func (res DrillResult) Summary() string {
	var rows int64
	for _, t := range res.Tables {
		rows += t.Rows
	}
	c := res.Contents
	return fmt.Sprintf("%d tables and %d rows restored as they were backed up (%d organizations, %d clients, %d deposits)",
		len(res.Tables), rows, c.Organizations, c.Clients, c.Deposits)
}

// Drill is a restore drill: it opens the archive at path with the checks
// of a restore (so that a drill passes only where a restore would), loads
// its dump into a new PostgreSQL cluster in a temporary directory, dumps
// that database again and compares the two table by table. It changes no
// server and removes what it made.
func Drill(ctx context.Context, path string, o DrillOptions) (res DrillResult, err error) {
	work, err := os.MkdirTemp(o.WorkDir, "kts-drill-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	staged, err := Unpack(ctx, path, o.Decryption, filepath.Join(work, "state"))
	if err != nil {
		return res, err
	}
	defer staged.Remove()
	if staged.Kind != backup.KindServer {
		return res, errors.New("it is a client backup, which holds no database to restore")
	}
	// What a restore checks before it writes anything, the drill checks
	// too: a drill passes only where a restore would.
	cfg, err := Config(staged)
	if err != nil {
		return res, err
	}
	tok, err := Check(staged, filepath.Join(work, "state"), cfg)
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
		RunAs: o.RunAs, SocketDir: filepath.Join(work, "run")}
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
	if res.Contents, err = store.ReadContents(ctx, conn); err != nil {
		return res, err
	}
	res.Tables = want
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
