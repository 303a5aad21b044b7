package bench

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
	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/bench/loadgen"
	"trustee.dev/trustee/server/confdir"
	kopenpgp "trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// ParseCounts reads --deposits: a comma-separated list of increasing
// positive counts.
func ParseCounts(counts string) ([]int, error) {
	var ns []int
	for _, s := range strings.Split(counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--deposits %q: a comma-separated list of positive counts", counts)
		}
		if len(ns) > 0 && n <= ns[len(ns)-1] {
			return nil, fmt.Errorf("--deposits %q: counts must increase", counts)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// Backup fills a scratch server's database with deposits of size bytes up to
// each of counts in turn, and at each count measures, rounds times, kts
// backup and kts restore as separate processes next to their PostgreSQL
// anchors (pg_dump to nowhere, psql loading the same dump).
func Backup(ctx context.Context, out io.Writer, counts []int, size, rounds int) error {
	root, err := os.MkdirTemp("", "kts-bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	dir := filepath.Join(root, "keytrustee")
	port, err := pg.FreePort()
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
	inst := confdir.Instance(dir, st.Config, pg.DefaultRunAs)
	inst.NoSync = true
	if err := confdir.InitDB(ctx, os.Stdout, dir, st.Config, inst); err != nil {
		return err
	}
	if err := inst.Start(ctx); err != nil {
		return err
	}
	defer inst.Stop(context.WithoutCancel(ctx))
	pub, sec, err := benchRecipient(root)
	if err != nil {
		return err
	}
	output := filepath.Join(root, "backups")
	if err := os.Mkdir(output, 0o700); err != nil {
		return err
	}
	fmt.Fprintf(out, "deposits of %d bytes; backup and restore run as separate processes; peak RSS is the largest of kts and pg_dump/psql;\n", size)
	fmt.Fprintf(out, "anchors in the same round: pg_dump of the database to nowhere, and psql loading the same dump into an empty database\n\n")
	fmt.Fprintf(out, "%9s %5s %8s | %8s %8s %6s %8s | %9s %8s %6s %8s\n",
		"deposits", "round", "archive", "backup", "pg_dump", "ratio", "peak", "restore", "psql", "ratio", "peak")
	have := 0
	var peaks []float64
	for _, n := range counts {
		if err := fillDeposits(ctx, st.DSN(), have, n, size); err != nil {
			return err
		}
		have = n
		var backupRatios, restoreRatios []float64
		peak := 0.0
		for round := 1; round <= rounds; round++ {
			r, err := backupRound(ctx, inst, st, dir, pub, sec, output, n)
			if err != nil {
				return err
			}
			backupRatios = append(backupRatios, r.backup.wall.Seconds()/r.dump.Seconds())
			restoreRatios = append(restoreRatios, r.restore.wall.Seconds()/r.load.Seconds())
			peak = max(peak, r.backup.peakMiB, r.restore.peakMiB)
			fmt.Fprintf(out, "%9d %5d %6.0fMiB | %7.1fs %7.1fs %6.2f %5.1fMiB | %8.1fs %7.1fs %6.2f %5.1fMiB\n",
				n, round, r.archiveMiB, r.backup.wall.Seconds(), r.dump.Seconds(), backupRatios[round-1], r.backup.peakMiB,
				r.restore.wall.Seconds(), r.load.Seconds(), restoreRatios[round-1], r.restore.peakMiB)
		}
		peaks = append(peaks, peak)
		bm, blo, bhi := loadgen.Median(backupRatios)
		rm, rlo, rhi := loadgen.Median(restoreRatios)
		fmt.Fprintf(out, "%9d: backup / pg_dump %.2f (%.2f–%.2f), restore / psql load %.2f (%.2f–%.2f), peak RSS %.1f MiB\n\n",
			n, bm, blo, bhi, rm, rlo, rhi, peak)
	}
	if len(peaks) > 1 {
		fmt.Fprintf(out, "peak RSS at %d deposits / at %d: %.2f\n", counts[len(counts)-1], counts[0], peaks[len(peaks)-1]/peaks[0])
	}
	return nil
}

type backupRun struct {
	backup, restore measured
	dump, load      time.Duration
	archiveMiB      float64
}

// backupRound measures a backup and a restore of the database of n
// deposits, each next to its PostgreSQL anchor.
func backupRound(ctx context.Context, inst *pg.Instance, st *confdir.State, dir, pub, sec, output string, n int) (r backupRun, err error) {
	start := time.Now()
	if err := inst.Dump(ctx, st.DBPassword, st.Config.DBName, io.Discard); err != nil {
		return r, err
	}
	r.dump = time.Since(start)
	if r.backup, err = measureChild(ctx, "backup", "--confdir", dir, "--gpg-keyring", pub, "--gpg-recipient", "bench", "--output", output, "--quiet"); err != nil {
		return r, err
	}
	archive := strings.TrimSpace(r.backup.stdout)
	defer os.Remove(archive)
	fi, err := os.Stat(archive)
	if err != nil {
		return r, err
	}
	r.archiveMiB = float64(fi.Size()) / (1 << 20)

	// The anchor: psql loading the same dump, from a file, into an empty
	// database.
	file, err := os.CreateTemp(filepath.Dir(output), "dump-*.sql")
	if err != nil {
		return r, err
	}
	defer os.Remove(file.Name())
	defer file.Close()
	if err := inst.Dump(ctx, st.DBPassword, st.Config.DBName, file); err != nil {
		return r, err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return r, err
	}
	if err := inst.CreateDatabase(ctx, st.DBPassword, "bench_load"); err != nil {
		return r, err
	}
	start = time.Now()
	err = inst.Load(ctx, st.DBPassword, "bench_load", file)
	r.load = time.Since(start)
	if err = errors.Join(err, dropDatabase(ctx, inst, st.DBPassword, "bench_load")); err != nil {
		return r, err
	}

	if r.restore, err = measureChild(ctx, "restore", "--confdir", dir, "--gpg-keyring", sec, archive); err != nil {
		return r, err
	}
	if !strings.Contains(r.restore.stdout, fmt.Sprintf(" %d deposits", n)) {
		return r, fmt.Errorf("restore of %d deposits said:\n%s", n, r.restore.stdout)
	}
	return r, nil
}

func dropDatabase(ctx context.Context, inst *pg.Instance, password, name string) error {
	conn, err := pgx.Connect(ctx, inst.ConnString("postgres", password))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// fillDeposits adds deposits from..to-1 of size bytes (store.FillDeposits);
// with from 0 it first creates the schema. It closes its connections:
// restore wants the database to itself.
func fillDeposits(ctx context.Context, dsn string, from, to, size int) error {
	db, err := store.Open(ctx, dsn, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	if from == 0 {
		if err := db.Migrate(ctx); err != nil {
			return err
		}
	}
	return db.FillDeposits(ctx, from, to, size)
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
