// Package cmd is the kts command tree. Commands are thin: they turn flags
// into calls of the server packages.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// DefaultConfdir is the server state directory used when --confdir is not given.
const DefaultConfdir = "/var/lib/keytrustee/.keytrustee"

// Execute runs the command named by args (os.Args) and returns the exit code.
// Invoked through a link named keytrustee-orgtool, ktadmin or ktbackup.sh,
// the binary behaves as the matching kts command; as kubectl-trustee, as
// `kts kubectl` (the kubectl plugin), its help speaking of `kubectl trustee`.
func Execute(args []string) int {
	root := newRootCommand()
	if filepath.Base(args[0]) == kubectlPlugin {
		root.Use = "kubectl"
		if c, _, err := root.Find([]string{"kubectl"}); err == nil {
			c.Use, c.Aliases = "trustee", nil
		}
	}
	root.SetArgs(commandArgs(args))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return int(ee) // the command already said why
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

// commandArgs maps the name the binary was invoked by to kts arguments.
func commandArgs(args []string) []string {
	rest := args[1:]
	switch filepath.Base(args[0]) {
	case "keytrustee-orgtool":
		return append([]string{"org"}, rest...)
	case "ktadmin":
		return rest
	case "ktbackup.sh":
		return append([]string{"backup"}, rest...)
	case kubectlPlugin:
		return append([]string{"trustee"}, rest...)
	}
	return rest
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "kts",
		Short:         "Trustee: a Key Trustee Server for encryption keys and other deposits",
		SilenceUsage:  true,
		SilenceErrors: true,
		// What a command changes is recorded in the audit log as done by
		// the account running it.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) { withLocalActor(cmd) },
	}
	root.AddCommand(
		newInitCommand(),
		newDBCommand(),
		newServerCommand(),
		newOrgCommand(),
		newClientCommand(),
		newDevCommand(),
		newBackupCommand(),
		newRestoreCommand(),
		newKeyHSMCommand(),
		newMemberCommand(),
		newOperatorCommand(),
		newAuditCommand(),
		newKubectlCommand(),
	)
	root.AddCommand(benchCommands()...)
	return root
}

// exitError carries a specific exit status.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// addConfdirFlag registers --confdir (-c, as ktbackup.sh and the reference
// tools spell it).
func addConfdirFlag(cmd *cobra.Command, dir *string) {
	cmd.Flags().StringVarP(dir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
}

func defaultConfdir() string {
	if env := os.Getenv("KTS_CONFDIR"); env != "" {
		return env
	}
	return DefaultConfdir
}

// serverGCPercent trades memory for latency: a request allocates its TLS
// and HTTP buffers, and with Go's default (100) a small heap is collected so
// often that collection pauses show in tail latency (see docs/PERFORMANCE.md).
const serverGCPercent = 400

// tuneGC applies serverGCPercent unless GOGC is set explicitly.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

// startCPUProfile writes a CPU profile to path until the returned stop is
// called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// newLogger returns a JSON logger on w at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
