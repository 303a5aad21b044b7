package confdir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
)

// Instance describes the PostgreSQL of the state directory dir, run as the
// account runAs when root starts it.
func Instance(dir string, cfg config.Config, runAs string) *pg.Instance {
	inst := &pg.Instance{DataDir: cfg.Path(dir, cfg.DBDataDir), Host: cfg.DBHost, Port: cfg.DBPort, User: cfg.DBUser,
		RunAs: runAs, Role: pg.Role(cfg.Role), Standby: cfg.StandbyName,
		ListenAddresses: cfg.DBListenAddresses, SocketDir: cfg.Path(dir, cfg.DBSocketDir),
		ReplicationFrom: cfg.ReplicationFrom, ClientsFrom: cfg.DBClientsFrom, Parameters: cfg.DBParameters}
	if cfg.DBTLS {
		abs := func(p string) string {
			if p = cfg.Path(dir, p); p != "" {
				if a, err := filepath.Abs(p); err == nil {
					return a
				}
			}
			return p
		}
		inst.TLS = &pg.TLS{CertFile: abs(cfg.SSLCertificate), KeyFile: abs(cfg.SSLPrivateKey), MinVersion: cfg.DBTLSMinVersion(),
			CAFile: abs(cfg.DBCA())}
		if cfg.Role == config.RolePassive {
			inst.TLS.ActiveCAFile = abs(cfg.ActiveCA)
		}
	}
	return inst
}

// PrepareStateDir keeps the state directory dir root's while PostgreSQL
// runs as the run-as account (which may pass through it), saying on out
// when it took it back from that account, and refuses a state directory
// where another account can change what the server trusts.
func PrepareStateDir(out io.Writer, dir string, cfg config.Config, inst *pg.Instance) error {
	note, err := inst.PrepareStateDir(dir)
	if err != nil {
		return err
	}
	if note != "" {
		fmt.Fprintln(out, note)
	}
	return CheckTrusted(dir, cfg)
}

// InitDB creates the cluster of a state directory. When run by root, the
// PostgreSQL account may pass through the state directory to reach the data
// directory inside it, and owns only that.
func InitDB(ctx context.Context, out io.Writer, dir string, cfg config.Config, inst *pg.Instance) error {
	if err := PrepareStateDir(out, dir, cfg, inst); err != nil {
		return err
	}
	pw, err := ReadDBPassword(dir, cfg)
	if err != nil {
		return err
	}
	if err := inst.Init(ctx, pw); err != nil {
		return err
	}
	fmt.Fprintf(out, "created PostgreSQL cluster in %s (port %d)\n", inst.DataDir, inst.Port)
	return nil
}

// PairActive sets up the active of a pair: it names the synchronous
// standby in the configuration, creates the cluster if needed, and the
// replication account and slot.
func PairActive(ctx context.Context, out io.Writer, dir string, cfg config.Config, runAs string) error {
	if cfg.Role != config.RoleActive {
		return fmt.Errorf("%s is a passive's state directory; --role active is for the active", dir)
	}
	if cfg.StandbyName == "" {
		cfg.StandbyName = pg.DefaultStandby
		if err := cfg.Save(dir); err != nil {
			return err
		}
	}
	inst := Instance(dir, cfg, runAs)
	if !inst.Initialized() {
		if err := InitDB(ctx, out, dir, cfg, inst); err != nil {
			return err
		}
	}
	if err := ConfigureActive(ctx, dir, cfg, inst); err != nil {
		return err
	}
	fmt.Fprintf(out, "PostgreSQL of the active is set up for the pair: commits wait for standby %q\n", cfg.StandbyName)
	return nil
}

// ConfigureActive makes the active's cluster wait for its standby and
// creates (or brings up to date) the replication account and slot. The
// server is (re)started for it, and stopped again unless it was running.
func ConfigureActive(ctx context.Context, dir string, cfg config.Config, inst *pg.Instance) error {
	pw, err := ReadDBPassword(dir, cfg)
	if err != nil {
		return err
	}
	repl, err := readSecretFile(cfg.Path(dir, cfg.ReplicationPasswordFile))
	if err != nil {
		return err
	}
	st, err := inst.Status(ctx)
	if err != nil {
		return err
	}
	if st.Running { // restart to apply synchronous_standby_names
		if err := inst.Stop(ctx); err != nil {
			return err
		}
	}
	if err := inst.Start(ctx); err != nil {
		return err
	}
	err = inst.ConfigureReplication(ctx, pw, repl)
	if !st.Running {
		err = errors.Join(err, inst.Stop(context.WithoutCancel(ctx)))
	}
	return err
}

