package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/restore"
	"trustee.dev/trustee/server/store"
)

// Retry intervals of a passive waiting for its active.
const (
	firstCopyRetry = time.Second
	maxCopyRetry   = 10 * time.Second
)

func newMemberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Prepare a member of the pair as a Kubernetes pod runs it",
	}
	cmd.AddCommand(newMemberSetupCommand())
	return cmd
}

// memberSetup is what kts member setup is asked to do.
type memberSetup struct {
	member, configFile, dir, runAs string
	configOnly                     bool
	// createdMarker exists once the server's database was first created
	// (see setupActive).
	createdMarker string
	// name is the member's name in the pair (a or b) and activeMarker a
	// file naming the member the operator made the active (absent: a).
	// Together they allow a change of role: see roleAgreed.
	name, activeMarker string
	// restoreArchive, when set, is a backup archive whose database a new
	// active's cluster starts with, decrypted with restoreKey.
	restoreArchive, restoreKey string
}

func newMemberSetupCommand() *cobra.Command {
	var o memberSetup
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Install a member's keytrustee.conf and make its PostgreSQL ready (a pod's init container)",
		Long: `setup prepares one member of the pair, as the init container of its pod does.

It installs --config, a complete keytrustee.conf whose ROLE is --member and
whose files are absolute paths on the mounted Secrets, as keytrustee.conf in
--confdir (created 0700), after checking that every file it names can be
read. Then it makes PostgreSQL ready:

  active   creates the cluster on first start; with STANDBY_NAME set, creates
           (or brings up to date) the replication account and slot and makes
           every commit wait for the passive.
  passive  on first start copies the active's cluster (ACTIVE_DB) with
           pg_basebackup, trying again until the active answers and saying
           what it waits for; on later starts it copies the active anew only
           when the copy can no longer follow it (its replication slot is
           gone), keeping the old data directory beside the new one.

With HSM_MODULE set, it opens the token with its PIN before it changes
anything, and then sets up the keys that wrap deposits in it, leaving the
identity files as they are (HSM_SEAL_STATE false: they stay in their Secret)
and keytrustee.conf as given:

  active   adopts the deposit key the database records as current, or else
           creates kts-kek-1 in the token (adopting it if the token has it)
           and records it; then re-wraps every deposit another key wraps
           (the file keyring's, when the HSM is added to a server with
           deposits), as kts keyhsm migrate does.
  passive  checks that the token holds kts-kek-1, the active's: it creates
           no key.

A second run changes nothing. PostgreSQL is left stopped: kts db run runs it.

--created-marker names a file that exists once this server's database was
first created (the operator keeps it in the identity Secret). An active whose
volume holds no cluster but whose marker exists refuses to create an empty
one: its data was lost, and an empty active would be what the passive copies
next. Bring the volume back, or restore from a backup.

A member's role changes only with a switchover, which the operator records
in --active-marker (a file naming the active member, a or b; absent means
a) after it has fenced the old active. With --name, setup then accepts the
new role of a state directory installed for the other one:

  active   promotes its copy of the old active's cluster (pg_ctl promote):
           it holds every write the old active acknowledged.
  passive  moves its cluster, the old active's, aside (nothing is deleted)
           and copies the new active's.

Without the marker agreeing, a standby's cluster is never promoted and a
primary's never replaced.

With --restore-archive (the operator's spec.bootstrap), an active whose
volume holds no cluster yet creates it and loads the archive's database,
decrypted with --restore-key when it is encrypted, before anything else:
the new server starts with the backed-up organizations, clients and
deposits. Until that load has finished, a later run starts it over. An
existing cluster is never touched by it.

With --config-only it installs and checks the configuration as above and
stops there: it neither creates, copies nor looks at a PostgreSQL cluster.
That is the init container of a backup Job's pod, which has no database of
its own: its configuration names the member's PostgreSQL (DB_HOST, DB_PORT),
which kts backup then reads over the network.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.member, "member", "", "which member this is: active or passive")
	f.StringVar(&o.configFile, "config", "", "the member's keytrustee.conf, as rendered by the operator")
	f.StringVarP(&o.dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	f.StringVar(&o.runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
	f.StringVar(&o.createdMarker, "created-marker", "", "a file that exists once this server's database was created: an active with an empty volume then refuses to start empty")
	f.StringVar(&o.name, "name", "", "this member's name in the pair (a or b), for --active-marker")
	f.StringVar(&o.activeMarker, "active-marker", "", "a file naming the active member (a or b; absent: a): a change of role that agrees with it is carried out")
	f.StringVar(&o.restoreArchive, "restore-archive", "", "a backup archive whose database a new active's cluster starts with")
	f.StringVar(&o.restoreKey, "restore-key", "", "the secret key file that decrypts --restore-archive")
	f.BoolVar(&o.configOnly, "config-only", false, "only install and check the configuration; touch no PostgreSQL (a backup Job's pod)")
	cmd.MarkFlagRequired("member")
	cmd.MarkFlagRequired("config")
	return cmd
}

func (o memberSetup) run(ctx context.Context, out io.Writer) error {
	cfg, data, err := o.check(ctx)
	if err != nil {
		return err
	}
	changed, err := installConfig(o.dir, data)
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(out, "installed %s as %s\n", o.configFile, filepath.Join(o.dir, config.FileName))
	} else {
		fmt.Fprintf(out, "%s is up to date\n", filepath.Join(o.dir, config.FileName))
	}
	if o.configOnly {
		fmt.Fprintf(out, "configuration only: nothing set up for PostgreSQL; the database is the %s's at %s\n",
			cfg.Role, net.JoinHostPort(cfg.DBHost, strconv.Itoa(cfg.DBPort)))
		return nil
	}
	inst := confdir.Instance(o.dir, cfg, o.runAs)
	if cfg.Role == config.RoleActive {
		err = o.promote(ctx, out, inst)
		if err == nil {
			err = o.bootstrap(ctx, out, cfg, inst)
		}
		if err == nil {
			err = setupActive(ctx, out, o.dir, cfg, inst, o.createdMarker)
		}
		if errors.Is(err, errVolumeLost) {
			fmt.Fprintln(os.Stderr, "Error:", err)
			return exitError(confdir.ExitVolumeLost)
		}
		if err == nil && cfg.HasHSM() {
			err = setupActiveHSM(ctx, out, o.dir, inst)
		}
	} else {
		err = o.replaceFormerActive(ctx, out, inst)
		if err == nil {
			err = setupPassive(ctx, out, o.dir, cfg, inst)
		}
		if err == nil && cfg.HasHSM() {
			err = setupPassiveHSM(out, o.dir)
		}
	}
	return err
}

// check validates everything setup needs before it changes anything, and
// returns the configuration and the file's content.
func (o memberSetup) check(ctx context.Context) (config.Config, []byte, error) {
	if o.member != config.RoleActive && o.member != config.RolePassive {
		return config.Config{}, nil, fmt.Errorf("--member %q: use active or passive", o.member)
	}
	data, err := os.ReadFile(o.configFile)
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("--config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return cfg, nil, fmt.Errorf("%s: %w", o.configFile, err)
	}
	if cfg.Role != o.member {
		return cfg, nil, fmt.Errorf("%s is the configuration of the %s (ROLE %q), but --member is %s: give this member's own file",
			o.configFile, cfg.Role, cfg.Role, o.member)
	}
	if err := confdir.CheckFiles(o.dir, cfg); err != nil {
		return cfg, nil, fmt.Errorf("%s names files that cannot be read:\n%w", o.configFile, err)
	}
	if _, err := os.Stat(o.dir); err == nil && !o.configOnly {
		// A state directory older versions gave to the PostgreSQL account
		// is taken back before it is trusted.
		note, err := confdir.Instance(o.dir, cfg, o.runAs).PrepareStateDir(o.dir)
		if err != nil {
			return cfg, nil, err
		}
		if note != "" {
			fmt.Println(note)
		}
	}
	if err := confdir.CheckTrusted(o.dir, cfg, confdir.TrustedFile{Key: "--config", Path: o.configFile}); err != nil {
		return cfg, nil, err
	}
	installed, err := config.Load(o.dir)
	switch {
	case err == nil && installed.Role != cfg.Role && !o.roleAgreed(cfg.Role):
		return cfg, nil, fmt.Errorf("%s holds the state of the %s, and this is the %s: give each member its own state directory",
			o.dir, installed.Role, cfg.Role)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return cfg, nil, fmt.Errorf("the installed configuration: %w", err)
	}
	if o.configOnly {
		return cfg, data, nil
	}
	inst := confdir.Instance(o.dir, cfg, o.runAs)
	st, err := inst.Status(ctx)
	if err != nil {
		return cfg, nil, err
	}
	if st.Running {
		return cfg, nil, fmt.Errorf("PostgreSQL runs in %s (pid %d); setup prepares it before it runs: stop it first", st.DataDir, st.PID)
	}
	if cfg.HasHSM() {
		// A passive's first copy waits for the active, whose setup creates
		// the deposit key: only a passive with a cluster needs it now.
		if err := checkHSM(o.dir, cfg, cfg.Role == config.RolePassive && inst.Initialized()); err != nil {
			return cfg, nil, err
		}
	}
	return cfg, data, nil
}

// installConfig writes data as dir/keytrustee.conf (mode 0600) unless it
// holds that already, atomically: a crash leaves the old or the new file.
// dir is created with mode 0700. It reports whether it wrote the file.
func installConfig(dir string, data []byte) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	path := filepath.Join(dir, config.FileName)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(dir, "."+config.FileName+".*.tmp")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return true, nil
}

// bootstrapPending is a file of the state directory that exists while a
// new cluster is being filled from --restore-archive.
const bootstrapPending = "bootstrap-pending"

// bootstrap creates a new active's cluster from --restore-archive: only on
// a volume without a cluster (or with one whose load did not finish), and
// only while the server's database was never created (the created marker,
// which setupActive checks, says the volume was lost instead).
func (o memberSetup) bootstrap(ctx context.Context, out io.Writer, cfg config.Config, inst *pg.Instance) (err error) {
	if o.restoreArchive == "" {
		return nil
	}
	pending := filepath.Join(o.dir, bootstrapPending)
	if _, err := os.Stat(pending); err == nil && inst.Initialized() {
		fmt.Fprintf(out, "the load of %s into %s did not finish: starting it over\n", o.restoreArchive, inst.DataDir)
		if err := os.RemoveAll(inst.DataDir); err != nil {
			return err
		}
	}
	if inst.Initialized() {
		return nil
	}
	if o.createdMarker != "" {
		if _, err := os.Stat(o.createdMarker); err == nil {
			return nil // setupActive refuses: the database existed, the volume was lost
		}
	}
	if _, err := os.Stat(o.restoreArchive); err != nil {
		return fmt.Errorf("the archive to start from, %s, cannot be read (%v): is the Secret of spec.bootstrap there?", o.restoreArchive, err)
	}
	// The archive is checked whole before the cluster is made.
	work, err := os.MkdirTemp(o.dir, ".bootstrap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	staged, err := restore.Unpack(ctx, o.restoreArchive, restore.Decryption{KeyFile: o.restoreKey}, filepath.Join(work, "stage"))
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was created", o.restoreArchive, err)
	}
	defer staged.Remove()
	if staged.Kind != backup.KindServer {
		return fmt.Errorf("%s is a client backup, not a server's; nothing was created", o.restoreArchive)
	}
	// As kts restore: the HSM keys the archive needs are checked first.
	tok, err := restore.Check(staged, o.dir, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was created", o.restoreArchive, err)
	}
	if tok != nil {
		tok.Close()
	}
	if err := os.WriteFile(pending, []byte(o.restoreArchive+"\n"), 0o600); err != nil {
		return err
	}
	if err := confdir.InitDB(ctx, os.Stdout, o.dir, cfg, inst); err != nil {
		return err
	}
	// No passive is attached yet: the load's commits must not wait for one.
	alone := *inst
	alone.Standby = ""
	if err := alone.Start(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, alone.Stop(context.WithoutCancel(ctx))) }()
	pw, err := confdir.ReadDBPassword(o.dir, cfg)
	if err != nil {
		return err
	}
	c, err := restore.ReplaceDatabase(ctx, &alone, cfg, pw, staged, o.restoreArchive)
	if err != nil {
		return fmt.Errorf("loading the database of %s: %w", o.restoreArchive, err)
	}
	if err := os.Remove(pending); err != nil {
		return err
	}
	fmt.Fprintf(out, "started from the backup of %s taken at %s: %d organizations, %d clients, %d deposits\n",
		staged.Host, staged.Created.UTC().Format(time.DateTime+" MST"), c.Organizations, c.Clients, c.Deposits)
	return nil
}

// errVolumeLost: the active's volume holds no database although the
// server's database was created before.
var errVolumeLost = errors.New("the active's volume holds no database")

// recordedActive is the member the active marker names.
func (o memberSetup) recordedActive() (string, error) {
	if o.activeMarker == "" {
		return "", errors.New("no --active-marker")
	}
	b, err := os.ReadFile(o.activeMarker)
	if errors.Is(err, fs.ErrNotExist) {
		return "a", nil
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// roleAgreed reports whether role is this member's role as the active
// marker records it: a change of role the operator made.
func (o memberSetup) roleAgreed(role string) bool {
	active, err := o.recordedActive()
	if err != nil || o.name == "" {
		return false
	}
	return (active == o.name) == (role == config.RoleActive)
}

// promote makes a standby's cluster the active's, when the active marker
// names this member; a standby's cluster is refused otherwise.
func (o memberSetup) promote(ctx context.Context, out io.Writer, inst *pg.Instance) error {
	if !inst.IsStandby() {
		return nil
	}
	if !o.roleAgreed(config.RoleActive) {
		return fmt.Errorf("%s holds a passive's copy, and this is the active: a copy is promoted only when the operator has "+
			"recorded this member as the active (--name and --active-marker), after stopping the other one", inst.DataDir)
	}
	fmt.Fprintf(out, "%s holds a copy of the old active's cluster, and this member is now the active: promoting it\n", inst.DataDir)
	if err := inst.Promote(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "promoted: %s is the active's cluster\n", inst.DataDir)
	return nil
}

// replaceFormerActive moves a primary's cluster aside on a passive, when
// the active marker names the other member: this member was the active,
// and the other was promoted. A primary's cluster is refused otherwise.
func (o memberSetup) replaceFormerActive(ctx context.Context, out io.Writer, inst *pg.Instance) error {
	if !inst.Initialized() || inst.IsStandby() {
		return nil
	}
	if !o.roleAgreed(config.RolePassive) {
		return fmt.Errorf("%s holds an active's cluster, and this is the passive: it is replaced by a copy of the active only when "+
			"the operator has recorded the other member as the active (--name and --active-marker)", inst.DataDir)
	}
	old, err := inst.MoveAside(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "this member was the active, and the other one was promoted: its old cluster is kept in %s; copying the new active\n", old)
	return nil
}

// setupActive creates the active's cluster on first start and, for a
// pair, its replication account and slot. A server whose database was
// created before (marker exists) gets no new, empty one.
func setupActive(ctx context.Context, out io.Writer, dir string, cfg config.Config, inst *pg.Instance, marker string) error {
	if !inst.Initialized() && marker != "" {
		if created, err := os.ReadFile(marker); err == nil {
			return fmt.Errorf("%w (%s), but this server's database was created on %s: "+
				"refusing to create an empty one in its place, which the passive would then copy. With a passive, the operator "+
				"promotes it and this member copies it as the new passive; without one, bring the volume back or restore from a "+
				"backup (docs/OPERATOR.md, \"When a member is lost\"). To start over empty on purpose, "+
				"delete the key %s from the server's identity Secret", errVolumeLost, inst.DataDir, strings.TrimSpace(string(created)), filepath.Base(marker))
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reading %s: %w", marker, err)
		}
	}
	if !inst.Initialized() {
		if err := confdir.InitDB(ctx, os.Stdout, dir, cfg, inst); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "PostgreSQL cluster in %s exists\n", inst.DataDir)
	}
	if cfg.StandbyName == "" {
		fmt.Fprintln(out, "a single server (no STANDBY_NAME): no replication to set up")
		return nil
	}
	if err := confdir.ConfigureActive(ctx, dir, cfg, inst); err != nil {
		return err
	}
	fmt.Fprintf(out, "replication account and slot are ready; commits wait for standby %q\n", cfg.StandbyName)
	return nil
}

// setupPassive copies the active's cluster on first start, waiting for the
// active as long as ctx allows, and copies it anew when the copy is stale.
func setupPassive(ctx context.Context, out io.Writer, dir string, cfg config.Config, inst *pg.Instance) error {
	host, port, pw, err := confdir.ActiveDB(dir, cfg)
	if err != nil {
		return err
	}
	if inst.Initialized() {
		stale, why, err := inst.UpstreamStale(ctx, host, port, pw)
		switch {
		case err != nil:
			fmt.Fprintf(out, "PostgreSQL standby in %s exists; keeping it, for whether it can still follow the active is not known: %v\n", inst.DataDir, err)
			return nil
		case !stale:
			fmt.Fprintf(out, "PostgreSQL standby in %s exists and can follow the active\n", inst.DataDir)
			return nil
		}
		fmt.Fprintf(out, "PostgreSQL standby in %s is stale: %s; copying the active anew (the old data directory is kept beside it)\n", inst.DataDir, why)
		inst.CreateMissingSlot = true // the active may run on without it
		err = inst.Reseed(ctx, host, port, pw)
		if err == nil {
			fmt.Fprintf(out, "copied the active's PostgreSQL at %s anew into %s\n", cfg.ActiveDB, inst.DataDir)
			return nil
		}
		var ce *pg.CopyError
		if !errors.As(err, &ce) || inst.Initialized() {
			return err
		}
		fmt.Fprintf(out, "copying the active anew failed: %s\n", ce.Reason())
	}
	if err := confdir.PrepareStateDir(out, dir, cfg, inst); err != nil {
		return err
	}
	delay := firstCopyRetry
	for attempt := 1; ; attempt++ {
		err := inst.InitStandby(ctx, host, port, pw)
		if err == nil {
			fmt.Fprintf(out, "copied the active's PostgreSQL at %s into %s: a hot standby of it\n", cfg.ActiveDB, inst.DataDir)
			return nil
		}
		var ce *pg.CopyError
		if !errors.As(err, &ce) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stopped waiting for the active's PostgreSQL at %s: %w", cfg.ActiveDB, ctx.Err())
		}
		fmt.Fprintf(out, "waiting for the active's PostgreSQL at %s to copy it (attempt %d): %s; next attempt in %s\n",
			cfg.ActiveDB, attempt, ce.Reason(), delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for the active's PostgreSQL at %s: %w", cfg.ActiveDB, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, maxCopyRetry)
	}
}

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
	cur, version := "", 0
	for _, k := range keks {
		if k.State == store.KEKCurrent {
			cur = k.ID
		}
		if label, ok := hsmkeys.Label(k.ID); ok {
			if v, err := strconv.Atoi(strings.TrimPrefix(label, hsmkeys.KEKLabelPrefix)); err == nil && v > version {
				version = v
			}
		}
	}
	if label, ok := hsmkeys.Label(cur); ok {
		if _, err := st.HSM.Key(label); err != nil {
			if errors.Is(err, hsm.ErrNoKey) {
				return fmt.Errorf("the database records HSM key %q as the one that wraps deposits, and the HSM %s has no such key: give this member the token that holds the server's keys", label, desc)
			}
			return fmt.Errorf("the HSM %s: key %q: %w", desc, label, err)
		}
		fmt.Fprintf(out, "HSM %s: deposit key %q is in the token and wraps new deposits\n", desc, label)
	} else {
		label := hsmkeys.KEKLabelPrefix + strconv.Itoa(version+1)
		_, made, err := hsmkeys.AdoptOrCreate(st.HSM, label, false)
		if err != nil {
			return fmt.Errorf("the HSM %s: %w", desc, err)
		}
		fmt.Fprintf(out, "HSM %s: deposit key %q %s\n", desc, label, made)
		cur = hsmkeys.ID(label)
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
