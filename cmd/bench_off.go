//go:build !benchunaudited

package cmd

import (
	"io"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/daemon"
)

// benchCommands: kts has no benchmark (make bench builds kts-bench,
// docs/PERFORMANCE.md).
func benchCommands() []*cobra.Command { return nil }

// serverBenchFlags: kts server has no audit-off listener.
func serverBenchFlags(*cobra.Command) func(io.Writer, bool) daemon.BenchOptions {
	return func(io.Writer, bool) daemon.BenchOptions { return daemon.BenchOptions{} }
}
