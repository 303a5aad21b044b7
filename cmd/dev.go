package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/devpair"
	"trustee.dev/trustee/server/pg"
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

func runDev(ctx context.Context, dir, runAs, logLevel, mailpit string) (err error) {
	active, passive, err := devpair.Prepare(ctx, os.Stdout, dir, runAs)
	if err != nil {
		return err
	}
	// Start the databases (the passive after the active it follows) and
	// stop what was started here in reverse order on the way out.
	for _, m := range []*devpair.Member{active, passive} {
		status, err := m.Inst.Status(ctx)
		if err != nil {
			return err
		}
		if status.Running {
			continue
		}
		if err := m.Inst.Start(ctx); err != nil {
			return err
		}
		defer func() {
			if err := m.Inst.Stop(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintln(os.Stderr, "stop PostgreSQL:", err)
			} else {
				fmt.Printf("PostgreSQL in %s stopped\n", m.Inst.DataDir)
			}
		}()
	}
	if mailpit != "" {
		mp, err := startDevMail(context.WithoutCancel(ctx), mailpit, dir, active.Dir, passive.Dir)
		if err != nil {
			return err
		}
		defer mp.stop()
	}
	codeFile := filepath.Join(dir, "demo-auth-code")
	if err := devpair.EnsureDemoOrg(ctx, active.State, codeFile); err != nil {
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
	for _, m := range []*devpair.Member{active, passive} {
		p, err := startChild(context.WithoutCancel(ctx), "server", "--confdir", m.Dir, "--announce", "--log-level", logLevel)
		if err != nil {
			return err
		}
		servers = append(servers, p)
	}
	devpair.Banner(os.Stdout, ktsCommand(), dir, codeFile, active, passive, mailpit != "")
	select {
	case <-ctx.Done():
		return nil
	case <-servers[0].exited:
		return errors.New("the active server exited; see its log above")
	case <-servers[1].exited:
		return errors.New("the passive server exited; see its log above")
	}
}

// ktsCommand is how the banner names this binary: relative to the working
// directory when it is below it, else bin/kts.
func ktsCommand() string {
	if exe, err := os.Executable(); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, exe); err == nil && !strings.HasPrefix(rel, "..") {
				return rel
			}
		}
	}
	return "bin/kts"
}
