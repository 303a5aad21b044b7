package pg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// upstreamTimeout bounds UpstreamStale's conversation with the active.
const upstreamTimeout = 15 * time.Second

// walFileRE matches the names of WAL segment files in pg_wal.
var walFileRE = regexp.MustCompile(`^[0-9A-F]{24}$`)

// UpstreamStale asks the active, at primaryHost:primaryPort over a
// replication connection as the replication role, whether this passive's
// copy of its cluster can still follow it. The copy is stale, and must be
// copied anew (Reseed), when the active is another cluster than the one it
// was copied from (their system identifiers differ), when the active has
// no replication slot Slot, when the slot lost the WAL it kept
// (invalidated), or when it keeps WAL only from after the end of the
// copy's own WAL (it was made anew since). why says which. An error means
// the question could not be answered (the active is down, say), which says
// nothing about the copy.
//
// The server of the copy need not run; UpstreamStale changes nothing.
func (i *Instance) UpstreamStale(ctx context.Context, primaryHost string, primaryPort int, replPassword string) (stale bool, why string, err error) {
	if err := i.checkStandbyArgs(primaryHost, primaryPort, replPassword); err != nil {
		return false, "", err
	}
	dir, err := i.dataDir()
	if err != nil {
		return false, "", err
	}
	if !i.Initialized() {
		return false, "", fmt.Errorf("%w: %s", ErrNotInitialized, dir)
	}
	r, err := i.runner()
	if err != nil {
		return false, "", err
	}
	out, err := r.run(ctx, "pg_controldata", "-D", dir)
	if err != nil {
		return false, "", fmt.Errorf("read the copy's control file with pg_controldata: %w\n%s", err, out)
	}
	control := parseControlData(out)
	ourID := control["Database system identifier"]
	segSize, err := strconv.ParseUint(control["Bytes per WAL segment"], 10, 64)
	if ourID == "" || err != nil || segSize == 0 {
		return false, "", fmt.Errorf("pg_controldata -D %s: no system identifier or WAL segment size in its output", dir)
	}
	walEnd, err := localWALEnd(filepath.Join(dir, "pg_wal"), segSize)
	if err != nil {
		return false, "", err
	}

	ctx, cancel := context.WithTimeout(ctx, upstreamTimeout)
	defer cancel()
	q := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'" }
	ssl := "sslmode=disable"
	if ca := i.activeCA(); ca != "" {
		ssl = "sslmode=verify-full sslrootcert=" + q(ca)
	}
	// The password is set after parsing: a parse error (an unreadable CA
	// file) quotes the string.
	cfg, err := pgconn.ParseConfig("host=" + q(primaryHost) + " port=" + strconv.Itoa(primaryPort) +
		" user=" + q(i.replicationUser()) + " replication=true " + ssl + " connect_timeout=10 application_name='trustee setup'")
	if err != nil {
		return false, "", fmt.Errorf("ask the active's PostgreSQL at %s:%d about the copy: %w", primaryHost, primaryPort, err)
	}
	cfg.Password = replPassword
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		err = fmt.Errorf("ask the active's PostgreSQL at %s:%d about the copy: %w", primaryHost, primaryPort, err)
		if hint := tlsHint(err.Error(), i); hint != "" {
			err = fmt.Errorf("%w (%s)", err, hint)
		}
		return false, "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	row := func(cmd string) ([][]byte, error) {
		res, err := conn.Exec(ctx, cmd).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("%s on the active: %w", strings.Fields(cmd)[0], err)
		}
		if len(res) != 1 || len(res[0].Rows) != 1 {
			return nil, fmt.Errorf("%s on the active: unexpected answer", strings.Fields(cmd)[0])
		}
		return res[0].Rows[0], nil
	}
	system, err := row("IDENTIFY_SYSTEM")
	if err != nil {
		return false, "", err
	}
	if theirID := string(system[0]); theirID != ourID {
		return true, fmt.Sprintf("the active's PostgreSQL is another cluster (system identifier %s) than the one this copy was made from (%s)", theirID, ourID), nil
	}
	slot, err := row("READ_REPLICATION_SLOT " + i.slot()) // slotRE: needs no quoting
	if err != nil {
		return false, "", err
	}
	switch {
	case len(slot) < 2 || slot[0] == nil:
		return true, fmt.Sprintf("the active has no replication slot %q", i.slot()), nil
	case slot[1] == nil:
		return true, fmt.Sprintf("the active's replication slot %q lost the WAL it kept for this copy", i.slot()), nil
	}
	restart, err := parseLSN(string(slot[1]))
	if err != nil {
		return false, "", fmt.Errorf("READ_REPLICATION_SLOT on the active: %w", err)
	}
	if restart > walEnd {
		return true, fmt.Sprintf("the active's replication slot %q keeps WAL from %s, after the end of this copy's WAL (%s): it was made anew since the copy",
			i.slot(), formatLSN(restart), formatLSN(walEnd)), nil
	}
	return false, "", nil
}

// parseControlData turns pg_controldata's "Label: value" lines into a map.
func parseControlData(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// localWALEnd returns the end of the newest WAL segment file in walDir (a
// segment PostgreSQL recycled in advance counts too, which only makes the
// end later).
func localWALEnd(walDir string, segSize uint64) (uint64, error) {
	entries, err := os.ReadDir(walDir)
	if err != nil {
		return 0, fmt.Errorf("the copy's WAL: %w", err)
	}
	var end uint64
	for _, e := range entries {
		name := e.Name()
		if !walFileRE.MatchString(name) {
			continue
		}
		log, err1 := strconv.ParseUint(name[8:16], 16, 32)
		seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		if e := log<<32 + seg*segSize + segSize; e > end {
			end = e
		}
	}
	if end == 0 {
		return 0, errors.New("the copy has no WAL segment in pg_wal")
	}
	return end, nil
}

// parseLSN parses a WAL location such as 0/3000148.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a WAL location", s)
	}
	return h<<32 | l, nil
}

func formatLSN(lsn uint64) string { return fmt.Sprintf("%X/%X", lsn>>32, lsn&0xffffffff) }
