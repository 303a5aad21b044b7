package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/auditlog"
)

// withLocalActor makes the account running a command the actor of the
// changes it makes (package audit), with the command's name.
func withLocalActor(cmd *cobra.Command) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	cmd.SetContext(audit.WithActor(ctx, audit.Actor{ID: audit.LocalUser(), Source: audit.LocalSource(),
		Details: map[string]any{"tool": cmd.CommandPath()}}))
}

func newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and export the tamper-evident audit log",
		Long: `audit works on the audit log: the database's chain of the changes made to
it, and each server's journal of what changes nothing (reads, refusals,
authentication failures). Records are hash-chained and their heads signed
with the server's OpenPGP key (see docs/SECURITY.md).`,
	}
	cmd.AddCommand(newAuditVerifyCommand(), newAuditExportCommand())
	return cmd
}

type verifyFlags struct {
	confdir     string
	files       []string
	serverKey   string
	maxUnsigned int64
	anchor      string
}

func newAuditVerifyCommand() *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chains and name the first broken record",
		Long: `verify reads every record of the audit chains of --confdir's server — the
database's (audit_log) and the server's journal (audit/ in the state
directory) — or of the exported files given with --file, and checks that
each record's hash matches its contents, that each carries the hash of the
one before it with no sequence number missing or repeated, and that every
checkpoint is signed by the server's OpenPGP key over a head the chain
holds.

For the database chain it also checks the chain's head row and the anchor
file (audit/db-anchor.json, where the active keeps the head its latest
checkpoint signs): a chain that no longer holds that checkpoint was cut
short or rewritten.

It exits 1 at the first break, naming the record and why. Records after the
last checkpoint are reported; --max-unsigned makes more of them a failure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAuditVerify(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.confdir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	fl.StringArrayVar(&f.files, "file", nil, "verify this exported file (kts audit export) or journal file instead; repeat for more (one chain may span them, in order)")
	fl.StringVar(&f.serverKey, "server-key", "", "the server's OpenPGP public key (armored) to check checkpoints with (default: the state directory's)")
	fl.Int64Var(&f.maxUnsigned, "max-unsigned", -1, "fail when more records than this follow a chain's last checkpoint (-1: no limit)")
	fl.StringVar(&f.anchor, "anchor", "", "the anchor file to check the database chain against (default: the state directory's "+audit.AnchorFile+")")
	return cmd
}

// exitBroken is verify's exit status for a broken chain.
const exitBroken = exitError(1)

func runAuditVerify(cmd *cobra.Command, f verifyFlags) error {
	r, err := auditlog.Verify(cmd.Context(), auditlog.VerifyOptions{Confdir: f.confdir, Files: f.files,
		ServerKey: f.serverKey, MaxUnsigned: f.maxUnsigned, Anchor: f.anchor})
	for _, c := range r.Chains {
		fmt.Fprint(cmd.OutOrStdout(), c)
	}
	if r.Broken != nil {
		fmt.Fprint(cmd.ErrOrStderr(), r.Broken)
		return exitBroken
	}
	return err
}

type exportFlags struct {
	confdir  string
	since    string
	afterSeq int64
	chain    string
	output   string
}

func newAuditExportCommand() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the audit records as JSON lines, for a SIEM",
		Long: `export writes the records of --confdir's server as JSON lines: the database's
chain (chain "db") and the server's journal (chain "journal@HOSTNAME"),
merged by time, each chain in its own order. A line holds chain, seq, time,
actor, source, action, object, outcome, details, prev_hash and hash; the
output verifies with kts audit verify --file.

--since keeps the records from a time on; --chain and --after-seq pick up
where an earlier export of one chain stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAuditExport(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.confdir, "confdir", "c", defaultConfdir(), "server state directory (env KTS_CONFDIR)")
	fl.StringVar(&f.since, "since", "", "only records from this time on (RFC 3339, e.g. 2026-11-27T00:00:00Z)")
	fl.Int64Var(&f.afterSeq, "after-seq", 0, "only records after this sequence number (with --chain)")
	fl.StringVar(&f.chain, "chain", "", `only this chain: "db" or "journal"`)
	fl.StringVarP(&f.output, "output", "o", "-", "write to this file (- for standard output)")
	return cmd
}

func runAuditExport(cmd *cobra.Command, f exportFlags) error {
	n, err := auditlog.Export(cmd.Context(), auditlog.ExportOptions{Confdir: f.confdir, Since: f.since,
		AfterSeq: f.afterSeq, Chain: f.chain, Output: f.output, Stdout: cmd.OutOrStdout()})
	if err != nil {
		return err
	}
	if f.output != "-" {
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d records to %s\n", n, f.output)
	}
	return nil
}
