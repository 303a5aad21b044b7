package auditlog

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/config"
)

// ExportOptions says which records to export and where.
type ExportOptions struct {
	// Confdir is the server's state directory.
	Confdir string
	// Since, when set, keeps the records from this time on (RFC 3339).
	Since string
	// AfterSeq keeps the records after this sequence number (with Chain).
	AfterSeq int64
	// Chain, when set, is the only chain exported: "db" or "journal".
	Chain string
	// Output is the file to write ("-": Stdout).
	Output string
	Stdout io.Writer
}

// filter is what ExportOptions keeps.
type filter struct {
	since    time.Time
	afterSeq int64
}

func (f filter) keep(r audit.Record) bool { return r.Seq > f.afterSeq && !r.Time.Before(f.since) }

// exportFilter checks the options that choose records.
func exportFilter(o ExportOptions) (filter, error) {
	f := filter{afterSeq: o.AfterSeq}
	if o.Since != "" {
		t, err := time.Parse(time.RFC3339, o.Since)
		if err != nil {
			return f, fmt.Errorf("--since %q: give a time as 2026-11-27T00:00:00Z (RFC 3339)", o.Since)
		}
		f.since = t
	}
	switch o.Chain {
	case "", audit.ChainDB, audit.ChainJournal:
	default:
		return f, fmt.Errorf(`--chain %q: "db" or "journal"`, o.Chain)
	}
	if o.AfterSeq != 0 && o.Chain == "" {
		return f, errors.New("--after-seq needs --chain: sequence numbers belong to one chain")
	}
	return f, nil
}

// exported is a record and the chain it belongs to, on its way out.
type exported struct {
	chain string
	r     audit.Record
}

// Export writes the records o chooses as JSON lines (audit.AppendLine): the
// database chain and the server's journal merged by time, each chain in
// its own order. It returns how many it wrote.
func Export(ctx context.Context, o ExportOptions) (int, error) {
	f, err := exportFilter(o)
	if err != nil {
		return 0, err
	}
	cfg, err := config.Load(o.Confdir)
	if err != nil {
		return 0, fmt.Errorf("%w (is --confdir the server's state directory?)", err)
	}
	w := o.Stdout
	if o.Output != "-" {
		file, err := os.OpenFile(o.Output, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return 0, err
		}
		defer file.Close()
		w = file
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sources []<-chan exported
	var errs []func() error
	if o.Chain != audit.ChainJournal {
		db, err := openDB(ctx, o.Confdir, cfg)
		if err != nil {
			return 0, err
		}
		defer db.Close(context.WithoutCancel(ctx))
		ch, wait := stream(ctx, audit.ChainDB, func(fn func(audit.Record) error) error {
			return db.Records(ctx, o.AfterSeq+1, fn)
		}, f.keep)
		sources, errs = append(sources, ch), append(errs, wait)
	}
	if o.Chain != audit.ChainDB {
		dir := filepath.Join(o.Confdir, audit.JournalDir)
		ch, wait := stream(ctx, audit.ChainJournal+"@"+cfg.Hostname, func(fn func(audit.Record) error) error {
			err := audit.ReadJournal(dir, fn)
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}, f.keep)
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
		return n, fmt.Errorf("after %d records: %w", n, err)
	}
	return n, nil
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
// own order (a tie goes to the chain listed first).
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
