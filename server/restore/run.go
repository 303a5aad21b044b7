package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// Options are what kts restore is asked to do.
type Options struct {
	// Dir is the server's state directory, or with Client the client's.
	Dir    string
	Client bool
	Decryption
	// DBPort, when not 0, is the database port instead of the
	// configuration's.
	DBPort int
	// RunAs is the account that runs PostgreSQL when kts runs as root.
	RunAs string
	// Log is told what creating a fresh host's database cluster does.
	Log io.Writer
}

// Result is what a restore put back.
type Result struct {
	Dir, Archive string
	Client       bool
	// Taken names the backup: its host and time.
	Taken string
	// Entries is how many entries a client archive held.
	Entries int
	// A server restore: its database and what it holds, the server key,
	// whether it went onto a fresh host (and what the archived server was
	// in a pair), and what it did outside the state directory.
	DBName      string
	Contents    store.Contents
	Fingerprint string
	Fresh       bool
	WasPaired   string
	Outside     []OutsideFile
}

// Run restores the archive at path into o.Dir. The whole archive is read
// and checked before anything changes; a refusal changes nothing.
func Run(ctx context.Context, path string, o Options) (Result, error) {
	res := Result{Archive: path, Client: o.Client}
	target, err := filepath.Abs(o.Dir)
	if err != nil {
		return res, err
	}
	res.Dir = target
	staged, err := Unpack(ctx, path, o.Decryption, target)
	if err != nil {
		return res, fmt.Errorf("%s: %w; nothing was changed", path, err)
	}
	defer staged.Remove()
	res.Taken = fmt.Sprintf("the backup of %s taken at %s", staged.Host, staged.Created.UTC().Format(time.DateTime+" MST"))
	res.Fingerprint = staged.Fingerprint
	if err := checkKind(staged.Kind, o.Client, path); err != nil {
		staged.Abandon(target)
		return res, err
	}
	if o.Client {
		if _, err := staged.Place(target, func(string) bool { return false }); err != nil {
			return res, err
		}
		res.Entries = len(staged.Entries)
		return res, nil
	}
	err = restoreServer(ctx, staged, o, &res)
	return res, err
}

// Lines says what a restore did, one line each, as kts restore prints it.
func (r Result) Lines() []string {
	if r.Client {
		return []string{fmt.Sprintf("restored client state directory %s (%d entries) from %s", r.Dir, r.Entries, r.Taken)}
	}
	c := r.Contents
	out := []string{
		fmt.Sprintf("restored state directory %s and database %q from %s", r.Dir, r.DBName, r.Taken),
		fmt.Sprintf("restored rows: %d organizations, %d clients, %d deposits (%d in all)",
			c.Organizations, c.Clients, c.Deposits, c.Organizations+c.Clients+c.Deposits),
		"deposits made after the backup was taken are not restored",
	}
	if r.Fingerprint != "" {
		out = append(out, "server key "+r.Fingerprint)
	}
	out = append(out, Report(r.Outside, r.Archive)...)
	if !r.Fresh {
		return append(out, "start (or restart) the kts server now")
	}
	if r.WasPaired != "" {
		out = append(out, fmt.Sprintf("the backup came from the %s of a pair; it was restored as a standalone server, which takes writes on its own "+
			"(pair it again as docs/OPERATIONS.md says: with its server stopped, kts db init --role active here, then kts init --from-active on the other host)", r.WasPaired))
	}
	return append(out, fmt.Sprintf("start its database and the server now: kts db start --confdir %s, then kts server --confdir %s", r.Dir, r.Dir))
}

