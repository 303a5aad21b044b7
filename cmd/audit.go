package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
)

// withLocalActor makes the account running a command the actor of the
// changes it makes (package audit), with the command's name.
func withLocalActor(cmd *cobra.Command) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cmd.SetContext(audit.WithActor(ctx, audit.Actor{ID: audit.LocalUser(), Source: audit.LocalSource(),
		Details: map[string]any{"tool": cmd.CommandPath()}}))
}

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and export the tamper-evident audit log",
		Long: `audit works on the audit log: the database's chain of the changes made to
it, and each server's journal of what changes nothing (reads, refusals,
authentication failures). Records are hash-chained and their heads signed
with the server's OpenPGP key (see docs/SECURITY.md).`,
	}
	cmd.AddCommand(newAuditVerifyCommand(), newAuditExportCommand())
	return cmd
}

type verifyFlags struct {
	confdir     string
	files       []string
	serverKey   string
	maxUnsigned int64
	anchor      string
}

func newAuditVerifyCommand() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chains and name the first broken record",
		Long: `verify reads every record of the audit chains of --confdir's server — the
database's (audit_log) and the server's journal (audit/ in the state
directory) — or of the exported files given with --file, and checks that
each record's hash matches its contents, that each carries the hash of the
one before it with no sequence number missing or repeated, and that every
checkpoint is signed by the server's OpenPGP key over a head the chain
holds.

For the database chain it also checks the chain's head row and the anchor
file (audit/db-anchor.json, where the active keeps the head its latest
checkpoint signs): a chain that no longer holds that checkpoint was cut
short or rewritten.

It exits 1 at the first break, naming the record and why. Records after the
last checkpoint are reported; --max-unsigned makes more of them a failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAuditVerify(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.confdir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	fl.StringArrayVar(&f.files, "file", nil, "verify this exported file (kts audit export) or journal file instead; repeat for more (one chain may span them, in order)")
	fl.StringVar(&f.serverKey, "server-key", "", "the server's OpenPGP public key (armored) to check checkpoints with (default: the state directory's)")
	fl.Int64Var(&f.maxUnsigned, "max-unsigned", -1, "fail when more records than this follow a chain's last checkpoint (-1: no limit)")
	fl.StringVar(&f.anchor, "anchor", "", "the anchor file to check the database chain against (default: the state directory's "+audit.AnchorFile+")")
	return cmd
}

// exitBroken is verify's exit status for a broken chain.
const exitBroken = exitError(1)

func runAuditVerify(cmd *cobra.Command, f verifyFlags) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	key, err := auditKey(f.confdir, f.serverKey)
	if err != nil {
		return err
	}
	type chain struct {
		name string
		v    *audit.Verifier
	}
	var chains []*chain
	broken := func(c *chain, err error) error {
		fmt.Fprintf(cmd.ErrOrStderr(), "BROKEN: audit chain %s: %v\n", c.name, err)
		return exitBroken
	}
	report := func(c *chain) error {
		s := c.v.Summary()
		if s.Records == 0 {
			fmt.Fprintf(out, "%s: no records\n", c.name)
			return nil
		}
		fmt.Fprintf(out, "%s: %d records (%d to %d, %s to %s), hash-chained", c.name, s.Records, s.First.Seq, s.Last.Seq,
			s.FirstTime.Format(time.RFC3339), s.LastTime.Format(time.RFC3339))
		if s.First.Seq > 1 {
			fmt.Fprintf(out, " from record %d on (the records before it are not here)", s.First.Seq)
		}
		fmt.Fprintf(out, "; %d checkpoints", s.Checkpoints)
		if s.Signed.Seq > 0 {
			fmt.Fprintf(out, ", signed through record %d (%s)", s.Signed.Seq, s.SignedAt.Format(time.RFC3339))
		}
		fmt.Fprintf(out, "; %d records after the last signed one\n", s.Unsigned)
		if f.maxUnsigned >= 0 && s.Unsigned > f.maxUnsigned {
			fmt.Fprintf(cmd.ErrOrStderr(), "BROKEN: audit chain %s: %d records follow its last checkpoint (at most %d allowed): "+
				"a chain rewritten without the server's key has no valid checkpoint\n", c.name, s.Unsigned, f.maxUnsigned)
			return exitBroken
		}
		return nil
	}

	if len(f.files) > 0 {
		byName := map[string]*chain{}
		for _, path := range f.files {
			file, err := os.Open(path)
			if err != nil {
				return err
			}
			sc := audit.NewScanner(bufio.NewReaderSize(file, 1<<20))
			for sc.Scan() {
				c := byName[sc.Chain]
				if c == nil {
					c = &chain{name: sc.Chain, v: &audit.Verifier{Key: key, Partial: true}}
					byName[sc.Chain] = c
					chains = append(chains, c)
				}
				if err := c.v.Add(sc.Record); err != nil {
					file.Close()
					return broken(c, fmt.Errorf("%s line %d: %w", path, sc.Line(), err))
				}
			}
			file.Close()
			if err := sc.Err(); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		if len(chains) == 0 {
			return errors.New("the files hold no audit records")
		}
		for _, c := range chains {
			if err := report(c); err != nil {
				return err
			}
		}
		return nil
	}

	// The database chain.
	cfg, err := config.Load(f.confdir)
	if err != nil {
		return fmt.Errorf("%w (is --confdir the server's state directory?)", err)
	}
	conn, err := connectAuditDB(ctx, f.confdir, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	db := &chain{name: audit.ChainDB, v: &audit.Verifier{Key: key}}
	anchorFile := f.anchor
	if anchorFile == "" {
		anchorFile = filepath.Join(f.confdir, audit.AnchorFile)
	}
	anchor, ok, err := audit.ReadAnchor(anchorFile)
	if err != nil {
		return err
	}
	if !ok && f.anchor != "" {
		return fmt.Errorf("--anchor %s: not found", f.anchor)
	}
	var ap *audit.Anchor
	if ok {
		ap = &anchor
	}
	if _, err := store.VerifyAudit(ctx, conn, db.v, ap); err != nil {
		var b *audit.Break
		if errors.As(err, &b) {
			return broken(db, err)
		}
		return err
	}
	if err := report(db); err != nil {
		return err
	}

	// The server's journal.
	dir := filepath.Join(f.confdir, audit.JournalDir)
	files, err := audit.JournalFiles(dir)
	if errors.Is(err, os.ErrNotExist) || len(files) == 0 {
		fmt.Fprintf(out, "%s: none in %s\n", audit.ChainJournal, dir)
		return nil
	}
	if err != nil {
		return err
	}
	first, _ := audit.JournalFileSeq(files[0])
	j := &chain{name: audit.ChainJournal, v: &audit.Verifier{Key: key, Partial: first > 1}}
	if err := audit.ReadJournal(dir, func(r audit.Record) error { return j.v.Add(r) }); err != nil {
		var b *audit.Break
		if errors.As(err, &b) {
			return broken(j, err)
		}
		return err
	}
	return report(j)
}

// auditKey is the server's public key: from file, or the state directory's.
func auditKey(dir, file string) (*openpgp.PublicKey, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if k, err := openpgp.ParsePublic(data); err == nil {
			return k, nil
		}
		k, err := openpgp.ReadPrivate(data)
		if err != nil {
			return nil, fmt.Errorf("--server-key %s: not an OpenPGP key: %w", file, err)
		}
		return k.Public(), nil
	}
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("%w (is --confdir the server's state directory? or give --server-key)", err)
	}
	data, err := os.ReadFile(cfg.Path(dir, cfg.ServerKey))
	if err != nil {
		return nil, fmt.Errorf("the server's key: %w (or give --server-key)", err)
	}
	if hsmkeys.IsSealed(data) {
		// Sealed by the HSM: open the state as the server does.
		st, err := confdir.Open(dir)
		if err != nil {
			return nil, fmt.Errorf("the server's key is sealed by the HSM: %w (or give --server-key with its public key)", err)
		}
		defer st.Close()
		return st.ServerKey.Public(), nil
	}
	k, err := openpgp.ReadPrivate(data)
	if err != nil {
		return nil, fmt.Errorf("the server's key %s: %w", cfg.ServerKey, err)
	}
	return k.Public(), nil
}

// connectAuditDB connects to the state directory's database to read its
// audit chain (a passive's standby does too).
func connectAuditDB(ctx context.Context, dir string, cfg config.Config) (*pgx.Conn, error) {
	pw, err := confdir.ReadDBPassword(dir, cfg)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, confdir.Instance(dir, cfg, "").ConnString(cfg.DBName, pw))
	if err != nil {
		return nil, fmt.Errorf("connect to the database at %s:%d: %w (is it running? try `kts db status`)", cfg.DBHost, cfg.DBPort, err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('audit_log') IS NOT NULL`).Scan(&ok); err != nil || !ok {
		conn.Close(ctx)
		if err == nil {
			err = errors.New("the database has no audit chain yet: start the server once with this kts, which adds it")
		}
		return nil, err
	}
	return conn, nil
}

