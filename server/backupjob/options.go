package backupjob

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/restore"
)

// serverOptions fills in a backup of the server's state directory and
// database.
func serverOptions(b *backup.Options, o Options) error {
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	cfg := st.Config
	if o.DBPort != 0 {
		cfg.DBPort = o.DBPort
	}
	inst := confdir.Instance(dir, cfg, "")
	b.Kind, b.StateDir, b.Output = backup.KindServer, dir, o.Output
	b.Host, b.Fingerprint, b.Role = host(cfg.Hostname, os.Hostname), st.ServerKey.Public().ID(), cfg.Role
	b.Skip = stateSkip(dir, cfg)
	b.Extra = restore.OutsideFiles(dir, cfg)
	b.Dump = func(ctx context.Context, w io.Writer) error { return inst.Dump(ctx, st.DBPassword, cfg.DBName, w) }
	return nil
}

// clientOptions fills in a backup of a client state directory.
func clientOptions(b *backup.Options, o Options) error {
	dir, err := filepath.Abs(o.Client)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("--client %s: not a client state directory (%v)", o.Client, err)
	}
	b.Kind, b.StateDir, b.Output, b.Host = backup.KindClient, dir, o.Output, host("", os.Hostname)
	return nil
}

// host is the host name an archive is named after: the configured one,
// else the system's (hostname), else localhost.
func host(configured string, hostname func() (string, error)) string {
	if configured != "" {
		return configured
	}
	h, err := hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// stateSkip leaves out of a server archive what is not state: the
// database's files (the dump stands for them) and what the server keeps
// while it runs.
func stateSkip(dir string, cfg config.Config) func(rel string) bool {
	data, _ := filepath.Rel(dir, cfg.Path(dir, cfg.DBDataDir))
	data = filepath.ToSlash(data)
	return func(rel string) bool {
		// The server's audit journal can be large and is exported rather
		// than archived (the database's chain is in the dump).
		return rel == data || rel == daemon.StandbyGateFile || rel == audit.JournalDir
	}
}
