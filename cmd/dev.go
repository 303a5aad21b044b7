package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// Fixed local addresses of `kts dev` (DESIGN: active 11371/11381).
const (
	devActiveAddr = "127.0.0.1:11371"
	devActiveDB   = 11381
	devOrg        = "demo"
)

func newDevCommand() *cobra.Command {
	var dir, runAs, logLevel string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run Trustee locally: PostgreSQL, the server and a demo organization (make run)",
		Long: `dev starts a local Trustee in one command: it initializes the state under --dir
on first use (reused afterwards), starts its PostgreSQL, the HTTPS server on
127.0.0.1:11371, creates the organization "demo" whose auth code it keeps in
--dir/demo-auth-code (0600), and prints how to use it. Ctrl-C stops
everything it started.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			log, err := newLogger(cmd.ErrOrStderr(), logLevel)
			if err != nil {
				return err
			}
			return runDev(cmd.Context(), dir, runAs, func(st *confdir.State, started func(string)) error {
				return daemon.Run(cmd.Context(), st, daemon.Options{Log: log, Ready: started})
			})
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".kts-dev", "where the local state lives")
	cmd.Flags().StringVar(&runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "server log level")
	return cmd
}

func runDev(ctx context.Context, dir, runAs string, serve func(*confdir.State, func(string)) error) error {
	// The top directory stays traversable so that, under root, the
	// PostgreSQL account can reach its data directory; secrets inside are 0600.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	active := filepath.Join(dir, "active")
	if _, err := os.Stat(active); errors.Is(err, fs.ErrNotExist) {
		fmt.Println("first start: creating the server identity (RSA 4096 takes a few seconds)")
	}
	if _, err := confdir.Init(active, confdir.InitOptions{
		Hostname: "localhost", KeyType: openpgp.RSA4096, DBPort: devActiveDB, ListenAddress: devActiveAddr,
	}); err != nil {
		return err
	}
	st, err := confdir.Open(active)
	if err != nil {
		return err
	}
	cfg := st.Config
	inst := &pg.Instance{DataDir: cfg.Path(active, cfg.DBDataDir), Host: cfg.DBHost, Port: cfg.DBPort, User: cfg.DBUser, RunAs: runAs}
	if !inst.Initialized() {
		if err := initDB(ctx, active, cfg, inst); err != nil {
			return err
		}
	}
	status, err := inst.Status(ctx)
	if err != nil {
		return err
	}
	if !status.Running {
		if err := inst.Start(ctx); err != nil {
			return err
		}
		defer func() {
			if err := inst.Stop(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
			} else {
				fmt.Println("PostgreSQL stopped")
			}
		}()
	}
	codeFile := filepath.Join(dir, "demo-auth-code")
	if err := ensureDemoOrg(ctx, st, codeFile); err != nil {
		return err
	}
	return serve(st, func(addr string) {
		printDevBanner(dir, codeFile, st, inst)
	})
}

// ensureDemoOrg creates the demo organization with an auth code kept in
// codeFile, once.
func ensureDemoOrg(ctx context.Context, st *confdir.State, codeFile string) error {
	db, err := store.Open(ctx, st.DSN(), 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(codeFile); err == nil {
		if _, err := db.Organization(ctx, devOrg); err == nil {
			return nil
		}
	}
	code, err := org.GenerateAuthCode()
	if err != nil {
		return err
	}
	hash, err := org.HashAuthCode(code)
	if err != nil {
		return err
	}
	if _, _, err := db.AddOrganization(ctx, devOrg, []string{"admin@example.com"}, hash); err != nil {
		return err
	}
	if err := db.SetAuthHash(ctx, devOrg, hash); err != nil {
		return err
	}
	return os.WriteFile(codeFile, []byte(code+"\n"), 0o600)
}

func printDevBanner(dir, codeFile string, st *confdir.State, inst *pg.Instance) {
	kts := "bin/kts"
	if exe, err := os.Executable(); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
				kts = rel
			}
		}
	}
	clientDir := filepath.Join(dir, "client")
	active := filepath.Join(dir, "active")
	fmt.Printf(`
Trustee is running.
  API (active)   https://%s
  fingerprint    %s
  PostgreSQL     %s:%d, data in %s
  organization   %s, auth code in %s
  state          %s (kept between runs)

Try it from another terminal:
  curl -k https://%[1]s/?a=fingerprint
  %[9]s client register --dir %[10]s --server https://%[1]s --org %[6]s --auth-code-file %[7]s --skip-ssl-check
  echo -n 'my data key' | %[9]s client put --dir %[10]s key1
  %[9]s client get --dir %[10]s key1
  %[9]s client list --dir %[10]s
  %[9]s org list --confdir %[11]s

Ctrl-C stops everything started here.
`, devActiveAddr, st.ServerKey.Public().ID(), inst.Host, inst.Port, inst.DataDir, devOrg, codeFile, dir, kts, clientDir, active)
}