type exportFlags struct {
	confdir  string
	since    string
	afterSeq int64
	chain    string
	output   string
}

func newAuditExportCommand() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit records as JSON lines, for a SIEM",
		Long: `export writes the records of --confdir's server as JSON lines: the database's
chain (chain "db") and the server's journal (chain "journal@HOSTNAME"),
merged by time, each chain in its own order. A line holds chain, seq, time,
actor, source, action, object, outcome, details, prev_hash and hash; the
output verifies with kts audit verify --file.

--since keeps the records from a time on; --chain and --after-seq pick up
where an earlier export of one chain stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAuditExport(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.confdir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	fl.StringVar(&f.since, "since", "", "only records from this time on (RFC 3339, e.g. 2026-11-27T00:00:00Z)")
	fl.Int64Var(&f.afterSeq, "after-seq", 0, "only records after this sequence number (with --chain)")
	fl.StringVar(&f.chain, "chain", "", `only this chain: "db" or "journal"`)
	fl.StringVarP(&f.output, "output", "o", "-", "write to this file (- for standard output)")
	return cmd
}

// exported is a record and the chain it belongs to, on its way out.
type exported struct {
	chain string
	r     audit.Record
}

func runAuditExport(cmd *cobra.Command, f exportFlags) error {
	ctx := cmd.Context()
	var since time.Time
	if f.since != "" {
		t, err := time.Parse(time.RFC3339, f.since)
		if err != nil {
			return fmt.Errorf("--since %q: give a time as 2026-11-27T00:00:00Z (RFC 3339)", f.since)
		}
		since = t
	}
	switch f.chain {
	case "", audit.ChainDB, audit.ChainJournal:
	default:
		return fmt.Errorf(`--chain %q: "db" or "journal"`, f.chain)
	}
	if f.afterSeq != 0 && f.chain == "" {
		return errors.New("--after-seq needs --chain: sequence numbers belong to one chain")
	}
	cfg, err := config.Load(f.confdir)
	if err != nil {
		return fmt.Errorf("%w (is --confdir the server's state directory?)", err)
	}
	w := cmd.OutOrStdout()
	if f.output != "-" {
		file, err := os.OpenFile(f.output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	keep := func(r audit.Record) bool { return r.Seq > f.afterSeq && !r.Time.Before(since) }
	var sources []<-chan exported
	var errs []func() error
	if f.chain != audit.ChainJournal {
		conn, err := connectAuditDB(ctx, f.confdir, cfg)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		ch, wait := stream(ctx, audit.ChainDB, func(fn func(audit.Record) error) error {
			return store.ReadAuditRecords(ctx, conn, f.afterSeq+1, fn)
		}, keep)
		sources, errs = append(sources, ch), append(errs, wait)
	}
	if f.chain != audit.ChainDB {
		dir := filepath.Join(f.confdir, audit.JournalDir)
		ch, wait := stream(ctx, audit.ChainJournal+"@"+cfg.Hostname, func(fn func(audit.Record) error) error {
			err := audit.ReadJournal(dir, fn)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}, keep)
		sources, errs = append(sources, ch), append(errs, wait)
	}
	var buf []byte
	n := 0
	err = merge(sources, func(e exported) error {
		buf = audit.AppendLine(buf[:0], e.chain, &e.r)
		n++
		_, err := bw.Write(buf)
		return err
	})
	cancel()
	for _, wait := range errs {
		err = errors.Join(err, wait())
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("after %d records: %w", n, err)
	}
	if f.output != "-" {
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d records to %s\n", n, f.output)
	}
	return nil
}

// stream reads a chain's records into a channel.
func stream(ctx context.Context, chain string, read func(func(audit.Record) error) error, keep func(audit.Record) bool) (<-chan exported, func() error) {
	ch := make(chan exported, 1024)
	done := make(chan error, 1)
	go func() {
		defer close(ch)
		done <- read(func(r audit.Record) error {
			if !keep(r) {
				return nil
			}
			select {
			case ch <- exported{chain: chain, r: r}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return ch, func() error {
		err := <-done
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

// merge passes the records of the chains to fn by time, each chain in its
// own order.
func merge(sources []<-chan exported, fn func(exported) error) error {
	heads := make([]*exported, len(sources))
	next := func(i int) {
		if e, ok := <-sources[i]; ok {
			heads[i] = &e
		} else {
			heads[i] = nil
		}
	}
	for i := range sources {
		next(i)
	}
	for {
		best := -1
		for i, h := range heads {
			if h != nil && (best < 0 || h.r.Time.Before(heads[best].r.Time)) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		if err := fn(*heads[best]); err != nil {
			return err
		}
		next(best)
	}
}
