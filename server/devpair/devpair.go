// Package devpair is the local pair `kts dev` (make run) starts: its fixed
// addresses, its state directories and databases made on first use, the
// demo organization, the admin API's certificates, and the banner that
// says how to use it.
package devpair

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"time"

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
	ActiveAPI  = 11371
	ActiveDB   = 11381
	PassiveAPI = 11372
	PassiveDB  = 11382
	Org        = "demo"
	// The admin APIs (mutual TLS), the active's then the passive's.
	ActiveAdmin  = 11373
	PassiveAdmin = 11374
	// The demo's MTA (mailpit), when `kts dev` runs one.
	MailSMTP = 11025
	MailHTTP = 11080
)

// Member is one server of the local pair.
type Member struct {
	Dir   string
	State *confdir.State
	Inst  *pg.Instance
}

// Prepare creates, on first use, the pair's state directories and
// databases under dir (reused afterwards), and opens them. The top
// directory stays traversable so that, under root, the PostgreSQL account
// can reach its data directories; secrets inside are 0600.
func Prepare(ctx context.Context, out io.Writer, dir, runAs string) (active, passive *Member, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	return prepare(ctx, out, dir, runAs)
}

// prepare creates, on first use, the pair's state directories and
// databases, and opens them.
func prepare(ctx context.Context, out io.Writer, dir, runAs string) (active, passive *Member, err error) {
	activeDir, passiveDir := filepath.Join(dir, "active"), filepath.Join(dir, "passive")
	if _, err := os.Stat(activeDir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(out, "first start: creating the server identity (RSA 4096 takes a few seconds) and both databases")
	}
	if _, err := confdir.Init(activeDir, confdir.InitOptions{
		Hostname: "localhost", KeyType: openpgp.RSA4096, DBPort: ActiveDB,
		ListenAddress: "127.0.0.1:" + strconv.Itoa(ActiveAPI),
	}); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(activeDir)
	if err != nil {
		return nil, nil, err
	}
	if cfg.StandbyName == "" || !confdir.Instance(activeDir, cfg, runAs).Initialized() {
		if err := confdir.PairActive(ctx, out, activeDir, cfg, runAs); err != nil {
			return nil, nil, err
		}
	}
	if _, err := confdir.InitFromActive(activeDir, passiveDir, confdir.PassiveOptions{
		Hostname: "localhost", ListenAddress: "127.0.0.1:" + strconv.Itoa(PassiveAPI), DBPort: PassiveDB,
		ActiveURL: "https://127.0.0.1:" + strconv.Itoa(ActiveAPI), ActiveDB: "127.0.0.1:" + strconv.Itoa(ActiveDB),
	}); err != nil {
		return nil, nil, err
	}
	if err := adminAPI(dir, map[string]int{activeDir: ActiveAdmin, passiveDir: PassiveAdmin}); err != nil {
		return nil, nil, err
	}
	open := func(d string) (*Member, error) {
		st, err := confdir.Open(d)
		if err != nil {
			return nil, err
		}
		m := &Member{Dir: d, State: st, Inst: confdir.Instance(d, st.Config, runAs)}
		// Under root, the PostgreSQL account passes through d to its data
		// directory, and owns nothing else.
		note, err := m.Inst.PrepareStateDir(d)
		if err != nil {
			st.Close()
			return nil, err
		}
		if note != "" {
			fmt.Fprintln(out, note)
		}
		return m, nil
	}
	if active, err = open(activeDir); err != nil {
		return nil, nil, err
	}
	if passive, err = open(passiveDir); err != nil {
		return nil, nil, err
	}
	if !passive.Inst.Initialized() {
		// The standby is copied from the running active.
		running, err := active.Inst.Status(ctx)
		if err != nil {
			return nil, nil, err
		}
		if !running.Running {
			if err := active.Inst.Start(ctx); err != nil {
				return nil, nil, err
			}
			defer active.Inst.Stop(context.WithoutCancel(ctx))
		}
		if err := confdir.InitPassive(ctx, out, passiveDir, passive.State.Config, passive.Inst); err != nil {
			return nil, nil, err
		}
	}
	return active, passive, nil
}

