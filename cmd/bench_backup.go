package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/spf13/cobra"

	"trustee.dev/trustee/server/confdir"
	kopenpgp "trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

func newBenchBackupCommand() *cobra.Command {
	var counts string
	var size int
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Measure backup and restore time and peak memory as the database grows",
		Long: `bench backup fills a throwaway server's database with deposits of --size
bytes up to each count of --deposits in turn, and at each count runs
kts backup (encrypted) and kts restore as separate processes. It prints their
wall time, throughput and peak resident memory (the largest of kts and the
PostgreSQL program it runs: pg_dump or psql). Memory that does not grow with
the count shows that backup and restore stream.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var ns []int
			for _, s := range strings.Split(counts, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(s))
				if err != nil || n < 1 {
					return fmt.Errorf("--deposits %q: a comma-separated list of positive counts", counts)
				}
				if len(ns) > 0 && n <= ns[len(ns)-1] {
					return fmt.Errorf("--deposits %q: counts must increase", counts)
				}
				ns = append(ns, n)
			}
			return benchBackup(cmd.Context(), cmd.OutOrStdout(), ns, size)
		},
	}
	cmd.Flags().StringVar(&counts, "deposits", "100000,1000000", "deposit counts to measure at, increasing")
	cmd.Flags().IntVar(&size, "size", 256, "bytes of ciphertext per deposit")
	return cmd
}

func benchBackup(ctx context.Context, out io.Writer, counts []int, size int) error {
	root, err := os.MkdirTemp("", "kts-bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	dir := filepath.Join(root, "keytrustee")
	port, err := freePort()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "starting a scratch PostgreSQL in %s\n", root)
	if _, err := confdir.Init(dir, confdir.InitOptions{Hostname: "bench.example.com", KeyType: kopenpgp.Ed25519, DBPort: port}); err != nil {
		return err
	}
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	inst := pgInstance(dir, st.Config, pg.DefaultRunAs)
	inst.NoSync = true
	if err := initDB(ctx, dir, st.Config, inst); err != nil {
		return err
	}
	if err := inst.Start(ctx); err != nil {
		return err
	}
	defer inst.Stop(context.WithoutCancel(ctx))
	db, err := store.Open(ctx, st.DSN(), 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	pub, sec, err := benchRecipient(root)
	if err != nil {
		return err
	}
	output := filepath.Join(root, "backups")
	if err := os.Mkdir(output, 0o700); err != nil {
		return err
	}
	if _, err := db.Pool().Exec(ctx, `INSERT INTO organizations(uuid, name, auth_hash) VALUES ('bench', 'bench', '');
		INSERT INTO clients(fingerprint, org_uuid, key_id, public_key, state) VALUES (repeat('B', 40), 'bench', 'bench', '\x00', 'active')`); err != nil {
		return err
	}
	fmt.Fprintf(out, "deposits of %d bytes; each step is a separate process; peak RSS is the largest of kts and pg_dump/psql\n\n", size)
	fmt.Fprintf(out, "%10s %12s | %9s %9s %10s | %9s %9s %10s\n", "deposits", "archive MiB", "backup s", "MiB/s", "peak MiB", "restore s", "MiB/s", "peak MiB")
	have := 0
	for _, n := range counts {
		if err := fillDeposits(ctx, db, have, n, size); err != nil {
			return err
		}
		have = n
		if _, err := db.Pool().Exec(ctx, "VACUUM ANALYZE deposits"); err != nil {
			return err
		}
		b, err := measureChild(ctx, "backup", "--confdir", dir, "--gpg-keyring", pub, "--gpg-recipient", "bench", "--output", output, "--quiet")
		if err != nil {
			return err
		}
		archive := strings.TrimSpace(b.stdout)
		fi, err := os.Stat(archive)
		if err != nil {
			return err
		}
		db.Close()
		r, err := measureChild(ctx, "restore", "--confdir", dir, "--gpg-keyring", sec, archive)
		if err != nil {
			return err
		}
		if !strings.Contains(r.stdout, fmt.Sprintf(" %d deposits", n)) {
			return fmt.Errorf("restore of %d deposits said:\n%s", n, r.stdout)
		}
		if db, err = store.Open(ctx, st.DSN(), 2); err != nil {
			return err
		}
		defer db.Close()
		mib := float64(fi.Size()) / (1 << 20)
		fmt.Fprintf(out, "%10d %12.1f | %9.1f %9.1f %10.1f | %9.1f %9.1f %10.1f\n", n, mib,
			b.wall.Seconds(), mib/b.wall.Seconds(), b.peakMiB, r.wall.Seconds(), mib/r.wall.Seconds(), r.peakMiB)
		os.Remove(archive)
	}
	return nil
}

// fillDeposits adds deposits from..to-1 of size bytes, in steps.
func fillDeposits(ctx context.Context, db *store.Store, from, to, size int) error {
	const step = 100_000
	for lo := from; lo < to; lo += step {
		hi := min(lo+step, to)
		_, err := db.Pool().Exec(ctx, `INSERT INTO deposits(owner, name, kek_id, wrapped_key, ciphertext, size)
			SELECT repeat('B', 40), 'deposit-' || i, 'bench-key',
				decode(md5(i::text) || md5((i + 1)::text) || md5((i + 2)::text), 'hex'),
				substr(decode(repeat(md5(i::text), ($3 + 15) / 16), 'hex'), 1, $3), $3
			FROM generate_series($1::int, $2::int - 1) i`, lo, hi, size)
		if err != nil {
			return err
		}
	}
	return nil
}

// benchRecipient writes a fresh OpenPGP key pair's public and secret key
// files under dir.
func benchRecipient(dir string) (pub, sec string, err error) {
	e, err := openpgp.NewEntity("bench", "", "bench@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		return "", "", err
	}
	pub, sec = filepath.Join(dir, "recipient.asc"), filepath.Join(dir, "recipient-secret.asc")
	for _, f := range []struct {
		path, block string
		write       func(io.Writer) error
	}{
		{pub, openpgp.PublicKeyType, e.Serialize},
		{sec, openpgp.PrivateKeyType, func(w io.Writer) error { return e.SerializePrivate(w, nil) }},
	} {
		file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", "", err
		}
		aw, err := armor.Encode(file, f.block, nil)
		if err == nil {
			err = f.write(aw)
		}
		if err == nil {
			err = aw.Close()
		}
		if err = errors.Join(err, file.Close()); err != nil {
			return "", "", err
		}
	}
	return pub, sec, nil
}

type measured struct {
	stdout  string
	wall    time.Duration
	peakMiB float64
}

// measureChild runs kts with args and reports its wall time and peak RSS.
func measureChild(ctx context.Context, args ...string) (measured, error) {
	exe, err := os.Executable()
	if err != nil {
		return measured{}, err
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	m := measured{stdout: stdout.String(), wall: time.Since(start)}
	if err != nil {
		return m, fmt.Errorf("kts %s: %w\n%s", args[0], err, stderr.String())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.peakMiB = float64(ru.Maxrss) / 1024
	}
	return m, nil
}
