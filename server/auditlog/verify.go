// Package auditlog verifies and exports the audit chains of a server's
// state directory (package audit): the database's chain, read through
// package store, and the server's journal, or exported files. Verify
// returns a Report for kts audit verify to print; Export writes the
// records as JSON lines for kts audit export.
package auditlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
)

// VerifyOptions says which chains to verify and how.
type VerifyOptions struct {
	// Confdir is the server's state directory.
	Confdir string
	// Files, when set, are exported or journal files to verify instead of
	// the state directory's chains (one chain may span them, in order).
	Files []string
	// ServerKey is a file with the server's OpenPGP key (public or
	// secret, armored); empty is the state directory's.
	ServerKey string
	// MaxUnsigned, when ≥ 0, makes more records than this after a chain's
	// last checkpoint a failure.
	MaxUnsigned int64
	// Anchor is the anchor file to check the database chain against;
	// empty is the state directory's (audit.AnchorFile).
	Anchor string
}

// Chain is what verification found in one chain.
type Chain struct {
	Name    string
	Summary audit.Summary
	// NoneIn, when set, is where the chain was looked for and not found.
	NoneIn string
}

// String is the chain's line of the report, with its newline.
func (c Chain) String() string {
	if c.NoneIn != "" {
		return fmt.Sprintf("%s: none in %s\n", c.Name, c.NoneIn)
	}
	s := c.Summary
	if s.Records == 0 {
		return fmt.Sprintf("%s: no records\n", c.Name)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d records (%d to %d, %s to %s), hash-chained", c.Name, s.Records, s.First.Seq, s.Last.Seq,
		s.FirstTime.Format(time.RFC3339), s.LastTime.Format(time.RFC3339))
	if s.First.Seq > 1 {
		fmt.Fprintf(&b, " from record %d on (the records before it are not here)", s.First.Seq)
	}
	fmt.Fprintf(&b, "; %d checkpoints", s.Checkpoints)
	if s.Signed.Seq > 0 {
		fmt.Fprintf(&b, ", signed through record %d (%s)", s.Signed.Seq, s.SignedAt.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "; %d records after the last signed one\n", s.Unsigned)
	return b.String()
}

// Broken is the chain that does not hold, and why.
type Broken struct {
	Chain string
	Err   error
}

// String is the report's failure line, with its newline.
func (b *Broken) String() string { return fmt.Sprintf("BROKEN: audit chain %s: %v\n", b.Chain, b.Err) }

// Report is the outcome of Verify: the chains verified, in order, and the
// first that does not hold (verification stops there).
type Report struct {
	Chains []Chain
	Broken *Broken
}

// unsignedBreak is the failure of a chain with more records after its last
// checkpoint than max allows (max < 0: no limit).
func unsignedBreak(name string, s audit.Summary, max int64) *Broken {
	if max < 0 || s.Records == 0 || s.Unsigned <= max {
		return nil
	}
	return &Broken{Chain: name, Err: fmt.Errorf("%d records follow its last checkpoint (at most %d allowed): "+
		"a chain rewritten without the server's key has no valid checkpoint", s.Unsigned, max)}
}

// add reports a verified chain; it returns false when the chain fails
// max-unsigned, which ends the verification.
func (r *Report) add(name string, s audit.Summary, max int64) bool {
	r.Chains = append(r.Chains, Chain{Name: name, Summary: s})
	r.Broken = unsignedBreak(name, s, max)
	return r.Broken == nil
}

// broken records err as chain's failure when it is a break in the chain,
// and returns any other error.
func (r *Report) broken(chain string, err error) error {
	var b *audit.Break
	if errors.As(err, &b) {
		r.Broken = &Broken{Chain: chain, Err: err}
		return nil
	}
	return err
}

// Verify checks the chains o names. A chain that does not hold is the
// Report's Broken; the error is for what kept it from checking (the chains
// verified up to then are in the Report).
func Verify(ctx context.Context, o VerifyOptions) (Report, error) {
	key, err := serverKey(o.Confdir, o.ServerKey)
	if err != nil {
		return Report{}, err
	}
	if len(o.Files) > 0 {
		return verifyFiles(key, o)
	}
	var r Report

	// The database chain.
	cfg, err := config.Load(o.Confdir)
	if err != nil {
		return r, fmt.Errorf("%w (is --confdir the server's state directory?)", err)
	}
	db, err := openDB(ctx, o.Confdir, cfg)
	if err != nil {
		return r, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	anchor, err := readAnchor(o.Confdir, o.Anchor)
	if err != nil {
		return r, err
	}
	v := &audit.Verifier{Key: key}
	if _, err := db.Verify(ctx, v, anchor); err != nil {
		return r, r.broken(audit.ChainDB, err)
	}
	if !r.add(audit.ChainDB, v.Summary(), o.MaxUnsigned) {
		return r, nil
	}

	// The server's journal.
	dir := filepath.Join(o.Confdir, audit.JournalDir)
	files, err := audit.JournalFiles(dir)
	if errors.Is(err, os.ErrNotExist) || len(files) == 0 {
		r.Chains = append(r.Chains, Chain{Name: audit.ChainJournal, NoneIn: dir})
		return r, nil
	}
	if err != nil {
		return r, err
	}
	j := &audit.Verifier{Key: key, Partial: journalPartial(files)}
	if err := audit.ReadJournal(dir, j.Add); err != nil {
		return r, r.broken(audit.ChainJournal, err)
	}
	r.add(audit.ChainJournal, j.Summary(), o.MaxUnsigned)
	return r, nil
}

// journalPartial reports whether a journal's files start after its first
// record (its older files were removed).
func journalPartial(files []string) bool {
	first, _ := audit.JournalFileSeq(files[0])
	return first > 1
}

// readAnchor reads the anchor file: the one named (which must exist), or
// the state directory's (which may not yet).
func readAnchor(confdir, named string) (*audit.Anchor, error) {
	path := named
	if path == "" {
		path = filepath.Join(confdir, audit.AnchorFile)
	}
	a, ok, err := audit.ReadAnchor(path)
	if err != nil {
		return nil, err
	}
	return pickAnchor(named, a, ok)
}

// pickAnchor decides what an anchor file read means: none found is fine
// for the state directory's, not for one the operator named.
func pickAnchor(named string, a audit.Anchor, found bool) (*audit.Anchor, error) {
	switch {
	case found:
		return &a, nil
	case named != "":
		return nil, fmt.Errorf("--anchor %s: not found", named)
	}
	return nil, nil
}

// verifyFiles checks exported or journal files: each line names its chain.
func verifyFiles(key *openpgp.PublicKey, o VerifyOptions) (Report, error) {
	var r Report
	var names []string
	byName := map[string]*audit.Verifier{}
	for _, path := range o.Files {
		file, err := os.Open(path)
		if err != nil {
			return r, err
		}
		sc := audit.NewScanner(bufio.NewReaderSize(file, 1<<20))
		for sc.Scan() {
			v := byName[sc.Chain]
			if v == nil {
				v = &audit.Verifier{Key: key, Partial: true}
				byName[sc.Chain] = v
				names = append(names, sc.Chain)
			}
			if err := v.Add(sc.Record); err != nil {
				file.Close()
				r.Broken = &Broken{Chain: sc.Chain, Err: fmt.Errorf("%s line %d: %w", path, sc.Line(), err)}
				return r, nil
			}
		}
		file.Close()
		if err := sc.Err(); err != nil {
			return r, fmt.Errorf("%s: %w", path, err)
		}
	}
	if len(names) == 0 {
		return r, errors.New("the files hold no audit records")
	}
	for _, name := range names {
		if !r.add(name, byName[name].Summary(), o.MaxUnsigned) {
			break
		}
	}
	return r, nil
}

// serverKey is the server's public key: from file, or the state directory's.
func serverKey(dir, file string) (*openpgp.PublicKey, error) {
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

// openDB connects to the state directory's database to read its audit
// chain (a passive's standby does too).
func openDB(ctx context.Context, dir string, cfg config.Config) (*store.AuditLog, error) {
	pw, err := confdir.ReadDBPassword(dir, cfg)
	if err != nil {
		return nil, err
	}
	db, err := store.OpenAuditLog(ctx, confdir.Instance(dir, cfg, "").ConnString(cfg.DBName, pw))
	if err != nil {
		return nil, fmt.Errorf("connect to the database at %s:%d: %w (is it running? try `kts db status`)", cfg.DBHost, cfg.DBPort, err)
	}
	ok, err := db.Exists(ctx)
	if err != nil || !ok {
		db.Close(ctx)
		if err == nil {
			err = errors.New("the database has no audit chain yet: start the server once with this kts, which adds it")
		}
		return nil, err
	}
	return db, nil
}