// AdminFiles are the dev admin CA certificate, and the admin client
// certificate and key, in dir.
func AdminFiles(dir string) (ca, cert, key string) {
	return filepath.Join(dir, "admin-ca.pem"), filepath.Join(dir, "admin.pem"), filepath.Join(dir, "admin-key.pem")
}

// adminAPI turns on the admin API of each member (state directory →
// port) with a dev admin CA, and makes, once, the CA and one admin client
// certificate in dir (files 0600; the CA's key is not kept).
func adminAPI(dir string, members map[string]int) error {
	caFile, certFile, keyFile := AdminFiles(dir)
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

// EnsureDemoOrg creates the demo organization with an auth code kept in
// codeFile, once.
func EnsureDemoOrg(ctx context.Context, st *confdir.State, codeFile string) error {
	db, err := store.Open(ctx, st.DSN(), 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	if _, err := os.Stat(codeFile); err == nil {
		if _, err := db.Organization(ctx, Org); err == nil {
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
	if _, _, err := db.AddOrganization(ctx, Org, []string{"admin@example.com"}, hash); err != nil {
		return err
	}
	if err := db.SetAuthHash(ctx, Org, hash); err != nil {
		return err
	}
	return os.WriteFile(codeFile, []byte(code+"\n"), 0o600)
}

// Banner says, on w, what runs where and how to try it, with kts the
// command that runs kts.
func Banner(w io.Writer, kts, dir, codeFile string, active, passive *Member, mail bool) {
	clientDir := filepath.Join(dir, "client")
	_, adminCert, adminKey := AdminFiles(dir)
	activeURL := "https://127.0.0.1:" + strconv.Itoa(ActiveAPI)
	passiveURL := "https://127.0.0.1:" + strconv.Itoa(PassiveAPI)
	fmt.Fprintf(w, `
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
`, activeURL, ActiveDB, active.Inst.DataDir, passiveURL, PassiveDB, passive.Inst.DataDir,
		ActiveAdmin, PassiveAdmin, adminCert, adminKey,
		active.State.ServerKey.Public().ID(), Org, codeFile, dir,
		activeURL, kts, clientDir, activeURL, passiveURL, Org, codeFile,
		kts, clientDir, kts, clientDir, kts, clientDir, kts, active.Dir,
		adminCert, adminKey, ActiveAdmin, Org, mailLine(mail, kts, active.Dir))
}

// mailLine says where the demo's mail can be read.
func mailLine(mail bool, kts, dir string) string {
	if !mail {
		return "Mail is not sent (no mailpit): queued mail shows with  " + kts + " org outbox --confdir " + dir + "\n"
	}
	return fmt.Sprintf("Mail goes to mailpit (SMTP 127.0.0.1:%d); read it with\n  curl http://127.0.0.1:%d/api/v1/messages\n  %s org add -n %s -c you@example.com --confdir %s   # sends a contact registration mail\n",
		MailSMTP, MailHTTP, kts, Org, dir)
}

// MailpitArgs are the arguments that run mailpit as the demo's MTA, its
// messages kept under dir.
func MailpitArgs(dir string) []string {
	return []string{"--smtp", "127.0.0.1:" + strconv.Itoa(MailSMTP), "--listen", "127.0.0.1:" + strconv.Itoa(MailHTTP),
		"--database", filepath.Join(dir, "mail.db"), "--disable-version-check", "--smtp-disable-rdns", "--quiet"}
}

// UseMailpit points the mail of the servers whose state directories are
// stateDirs at the demo's mailpit, rewriting a configuration only when it
// changes.
func UseMailpit(stateDirs ...string) error {
	for _, d := range stateDirs {
		cfg, err := config.Load(d)
		if err != nil {
			return err
		}
		want := cfg
		want.SMTPHost, want.SMTPPort, want.SMTPTLS, want.ExternalURL = "127.0.0.1", MailSMTP, "none", "https://127.0.0.1:"+strconv.Itoa(ActiveAPI)
		if !reflect.DeepEqual(want, cfg) {
			if err := want.Save(d); err != nil {
				return err
			}
		}
	}
	return nil
}
