package cmd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/org"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/tlsconf"
)

// Fixed local addresses of `kts dev` (DESIGN.md): the active's API and
// PostgreSQL, then the passive's.
const (
	devActiveAPI  = 11371
	devActiveDB   = 11381
	devPassiveAPI = 11372
	devPassiveDB  = 11382
	devOrg        = "demo"
	// The admin APIs (mutual TLS), the active's then the passive's.
	devActiveAdmin  = 11373
	devPassiveAdmin = 11374
)

func newDevCommand() *cobra.Command {
	var dir, runAs, logLevel, mailpit string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the whole Trustee pair locally, with a demo organization (make run)",
		Long: `dev starts a local Trustee pair in one command. On first use it creates the
state under --dir (reused afterwards): the active (API 127.0.0.1:11371,
PostgreSQL 11381) and the passive (API 127.0.0.1:11372, PostgreSQL 11382, a
synchronous hot standby of the active's). It starts the four processes,
creates the organization "demo" whose auth code it keeps in
--dir/demo-auth-code (0600), and prints how to use it. With --mailpit it also
runs mailpit as the demo's MTA (SMTP 127.0.0.1:11025, messages readable at
http://127.0.0.1:11080/api/v1/messages). Ctrl-C stops them all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := newLogger(cmd.ErrOrStderr(), logLevel); err != nil {
				return err
			}
			return runDev(cmd.Context(), dir, runAs, logLevel, devMailpit(mailpit))
		},
	}
	cmd.Flags().StringVar(&dir, "dir", ".kts-dev", "where the local state lives")
	cmd.Flags().StringVar(&runAs, "run-as", pg.DefaultRunAs, "account that runs PostgreSQL when kts runs as root")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "the servers' log level")
	cmd.Flags().StringVar(&mailpit, "mailpit", "", "run this mailpit binary as the demo's MTA (make run builds one)")
	return cmd
}

// devMember is one server of the local pair.
type devMember struct {
	dir  string
	st   *confdir.State
	inst *pg.Instance
}

func runDev(ctx context.Context, dir, runAs, logLevel, mailpit string) (err error) {
	// The top directory stays traversable so that, under root, the
	// PostgreSQL account can reach its data directories; secrets inside are 0600.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	active, passive, err := devState(ctx, dir, runAs)
	if err != nil {
		return err
	}
	// Start the databases (the passive after the active it follows) and
	// stop what was started here in reverse order on the way out.
	for _, m := range []*devMember{active, passive} {
		status, err := m.inst.Status(ctx)
		if err != nil {
			return err
		}
		if status.Running {
			continue
		}
		if err := m.inst.Start(ctx); err != nil {
			return err
		}
		defer func() {
			if err := m.inst.Stop(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
			} else {
				fmt.Printf("PostgreSQL in %s stopped\n", m.inst.DataDir)
			}
		}()
	}
	if mailpit != "" {
		mp, err := startDevMail(context.WithoutCancel(ctx), mailpit, dir, active.dir, passive.dir)
		if err != nil {
			return err
		}
		defer mp.stop()
	}
	codeFile := filepath.Join(dir, "demo-auth-code")
	if err := ensureDemoOrg(ctx, active.st, codeFile); err != nil {
		return err
	}
	var servers []*process
	defer func() {
		for i := len(servers) - 1; i >= 0; i-- {
			servers[i].stop()
		}
		if len(servers) > 0 {
			fmt.Println("servers stopped")
		}
	}()
	for _, m := range []*devMember{active, passive} {
		p, err := startChild(context.WithoutCancel(ctx), "server", "--confdir", m.dir, "--announce", "--log-level", logLevel)
		if err != nil {
			return err
		}
		servers = append(servers, p)
	}
	printDevBanner(dir, codeFile, active, passive, mailpit != "")
	select {
	case <-ctx.Done():
		return nil
	case <-servers[0].exited:
		return errors.New("the active server exited; see its log above")
	case <-servers[1].exited:
		return errors.New("the passive server exited; see its log above")
	}
}

// devState creates, on first use, the pair's state directories and
// databases, and opens them.
func devState(ctx context.Context, dir, runAs string) (active, passive *devMember, err error) {
	activeDir, passiveDir := filepath.Join(dir, "active"), filepath.Join(dir, "passive")
	if _, err := os.Stat(activeDir); errors.Is(err, fs.ErrNotExist) {
		fmt.Println("first start: creating the server identity (RSA 4096 takes a few seconds) and both databases")
	}
	if _, err := confdir.Init(activeDir, confdir.InitOptions{
		Hostname: "localhost", KeyType: openpgp.RSA4096, DBPort: devActiveDB,
		ListenAddress: "127.0.0.1:" + strconv.Itoa(devActiveAPI),
	}); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(activeDir)
	if err != nil {
		return nil, nil, err
	}
	if cfg.StandbyName == "" || !confdir.Instance(activeDir, cfg, runAs).Initialized() {
		if err := confdir.PairActive(ctx, os.Stdout, activeDir, cfg, runAs); err != nil {
			return nil, nil, err
		}
	}
	if _, err := confdir.InitFromActive(activeDir, passiveDir, confdir.PassiveOptions{
		Hostname: "localhost", ListenAddress: "127.0.0.1:" + strconv.Itoa(devPassiveAPI), DBPort: devPassiveDB,
		ActiveURL: "https://127.0.0.1:" + strconv.Itoa(devActiveAPI), ActiveDB: "127.0.0.1:" + strconv.Itoa(devActiveDB),
	}); err != nil {
		return nil, nil, err
	}
	if err := devAdminAPI(dir, map[string]int{activeDir: devActiveAdmin, passiveDir: devPassiveAdmin}); err != nil {
		return nil, nil, err
	}
	open := func(d string) (*devMember, error) {
		st, err := confdir.Open(d)
		if err != nil {
			return nil, err
		}
		m := &devMember{dir: d, st: st, inst: confdir.Instance(d, st.Config, runAs)}
		// Under root, the PostgreSQL account passes through d to its data
		// directory, and owns nothing else.
		note, err := m.inst.PrepareStateDir(d)
		if err != nil {
			st.Close()
			return nil, err
		}
		if note != "" {
			fmt.Println(note)
		}
		return m, nil
	}
	if active, err = open(activeDir); err != nil {
		return nil, nil, err
	}
	if passive, err = open(passiveDir); err != nil {
		return nil, nil, err
	}
	if !passive.inst.Initialized() {
		// The standby is copied from the running active.
		running, err := active.inst.Status(ctx)
		if err != nil {
			return nil, nil, err
		}
		if !running.Running {
			if err := active.inst.Start(ctx); err != nil {
				return nil, nil, err
			}
			defer active.inst.Stop(context.WithoutCancel(ctx))
		}
		if err := confdir.InitPassive(ctx, os.Stdout, passiveDir, passive.st.Config, passive.inst); err != nil {
			return nil, nil, err
		}
	}
	return active, passive, nil
}

// devAdminFiles are the dev admin CA certificate, and the admin client
// certificate and key, in dir.
func devAdminFiles(dir string) (ca, cert, key string) {
	return filepath.Join(dir, "admin-ca.pem"), filepath.Join(dir, "admin.pem"), filepath.Join(dir, "admin-key.pem")
}

// devAdminAPI turns on the admin API of each member (state directory →
// port) with a dev admin CA, and makes, once, the CA and one admin client
// certificate in dir (files 0600; the CA's key is not kept).
func devAdminAPI(dir string, members map[string]int) error {
	caFile, certFile, keyFile := devAdminFiles(dir)
	if !fileExists(caFile) || !fileExists(certFile) || !fileExists(keyFile) {
		ca, err := tlsconf.NewClientCA("kts dev admin CA", 10*365*24*time.Hour)
		if err != nil {
			return err
		}
		certPEM, keyPEM, err := ca.IssueClient("kts-dev-admin", 10*365*24*time.Hour)
		if err != nil {
			return err
		}
		defer clear(keyPEM)
		// The CA last: with it in place, the set is complete.
		for _, f := range []struct {
			path string
			data []byte
		}{{keyFile, keyPEM}, {certFile, certPEM}, {caFile, ca.CertPEM()}} {
			os.Remove(f.path)
			if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
				return err
			}
		}
	}
	for memberDir, port := range members {
		cfg, err := config.Load(memberDir)
		if err != nil {
			return err
		}
		addr, ca := "127.0.0.1:"+strconv.Itoa(port), filepath.Join("..", filepath.Base(caFile))
		if cfg.AdminListenAddress != addr || cfg.AdminCAFile != ca {
			cfg.AdminListenAddress, cfg.AdminCAFile = addr, ca
			if err := cfg.Save(memberDir); err != nil {
				return err
			}
		}
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
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

func printDevBanner(dir, codeFile string, active, passive *devMember, mail bool) {
	kts := "bin/kts"
	if exe, err := os.Executable(); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
				kts = rel
			}
		}
	}
	clientDir := filepath.Join(dir, "client")
	_, adminCert, adminKey := devAdminFiles(dir)
	activeURL := "https://127.0.0.1:" + strconv.Itoa(devActiveAPI)
	passiveURL := "https://127.0.0.1:" + strconv.Itoa(devPassiveAPI)
	fmt.Printf(`
Trustee is running: an active/passive pair on synchronous replication.
  active         %s   PostgreSQL 127.0.0.1:%d  (%s)
  passive        %s   PostgreSQL 127.0.0.1:%d  (%s)
  admin API      https://127.0.0.1:%d (active), https://127.0.0.1:%d (passive), mutual TLS:
                 admin certificate %s, key %s
  fingerprint    %s (the same on both)
  organization   %s, auth code in %s
  state          %s (kept between runs)

Try it from another terminal:
  curl -k %s/?a=fingerprint
  %s client register --dir %s --server %s,%s --org %s --auth-code-file %s --skip-ssl-check
  echo -n 'my data key' | %s client put --dir %s key1
  %s client get --dir %s key1
  %s client list --dir %s
  %s org list --confdir %s
  curl -k --cert %s --key %s https://127.0.0.1:%d/admin/v1/organizations/%s

%s
Ctrl-C stops everything it started.
`, activeURL, devActiveDB, active.inst.DataDir, passiveURL, devPassiveDB, passive.inst.DataDir,
		devActiveAdmin, devPassiveAdmin, adminCert, adminKey,
		active.st.ServerKey.Public().ID(), devOrg, codeFile, dir,
		activeURL, kts, clientDir, activeURL, passiveURL, devOrg, codeFile,
		kts, clientDir, kts, clientDir, kts, clientDir, kts, active.dir,
		adminCert, adminKey, devActiveAdmin, devOrg, devMailLine(mail, kts, active.dir))
}

// devMailLine says where the demo's mail can be read.
func devMailLine(mail bool, kts, dir string) string {
	if !mail {
		return "Mail is not sent (no mailpit): queued mail shows with  " + kts + " org outbox --confdir " + dir + "\n"
	}
	return fmt.Sprintf("Mail goes to mailpit (SMTP 127.0.0.1:%d); read it with\n  curl http://127.0.0.1:%d/api/v1/messages\n  %s org add -n %s -c you@example.com --confdir %s   # sends a contact registration mail\n",
		devMailSMTP, devMailHTTP, kts, devOrg, dir)
}
