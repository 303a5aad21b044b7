package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/openpgp"
)

func newClientCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "client",
		Short: "A reference client: register, then put, get, delete and list deposits",
	}
	home, _ := os.UserHomeDir()
	def := filepath.Join(home, ".keytrustee")
	if env := os.Getenv("KTS_CLIENT_DIR"); env != "" {
		def = env
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", def, "client state directory: key pair and client.json (env KTS_CLIENT_DIR)")

	var o client.RegisterOptions
	var keyType, codeFile string
	register := &cobra.Command{
		Use:   "register --server URL[,URL] --org NAME",
		Short: "Generate a client key pair and register it with an organization",
		Long: `register generates the client's OpenPGP key pair in --dir and registers it with
the organization. The auth code comes from --auth-code-file, the KTS_AUTH_CODE
environment variable or --auth-code. With a correct code (or an organization
without one) the client is active at once; otherwise it waits for an
administrator to enable it.

The server certificate is verified against the system's CAs or --ca-file.
--skip-ssl-check accepts a self-signed certificate instead: the certificate's
key and the server's OpenPGP fingerprint seen at registration are pinned, and
every later connection must present the same.

For an active/passive pair, give both servers, the active first:
  --server https://kts1.example.com:11371,https://kts2.example.com:11371
The client registers with the active. Every listed server must answer at
registration and present the same OpenPGP identity; with --skip-ssl-check each
server's certificate key is pinned. Afterwards put and delete go to the active
only, while get and list alternate between the servers and retry on the other
when one cannot be reached. After a failover, put the new active first in the
"servers" list of client.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kt, err := openpgp.ParseKeyType(keyType)
			if err != nil {
				return err
			}
			o.KeyType = kt
			switch {
			case codeFile != "":
				b, err := os.ReadFile(codeFile)
				if err != nil {
					return fmt.Errorf("--auth-code-file: %w", err)
				}
				o.AuthCode = strings.TrimRight(string(b), "\r\n")
			case o.AuthCode == "":
				o.AuthCode = os.Getenv("KTS_AUTH_CODE")
			}
			o.Warn = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "warning:", s) }
			_, res, err := client.Register(cmd.Context(), dir, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "fingerprint: %s\nkey: %s\norganization: %s\nstate: %s\nserver: %s\n%s\n",
				res.Fingerprint, res.KeyID, res.Org, res.State, res.ServerFingerprint, res.Message)
			return nil
		},
	}
	f := register.Flags()
	f.StringVar(&o.ServerURL, "server", "https://127.0.0.1:11371", "server URL; for an active/passive pair both URLs comma-separated, the active first")
	f.StringVar(&o.Org, "org", "", "organization name")
	f.StringVar(&o.AuthCode, "auth-code", "", "organization auth code (visible to other local users in the process list: prefer --auth-code-file)")
	f.StringVar(&codeFile, "auth-code-file", "", "file holding the organization auth code")
	f.StringVar(&o.CAFile, "ca-file", "", "CA bundle that signed the server certificate (default: system CAs)")
	f.BoolVar(&o.SkipSSLCheck, "skip-ssl-check", false, "accept a self-signed server certificate and pin it")
	f.StringVar(&keyType, "key-type", string(openpgp.Ed25519), "client key type: ed25519 or rsa4096")

	var signed bool
	open := func() (*client.Client, error) {
		c, err := client.Open(dir)
		if err != nil {
			return nil, err
		}
		c.Signed = signed
		return c, nil
	}
	cmd.PersistentFlags().BoolVar(&signed, "sign-each", false, "sign every request instead of using a session token")

	put := &cobra.Command{
		Use:   "put NAME [FILE]",
		Short: "Store a new deposit from FILE or standard input",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var data []byte
			var err error
			if len(args) == 2 && args[1] != "-" {
				data, err = os.ReadFile(args[1])
			} else {
				data, err = io.ReadAll(cmd.InOrStdin())
			}
			if err != nil {
				return err
			}
			c, err := open()
			if err != nil {
				return err
			}
			return c.Put(cmd.Context(), args[0], data)
		},
	}
	var outFile string
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Fetch a deposit to standard output or -o FILE (created 0600)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			data, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if outFile != "" {
				return os.WriteFile(outFile, data, 0o600)
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	get.Flags().StringVarP(&outFile, "output", "o", "", "write to this file instead of standard output")
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a deposit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			return c.Delete(cmd.Context(), args[0])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List this client's deposits as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := open()
			if err != nil {
				return err
			}
			ds, err := c.List(cmd.Context())
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(ds)
		},
	}
	cmd.AddCommand(register, put, get, del, list)
	return cmd
}