// restoreServer puts a staged server archive in place. Every check comes
// first (the archive, its configuration, the HSM keys its deposits need,
// the files outside the state directory): a refusal changes nothing. Over
// an existing server the database is replaced first and the files follow;
// on a fresh host the files come first, then a new database cluster takes
// the dump, and if any step fails everything made so far is removed.
func restoreServer(ctx context.Context, staged *backup.Staged, o Options, res *Result) (err error) {
	target := res.Dir
	refuse := func(err error) error {
		staged.Abandon(target)
		return fmt.Errorf("%w; nothing was changed", err)
	}
	archived, err := Config(staged)
	if err != nil {
		return refuse(err)
	}
	found := Found{Dir: target, HasConfig: true}
	cfg, err := config.Load(target)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return refuse(err)
		}
		found.HasConfig = false
		cfg, res.WasPaired = FreshConfig(archived)
	}
	found.Role = cfg.Role
	if o.DBPort != 0 {
		cfg.DBPort = o.DBPort
	}
	res.DBName = cfg.DBName
	inst := confdir.Instance(target, cfg, o.RunAs)
	found.HasCluster, found.DataDir = inst.Initialized(), inst.DataDir
	if res.Fresh, err = decide(found); err != nil {
		return refuse(err)
	}
	tok, err := Check(staged, target, cfg)
	if err != nil {
		return refuse(err)
	}
	if tok != nil {
		defer tok.Close()
	}
	if res.Outside, err = PlanOutside(staged, archived); err != nil {
		return refuse(err)
	}
	if res.Fresh {
		return restoreFresh(ctx, staged, cfg, inst, o.Log, res)
	}
	keep := func(rel string) bool {
		return rel == config.FileName || rel == cfg.DBPasswordFile || rel == cfg.ReplicationPasswordFile
	}
	st, err := inst.Status(ctx)
	if err != nil {
		return refuse(err)
	}
	if !st.Running {
		if err := inst.Start(ctx); err != nil {
			return refuse(err)
		}
		defer func() { err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx))) }()
	}
	pw, err := confdir.ReadDBPassword(target, cfg)
	if err != nil {
		return refuse(err)
	}
	if err := CheckPassiveAttached(ctx, inst, cfg, pw); err != nil {
		return refuse(err)
	}
	if res.Contents, err = ReplaceDatabase(ctx, inst, cfg, pw, staged, res.Archive); err != nil {
		return refuse(err)
	}
	// The anchor names a checkpoint of the replaced chain; the server
	// writes the restored chain's at its next checkpoint.
	if err := os.Remove(filepath.Join(target, audit.AnchorFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the database is restored, but removing the audit anchor file failed: %w", err)
	}
	if _, err := staged.Place(target, keep); err != nil {
		return fmt.Errorf("the database is restored, but putting the state directory back failed: %w", err)
	}
	if _, _, err := WriteOutside(staged, res.Outside); err != nil {
		return fmt.Errorf("the database and the state directory are restored, but %w", err)
	}
	return nil
}

// restoreFresh restores onto a fresh host: the state files, the
// configuration and the files outside the state directory first (the new
// cluster takes the restored database password), then a new database
// cluster loaded with the dump. When a step fails, what was made is
// removed (the database stopped first) and the error says so.
func restoreFresh(ctx context.Context, staged *backup.Staged, cfg config.Config, inst *pg.Instance, log io.Writer, res *Result) (err error) {
	target := res.Dir
	undo, err := Track(target, inst.DataDir)
	if err != nil {
		staged.Abandon(target)
		return fmt.Errorf("%w; nothing was changed", err)
	}
	undoOutside := func() {}
	started := false
	defer func() {
		if err == nil {
			return
		}
		if started {
			err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx)))
		}
		undoOutside()
		staged.Remove()
		if uerr := undo(staged.CreatedStateDir()); uerr != nil {
			err = fmt.Errorf("%w; removing what the restore had made failed (%v): remove %s before trying again", err, uerr, target)
			return
		}
		err = fmt.Errorf("%w; nothing was changed (what the restore had made is removed)", err)
	}()
	if _, err := staged.Place(target, func(string) bool { return false }); err != nil {
		return err
	}
	if err := cfg.Save(target); err != nil {
		return err
	}
	if _, undoOutside, err = WriteOutside(staged, res.Outside); err != nil {
		return err
	}
	if err := confdir.InitDB(ctx, log, target, cfg, inst); err != nil {
		return fmt.Errorf("creating the database cluster: %w", err)
	}
	if err := inst.Start(ctx); err != nil {
		return fmt.Errorf("starting the new database cluster: %w", err)
	}
	started = true
	pw, err := confdir.ReadDBPassword(target, cfg)
	if err != nil {
		return err
	}
	if res.Contents, err = ReplaceDatabase(ctx, inst, cfg, pw, staged, res.Archive); err != nil {
		return err
	}
	started = false
	return inst.Stop(context.WithoutCancel(ctx))
}
