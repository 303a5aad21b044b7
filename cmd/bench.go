//go:build benchunaudited

package cmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/bench"
	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/daemon"
)

// benchCommands are the benchmark build's own commands (kts-bench, built
// with the tag benchunaudited by make bench; docs/PERFORMANCE.md).
func benchCommands() []*cobra.Command { return []*cobra.Command{newBenchCommand()} }

// serverBenchFlags adds the benchmark build's audit-off listener to kts
// server, and returns what makes its options.
func serverBenchFlags(cmd *cobra.Command) func(out io.Writer, announce bool) daemon.BenchOptions {
	var listen string
	cmd.Flags().StringVar(&listen, "bench-unaudited-listen", "", "kts bench only: also serve the client API on this address recording nothing in the audit log (the opening is recorded)")
	cmd.Flags().MarkHidden("bench-unaudited-listen")
	return func(out io.Writer, announce bool) daemon.BenchOptions {
		o := daemon.BenchOptions{UnauditedListen: listen}
		if announce {
			o.UnauditedReady = func(addr string) { fmt.Fprintln(out, "unaudited", addr) }
		}
		return o
	}
}

// startBenchChild runs a child of this binary for the benchmark.
func startBenchChild(ctx context.Context, args ...string) (*bench.Child, error) {
	p, err := startChild(ctx, args...)
	if err != nil {
		return nil, err
	}
	return &bench.Child{URL: p.url, Unaudited: p.unaudited, Stop: p.stop}, nil
}

func newBenchCommand() *cobra.Command {
	o := bench.Options{Start: startBenchChild}
	var profile string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure deposit put/get against the bare TLS and raw PostgreSQL limits",
		Long: `bench registers clients, then measures in interleaved rounds, on this machine
and in the same run:

  bare-tls-get   a bare Go TLS handler with the server's TLS settings returning
                 the same payload size (the transport limit)
  kts-get        deposit GET of a prefilled set
  kts-put        deposit PUT of fresh names
  raw-insert     pgx single-row INSERT of rows shaped like deposits (the storage limit)
  raw-select     pgx primary-key SELECT of the same rows

then a fixed-rate GET at --rate-fraction of the peak GET rate for its p99.
It prints ops/s, p50 and p99 of each, and the median ratios with their range.

With --scratch it first starts a throwaway PostgreSQL and server in a
temporary directory and removes them afterwards; otherwise it runs against
--server, using --confdir for direct database access.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			stopProfile, err := startCPUProfile(profile)
			if err != nil {
				return err
			}
			defer stopProfile()
			return bench.Run(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	addConfdirFlag(cmd, &o.Confdir)
	f.StringVar(&o.Server, "server", "https://127.0.0.1:11371", "server URL (ignored with --scratch)")
	f.BoolVar(&o.Scratch, "scratch", false, "start a throwaway PostgreSQL and server for the run")
	addLoadFlags(cmd, &o, "kts-get")
	f.Float64Var(&o.RateFraction, "rate-fraction", 0.5, "fixed-rate GET at this fraction of the peak GET rate")
	f.BoolVar(&o.Pair, "pair", false, "with --scratch: an active/passive pair on synchronous replication; the clients read from both")
	f.StringVar(&o.Only, "only", "", "run only this measurement (e.g. kts-get), once per round, without the summary")
	f.StringVar(&profile, "cpu-profile", "", "write the load generator's CPU profile to this file")
	f.StringVar(&o.ServerProfile, "server-cpu-profile", "", "with --scratch: write the server's CPU profile to this file")
	f.StringVar(&o.AuditSync, "audit-sync", audit.SyncWrite, `with --scratch: the server's --audit-sync ("write" or "fsync")`)
	cmd.AddCommand(newBareServerCommand(), newBenchBackupCommand(), newBenchHSMCommand())
	return cmd
}

// addLoadFlags adds the flags of a closed-loop load; getRun names the runs
// --prefill feeds.
func addLoadFlags(cmd *cobra.Command, o *bench.Options, getRun string) {
	f := cmd.Flags()
	f.IntVar(&o.Workers, "concurrency", 16, "closed-loop clients, one keep-alive connection each")
	f.IntVar(&o.Rounds, "rounds", 3, "interleaved rounds")
	f.IntVar(&o.Size, "size", 256, "payload bytes")
	f.IntVar(&o.Prefill, "prefill", 100, "deposits per client read by "+getRun)
	f.DurationVar(&o.Warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	f.DurationVar(&o.Window, "duration", 10*time.Second, "measured window of each run")
}

// newBareServerCommand is the transport anchor (bench.ServeBare).
func newBareServerCommand() *cobra.Command {
	var dir string
	var size int
	cmd := &cobra.Command{
		Use:    "bare-server",
		Short:  "Serve a fixed payload with the server's TLS settings (bench anchor)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return bench.ServeBare(cmd.Context(), cmd.OutOrStdout(), dir, size)
		},
	}
	addConfdirFlag(cmd, &dir)
	cmd.Flags().IntVar(&size, "size", 256, "payload bytes")
	return cmd
}

func newBenchBackupCommand() *cobra.Command {
	var counts string
	var size, rounds int
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Measure backup and restore time and peak memory as the database grows",
		Long: `bench backup fills a throwaway server's database with deposits of --size
bytes up to each count of --deposits in turn, and at each count runs, --rounds
times, kts backup (encrypted) and kts restore as separate processes. It prints
their wall time and peak resident memory (the largest of kts and the
PostgreSQL program it runs: pg_dump or psql), and next to them, in the same
round, the PostgreSQL anchors: pg_dump of the database to nowhere, and psql
loading the same dump from a file into an empty database. Memory that does
not grow with the count shows that backup and restore stream.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, err := bench.ParseCounts(counts)
			if err != nil {
				return err
			}
			if rounds < 1 {
				return fmt.Errorf("--rounds %d: at least 1", rounds)
			}
			return bench.Backup(cmd.Context(), cmd.OutOrStdout(), ns, size, rounds)
		},
	}
	cmd.Flags().StringVar(&counts, "deposits", "100000,1000000", "deposit counts to measure at, increasing")
	cmd.Flags().IntVar(&size, "size", 256, "bytes of ciphertext per deposit")
	cmd.Flags().IntVar(&rounds, "rounds", 3, "rounds at each count")
	return cmd
}

func newBenchHSMCommand() *cobra.Command {
	o := bench.Options{Start: startBenchChild}
	cmd := &cobra.Command{
		Use:   "hsm",
		Short: "Measure deposit get and put with the HSM keyring (SoftHSM2) against the file keyring",
		Long: `bench hsm starts, on one scratch PostgreSQL, three servers: one with the file
keyring, one whose keys are in a SoftHSM2 token (with the default data key
cache), and one on the same token and database that calls the token for every
data key (HSM_DATA_KEY_CACHE_SECONDS 0). In interleaved rounds it measures
closed-loop get and put on each and prints the ratios to the file keyring.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tuneGC()
			return bench.HSM(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	addLoadFlags(cmd, &o, "the get runs")
	return cmd
}