// InitPassive copies the active's database onto a passive.
func InitPassive(ctx context.Context, out io.Writer, dir string, cfg config.Config, inst *pg.Instance) error {
	if cfg.Role != config.RolePassive {
		return fmt.Errorf("%s is not a passive's state directory; make one with `kts init --from-active`", dir)
	}
	if inst.Initialized() {
		fmt.Fprintf(out, "PostgreSQL standby in %s already exists; nothing changed\n", inst.DataDir)
		return nil
	}
	if err := PrepareStateDir(out, dir, cfg, inst); err != nil {
		return err
	}
	host, port, pw, err := ActiveDB(dir, cfg)
	if err != nil {
		return err
	}
	if err := inst.InitStandby(ctx, host, port, pw); err != nil {
		return err
	}
	fmt.Fprintf(out, "created PostgreSQL standby of %s in %s (port %d)\n", cfg.ActiveDB, inst.DataDir, inst.Port)
	return nil
}

// ActiveDB returns where the passive replicates from, and the replication
// password.
func ActiveDB(dir string, cfg config.Config) (string, int, string, error) {
	host, portStr, err := net.SplitHostPort(cfg.ActiveDB)
	if err != nil {
		return "", 0, "", fmt.Errorf("ACTIVE_DB %q: %w", cfg.ActiveDB, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, "", fmt.Errorf("ACTIVE_DB %q: port: %w", cfg.ActiveDB, err)
	}
	pw, err := readSecretFile(cfg.Path(dir, cfg.ReplicationPasswordFile))
	return host, port, pw, err
}

// readSecretFile reads a password file the state directory holds.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%w (run `kts init` to create it)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// InitDBRole is `kts db init --role ROLE`: the cluster of a single server
// (role ""), the active of a pair, or a passive's copy of the active's.
func InitDBRole(ctx context.Context, out io.Writer, dir string, cfg config.Config, inst *pg.Instance, role, runAs string) error {
	switch role {
	case "":
		if inst.Initialized() {
			fmt.Fprintf(out, "PostgreSQL cluster in %s already exists; nothing changed\n", inst.DataDir)
			return nil
		}
		return InitDB(ctx, out, dir, cfg, inst)
	case config.RoleActive:
		return PairActive(ctx, out, dir, cfg, runAs)
	case config.RolePassive:
		return InitPassive(ctx, out, dir, cfg, inst)
	}
	return fmt.Errorf("--role %q: use active or passive (or leave it out for a single server)", role)
}

// Reseed copies the active's database anew onto the passive of dir.
func Reseed(ctx context.Context, dir string, cfg config.Config, inst *pg.Instance) error {
	if cfg.Role != config.RolePassive {
		return fmt.Errorf("%s is not a passive's state directory; only a passive is re-seeded", dir)
	}
	host, port, pw, err := ActiveDB(dir, cfg)
	if err != nil {
		return err
	}
	return inst.Reseed(ctx, host, port, pw)
}

// OpenInstance reads the configuration of the state directory dir and
// describes its PostgreSQL, run as runAs when root starts it.
func OpenInstance(dir, runAs string) (*pg.Instance, config.Config, error) {
	cfg, err := config.Load(dir)
	if err != nil {
		return nil, cfg, fmt.Errorf("%w (run `kts init --confdir %s` first)", err, dir)
	}
	return Instance(dir, cfg, runAs), cfg, nil
}

// PreparedInstance is OpenInstance for the commands that run PostgreSQL
// or read its passwords: the state directory is kept root's, and what the
// server trusts must be safe from other accounts (PrepareStateDir).
func PreparedInstance(out io.Writer, dir, runAs string) (*pg.Instance, config.Config, error) {
	inst, cfg, err := OpenInstance(dir, runAs)
	if err != nil {
		return nil, cfg, err
	}
	if err := PrepareStateDir(out, dir, cfg, inst); err != nil {
		return nil, cfg, err
	}
	return inst, cfg, nil
}
