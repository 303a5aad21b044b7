package pg

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// passFile is the passive's libpq password file, relative to the data
// directory. Its one entry is where the passive replicates from and the
// replication password; it is the record Start builds primary_conninfo
// from.
const passFile = "replication.pgpass"

// standbySignal marks a data directory as a standby's.
const standbySignal = "standby.signal"

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

var (
	// nameRE is what Trustee accepts as a replication role or standby
	// name, so that quoting it in pg_hba.conf, synchronous_standby_names
	// and connection strings is trivial.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)
	// slotRE is PostgreSQL's rule for replication slot names.
	slotRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)
)

// ReplicationStatus is replication as one server of the pair sees it. On
// the active, Standby through SlotWALStatus are set; on the passive,
// Streaming and ReplayLSN.
type ReplicationStatus struct {
	// InRecovery reports that the server is a standby replaying WAL: true
	// on the passive, false on the active.
	InRecovery bool

	// Standby is the standby the active looked for in pg_stat_replication:
	// Instance.Standby, else DefaultStandby.
	Standby string
	// Attached reports that the standby is connected.
	Attached bool
	// State is its WAL sender's state: "streaming" once caught up,
	// "catchup", "startup" or "backup"; "" when not attached.
	State string
	// SyncState is "sync" when commits wait for it, else "async",
	// "potential" or "quorum"; "" when not attached.
	SyncState string
	// ReplayLagBytes is how much WAL the standby has yet to apply.
	ReplayLagBytes int64
	// ReplayLag is the time between a commit and its apply on the standby,
	// as last measured; 0 when unknown or when the standby is idle and
	// caught up.
	ReplayLag time.Duration
	// SlotWALStatus is the wal_status of the replication slot: "reserved"
	// or "extended" while the slot keeps the WAL the standby needs,
	// "unreserved" or "lost" when it does not (the passive must then be
	// reseeded); "" when the slot does not exist or has not been used.
	SlotWALStatus string

	// Streaming reports that the WAL receiver is streaming from the active.
	Streaming bool
	// ReplayLSN is the last WAL location replayed, such as "0/3000148".
	ReplayLSN string
}

// checkReplication validates the replication fields.
func (i *Instance) checkReplication() error {
	switch i.Role {
	case "", RoleActive, RolePassive:
	default:
		return fmt.Errorf("unknown role %q: use %q or %q", i.Role, RoleActive, RolePassive)
	}
	if i.Standby != "" && !nameRE.MatchString(i.Standby) {
		return fmt.Errorf("standby name %q: use up to 63 letters, digits and underscores", i.Standby)
	}
	if !nameRE.MatchString(i.replicationUser()) {
		return fmt.Errorf("replication user %q: use up to 63 letters, digits and underscores", i.replicationUser())
	}
	if i.replicationUser() == i.user() {
		return fmt.Errorf("the replication user must not be the database superuser %q: choose another name", i.user())
	}
	if !slotRE.MatchString(i.slot()) {
		return fmt.Errorf("replication slot name %q: use up to 63 lower-case letters, digits and underscores", i.slot())
	}
	for _, cidr := range i.replicationFrom() {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			return fmt.Errorf("replication source %q is not a network in CIDR notation (such as 10.0.0.7/32 or fd00::7/128)", cidr)
		}
	}
	if i.role() == RolePassive && i.TLS != nil && i.TLS.ActiveCAFile == "" && !i.promoting {
		return errors.New("the passive reaches the active over TLS, but no CA certificate file verifies the active's certificate: set the active's CA file")
	}
	return nil
}

// activeCA returns the absolute path of the CA file that verifies the
// active's certificate when the passive reaches it over TLS, else "".
func (i *Instance) activeCA() string {
	if i.TLS == nil {
		return ""
	}
	return tlsPath(i.TLS.ActiveCAFile)
}

// checkReplPassword makes sure password can be stored as a SCRAM verifier
// computed here and written to a password file.
func checkReplPassword(password string) error {
	if password == "" {
		return errors.New("the replication password must not be empty")
	}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c > 0x7e {
			return errors.New("the replication password must be printable ASCII " +
				"(no line breaks, control characters or non-ASCII letters)")
		}
	}
	return nil
}

// checkRoleMatchesData refuses to start a standby's data directory as the
// active, or a primary's as the passive.
func (i *Instance) checkRoleMatchesData(dir string) error {
	standby := isStandby(dir)
	switch {
	case i.role() == RolePassive && !standby:
		return fmt.Errorf("the cluster in %s is not a standby (no %s), but this server is the passive: "+
			"move that directory aside and seed it from the active with InitStandby", dir, standbySignal)
	case i.role() == RoleActive && standby:
		return fmt.Errorf("the cluster in %s is a standby copied from the active, but this server is configured as the active; "+
			"standbys are not promoted: configure this server as the passive", dir)
	}
	return nil
}

func isStandby(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, standbySignal))
	return err == nil
}

// ConfigureReplication prepares the active for its passive: it creates the
// replication role (LOGIN REPLICATION, password replPassword) or updates
// it when its password or attributes differ, and creates the physical
// replication slot if missing. A
// slot that has lost WAL the passive needed (wal_status "lost") is useless:
// it is replaced, and the passive must then be reseeded. ConfigureReplication
// connects as User with superPassword; the server must be running. It is
// idempotent.
//
// The password reaches PostgreSQL only as a SCRAM-SHA-256 verifier, never
// in clear, in a statement or a log. It must be printable ASCII. A passive
// keeps the password it was seeded with: after changing it, reseed the
// passive.
func (i *Instance) ConfigureReplication(ctx context.Context, superPassword, replPassword string) error {
	if i.role() != RoleActive {
		return errors.New("replication is configured on the active; the passive's cluster is a read-only copy of it")
	}
	if err := i.checkReplication(); err != nil {
		return err
	}
	if err := checkReplPassword(replPassword); err != nil {
		return err
	}
	verifier, err := scramVerifier(replPassword)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, i.ConnString("postgres", superPassword))
	if err != nil {
		return fmt.Errorf("configure replication: %w (is PostgreSQL running? start it first)", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return fmt.Errorf("configure replication: %w", err)
	}
	if inRecovery {
		return errors.New("configure replication: this PostgreSQL server is a standby; configure replication on the active")
	}
	// The passive cannot attach before its role exists, so these commits
	// must not wait for it. Keep the verifier out of the server log.
	for _, set := range []string{
		"SET synchronous_commit = local",
		"SET log_statement = 'none'",
		"SET log_min_error_statement = panic",
	} {
		if _, err := conn.Exec(ctx, set); err != nil {
			return fmt.Errorf("configure replication: %s: %w", set, err)
		}
	}

	user := pgx.Identifier{i.replicationUser()}.Sanitize()
	attrs := " WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD " + quoteLiteral(verifier)
	var exists, current bool
	var stored *string
	err = conn.QueryRow(ctx, `SELECT rolpassword, rolcanlogin AND rolreplication AND NOT (rolsuper OR rolcreatedb OR rolcreaterole)
		FROM pg_authid WHERE rolname = $1`, i.replicationUser()).Scan(&stored, &current)
	switch {
	case err == nil:
		exists = true
	case !errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("configure replication: %w", err)
	}
	// A role with the right attributes and password is left as it is.
	upToDate := exists && current && stored != nil && scramMatches(*stored, replPassword)
	err = nil
	if !exists {
		_, err = conn.Exec(ctx, "CREATE ROLE "+user+attrs)
		if isCode(err, "42710") { // duplicate_object: created meanwhile
			exists = true
		}
	}
	if exists && !upToDate {
		_, err = conn.Exec(ctx, "ALTER ROLE "+user+attrs)
	}
	if err != nil {
		return fmt.Errorf("configure replication: create or update role %q: %w", i.replicationUser(), err)
	}

	_, err = conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE slot_name = $1 AND wal_status = 'lost' AND NOT active`, i.slot())
	if err != nil {
		return fmt.Errorf("configure replication: drop lost replication slot %q: %w", i.slot(), err)
	}
	// The slot reserves WAL from now on, so nothing the passive needs is
	// removed between here and its first connection.
	_, err = conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)
		WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)`, i.slot())
	if err != nil && !isCode(err, "42710") {
		return fmt.Errorf("configure replication: create replication slot %q: %w", i.slot(), err)
	}
	return nil
}

// InitStandby creates the passive's cluster in DataDir as a copy of the
// active's, which listens on primaryHost:primaryPort, and makes it a hot
// standby of the active: pg_basebackup copies the cluster through the
// replication slot, then Trustee's configuration points the standby at the
// active. Start then runs it. The active must have run
// ConfigureReplication with replPassword and admit this host
// (ReplicationFrom).
//
// The password goes to pg_basebackup in a temporary password file, and
// stays for the standby in a 0600 file inside DataDir. If the copy fails,
// DataDir is left empty, so InitStandby can simply be run again.
//
// InitStandby refuses a DataDir that already holds a cluster
// (ErrAlreadyInitialized); Reseed replaces one. With CreateMissingSlot, a
// missing slot is created on the active by the copy.
func (i *Instance) InitStandby(ctx context.Context, primaryHost string, primaryPort int, replPassword string) error {
	if err := i.checkStandbyArgs(primaryHost, primaryPort, replPassword); err != nil {
		return err
	}
	dir, err := i.dataDir()
	if err != nil {
		return err
	}
	if i.Initialized() {
		return fmt.Errorf("%w: %s (to copy the active afresh, use Reseed)", ErrAlreadyInitialized, dir)
	}
	if err := i.checkSocketPath(dir); err != nil {
		return err
	}
	r, err := i.runner()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(r.bin, "pg_basebackup")); err != nil {
		return fmt.Errorf("%w: no pg_basebackup in %s; %s", ErrNotInstalled, r.bin, installHint)
	}
	if err := i.checkTLSFiles(r.acct); err != nil {
		return err
	}
	if err := prepareDataDir(dir, r.acct); err != nil {
		return err
	}
	up := &upstream{host: primaryHost, port: primaryPort, user: i.replicationUser()}
	err = i.seed(ctx, r, dir, up, replPassword, false)
	var ce *CopyError
	if i.CreateMissingSlot && errors.As(err, &ce) && slotMissing(ce.Output) {
		if err = emptyDir(dir); err == nil {
			err = i.seed(ctx, r, dir, up, replPassword, true)
		}
	}
	if err != nil {
		// dir was empty before: what is in it now is the failed copy.
		if cerr := emptyDir(dir); cerr != nil {
			return fmt.Errorf("%w\nthe incomplete copy could not be removed (%v): empty %s before trying again", err, cerr, dir)
		}
		return err
	}
	return nil
}

// checkStandbyArgs validates what InitStandby and Reseed need, before they
// change anything.
func (i *Instance) checkStandbyArgs(primaryHost string, primaryPort int, replPassword string) error {
	if i.role() != RolePassive {
		return fmt.Errorf("only the passive is seeded from the active, and this server's role is %q", i.role())
	}
	if err := i.checkReplication(); err != nil {
		return err
	}
	if primaryHost == "" || strings.ContainsAny(primaryHost, "\x00\r\n\t ,") {
		return fmt.Errorf("the active's PostgreSQL host %q is not a host name or address", primaryHost)
	}
	if primaryPort < 1 || primaryPort > 65535 {
		return fmt.Errorf("the active's PostgreSQL port %d is out of range", primaryPort)
	}
	return checkReplPassword(replPassword)
}

// seed copies the active's cluster into the empty dir and turns it into a
// standby. It writes standby.signal before anything else can start the
// copy, which would otherwise run as a second primary.
// With createSlot, pg_basebackup creates the replication slot on the active.
func (i *Instance) seed(ctx context.Context, r *runner, dir string, up *upstream, password string, createSlot bool) error {
	tmp, err := writeSecretFile("pg_basebackup", up.passLine(password), r.acct)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	args := []string{
		"--pgdata=" + dir,
		"--host=" + up.host,
		"--port=" + strconv.Itoa(up.port),
		"--username=" + up.user,
		"--no-password",
		"--wal-method=stream",
		"--slot=" + i.slot(),
		"--checkpoint=fast",
		"--label=trustee passive " + i.standbyName(),
	}
	if createSlot {
		args = append(args, "--create-slot")
	}
	if i.NoSync {
		args = append(args, "--no-sync")
	}
	env := []string{"PGPASSFILE=" + tmp, "PGCONNECT_TIMEOUT=10"}
	if ca := i.activeCA(); ca != "" {
		env = append(env, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+ca)
	}
	out, err := r.runEnv(ctx, env, "pg_basebackup", args...)
	os.Remove(tmp)
	if err != nil {
		return &CopyError{Host: up.host, Port: up.port, Output: out, Hint: strings.TrimPrefix(basebackupHint(out, i), "\n"), Err: err}
	}
	// The copy holds the active's server log and the lock files of its
	// Unix sockets (which live in the data directory): they are not ours,
	// and a socket lock naming a live process would stop the standby.
	locks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*.lock"))
	for _, f := range append(locks, filepath.Join(dir, LogFile)) {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the active's %s from the copy: %w", filepath.Base(f), err)
		}
	}
	if err := writeFile(filepath.Join(dir, standbySignal), "", r.acct); err != nil {
		return err
	}
	content := "# Managed by Trustee: where this passive replicates from.\n" + up.passLine(password)
	if err := writeFile(filepath.Join(dir, passFile), content, r.acct); err != nil {
		return err
	}
	return i.writeConfig(dir, r.acct)
}

// slotMissing reports whether pg_basebackup's output says the active has
// no such replication slot.
func slotMissing(out string) bool {
	return strings.Contains(out, "replication slot") && strings.Contains(out, "does not exist")
}

// CopyError is a failed copy of the active's cluster by pg_basebackup
// (InitStandby, Reseed): the active did not answer, refused the
// connection or the copy broke off. It may succeed when tried again, once
// the active is up and set up for replication.
type CopyError struct {
	Host   string // the active's PostgreSQL
	Port   int
	Output string // what pg_basebackup said
	Hint   string // what that suggests, or ""
	Err    error  // how pg_basebackup ended
}

func (e *CopyError) Error() string {
	msg := fmt.Sprintf("copy the active's cluster from %s:%d with pg_basebackup: %v\n%s", e.Host, e.Port, e.Err, e.Output)
	if e.Hint != "" {
		msg += "\n" + e.Hint
	}
	return msg
}

func (e *CopyError) Unwrap() error { return e.Err }

// Reason says in one line why the copy failed: pg_basebackup's error and
// the hint.
func (e *CopyError) Reason() string {
	var msg string
	for _, line := range strings.Split(e.Output, "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "pg_basebackup: error: "); ok {
			msg = m
			break
		}
	}
	if msg == "" {
		msg = "pg_basebackup: " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// basebackupHint turns pg_basebackup's complaint into advice.
func basebackupHint(out string, i *Instance) string {
	var hint string
	if h := tlsHint(out, i); h != "" {
		return "\n" + h
	}
	switch {
	case strings.Contains(out, "password authentication failed"):
		hint = "check the replication password: it must be the one given to ConfigureReplication on the active"
	case strings.Contains(out, "no pg_hba.conf entry"):
		hint = "the active does not admit replication from this host: add its address to the active's ReplicationFrom and restart the active"
	case slotMissing(out):
		hint = fmt.Sprintf("the active has no replication slot %q: run ConfigureReplication on the active", i.slot())
	case strings.Contains(out, "is active for PID"):
		hint = fmt.Sprintf("another standby uses replication slot %q: stop it first", i.slot())
	case strings.Contains(out, "Connection refused"), strings.Contains(out, "timeout expired"):
		hint = "is the active's PostgreSQL running and listening on that address?"
	default:
		return ""
	}
	return "\n" + hint
}

// tlsHint turns a complaint of libpq or pgx about TLS to the active into
// advice, or returns "".
func tlsHint(out string, i *Instance) string {
	ca := i.activeCA()
	switch {
	case strings.Contains(out, "no encryption") && strings.Contains(out, "pg_hba.conf"):
		return "the active admits replication over TLS only: turn TLS on for this passive too"
	case ca == "":
		return ""
	case strings.Contains(out, "does not match host name"), strings.Contains(out, "certificate is valid for"):
		return "the active's certificate is not issued for the host name the passive reaches it by: " +
			"use a name the certificate names, or add it to the certificate"
	case strings.Contains(out, "certificate verify failed"), strings.Contains(out, "x509: "):
		return fmt.Sprintf("the active's certificate does not verify against the CA certificates in %s: "+
			"that file must hold the CA that signs the active's certificate (and any intermediate certificate the active does not send)", ca)
	case strings.Contains(out, "server does not support SSL"):
		return "the active's PostgreSQL does not offer TLS: turn TLS on for the active too"
	}
	return ""
}

// Reseed replaces the passive's cluster with a fresh copy of the active's,
// for a passive that can no longer catch up (its replication slot was lost
// or dropped). It stops the server, renames DataDir to
// DataDir.old-<UTC time> (nothing is deleted: remove the old copy once the
// new one works), then runs InitStandby. The server is left stopped.
//
// Reseed refuses an active, and a DataDir that holds a primary's cluster.
func (i *Instance) Reseed(ctx context.Context, primaryHost string, primaryPort int, replPassword string) error {
	if i.role() != RolePassive {
		return fmt.Errorf("Reseed replaces the passive's copy of the active's cluster, and this server's role is %q: "+
			"the active's cluster is the original and is never reseeded", i.role())
	}
	if err := i.checkStandbyArgs(primaryHost, primaryPort, replPassword); err != nil {
		return err
	}
	dir, err := i.dataDir()
	if err != nil {
		return err
	}
	if i.Initialized() && !isStandby(dir) {
		return fmt.Errorf("%s holds a primary's cluster, not a standby: refusing to reseed it; "+
			"move it aside yourself if it really is to be replaced", dir)
	}
	var old string
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		if err := i.Stop(ctx); err != nil {
			return fmt.Errorf("reseed: %w", err)
		}
		if old, err = moveAside(dir); err != nil {
			return fmt.Errorf("reseed: %w", err)
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reseed: PostgreSQL data directory: %w", err)
	}
	if err := i.InitStandby(ctx, primaryHost, primaryPort, replPassword); err != nil {
		if old != "" {
			return fmt.Errorf("reseed: %w\nthe previous data directory is kept in %s: fix the problem and run Reseed again", err, old)
		}
		return fmt.Errorf("reseed: %w", err)
	}
	return nil
}

// moveAside renames dir to dir.old-<UTC time>, with a counter should that
// name be taken, and returns the new name.
func moveAside(dir string) (string, error) {
	base := dir + ".old-" + time.Now().UTC().Format("20060102T150405Z")
	for n := 1; n < 100; n++ {
		name := base
		if n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Rename(dir, name); err != nil {
			return "", fmt.Errorf("move the old data directory aside: %w", err)
		}
		return name, nil
	}
	return "", fmt.Errorf("move the old data directory aside: too many %s* directories: remove old ones", base)
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}

// ReplicationStatus reports on replication from the running server,
// connecting as User with superPassword. On the active it describes the
// standby named Standby (else DefaultStandby) and the slot; on the passive,
// its recovery and WAL receiver. Which side it reports is decided by the
// server (pg_is_in_recovery), not by Role.
func (i *Instance) ReplicationStatus(ctx context.Context, superPassword string) (ReplicationStatus, error) {
	var st ReplicationStatus
	conn, err := pgx.Connect(ctx, i.ConnString("postgres", superPassword))
	if err != nil {
		return st, fmt.Errorf("replication status: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&st.InRecovery); err != nil {
		return st, fmt.Errorf("replication status: %w", err)
	}
	if st.InRecovery {
		err = conn.QueryRow(ctx, `SELECT COALESCE(pg_last_wal_replay_lsn()::text, ''),
			EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')`).Scan(&st.ReplayLSN, &st.Streaming)
		if err != nil {
			return st, fmt.Errorf("replication status: %w", err)
		}
		return st, nil
	}

	st.Standby = i.standbyName()
	var lagSeconds float64
	err = conn.QueryRow(ctx, `SELECT state, sync_state,
			COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint,
			COALESCE(EXTRACT(epoch FROM replay_lag), 0)::float8
		FROM pg_stat_replication WHERE application_name = $1
		ORDER BY backend_start DESC LIMIT 1`, st.Standby).
		Scan(&st.State, &st.SyncState, &st.ReplayLagBytes, &lagSeconds)
	switch {
	case err == nil:
		st.Attached = true
		st.ReplayLag = time.Duration(lagSeconds * float64(time.Second))
	case !errors.Is(err, pgx.ErrNoRows):
		return st, fmt.Errorf("replication status: %w", err)
	}
	err = conn.QueryRow(ctx, "SELECT COALESCE(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
		i.slot()).Scan(&st.SlotWALStatus)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return st, fmt.Errorf("replication status: %w", err)
	}
	return st, nil
}

// upstream is where a passive replicates from.
type upstream struct {
	host string
	port int
	user string
}

// passLine is the libpq password file entry for replication connections
// to u with password.
func (u *upstream) passLine(password string) string {
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	return strings.Join([]string{
		esc.Replace(u.host), strconv.Itoa(u.port), "replication", esc.Replace(u.user), esc.Replace(password),
	}, ":") + "\n"
}

// conninfo is primary_conninfo for a standby named appName that reads its
// password from passfile. With rootCert, the standby connects over TLS
// and verifies the active's certificate against it and the host name
// (verify-full).
func (u *upstream) conninfo(appName, passfile, rootCert string) string {
	q := func(s string) string {
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
	}
	s := "host=" + q(u.host) + " port=" + strconv.Itoa(u.port) + " user=" + q(u.user) +
		" passfile=" + q(passfile) + " application_name=" + q(appName) + " connect_timeout=10"
	if rootCert != "" {
		s += " sslmode=verify-full sslrootcert=" + q(rootCert)
	}
	return s
}

// readUpstream reads the passive's upstream from its password file.
func readUpstream(dataDir string) (*upstream, error) {
	path := filepath.Join(dataDir, passFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing, so this passive does not know where the active is: "+
			"seed the passive from the active again with Reseed", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read the passive's replication password file: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := splitPassLine(line)
		if len(f) != 5 {
			break
		}
		port, err := strconv.Atoi(f[1])
		if err != nil {
			break
		}
		return &upstream{host: f[0], port: port, user: f[3]}, nil
	}
	return nil, fmt.Errorf("%s is damaged: seed the passive from the active again with Reseed", path)
}

// splitPassLine splits a password file entry at unescaped colons and
// removes the escapes.
func splitPassLine(line string) []string {
	var fields []string
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case c == ':':
			fields = append(fields, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(fields, b.String())
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password, as CREATE ROLE ... PASSWORD accepts it. PostgreSQL applies
// SASLprep first, which leaves printable ASCII unchanged; checkReplPassword
// allows nothing else.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	stored, server, err := scramKeys(password, salt, scramIterations)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s",
		scramIterations, b64(salt), b64(stored), b64(server)), nil
}

// scramKeys returns the StoredKey and ServerKey of password with salt and
// iterations (RFC 5802).
func scramKeys(password string, salt []byte, iterations int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, nil, err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	sum := sha256.Sum256(mac("Client Key"))
	return sum[:], mac("Server Key"), nil
}

// scramMatches reports whether verifier, as PostgreSQL stores it
// (SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey), is one of password.
func scramMatches(verifier, password string) bool {
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	params, keys, ok := strings.Cut(rest, "$")
	iterStr, saltB64, ok1 := strings.Cut(params, ":")
	storedB64, serverB64, ok2 := strings.Cut(keys, ":")
	iterations, err := strconv.Atoi(iterStr)
	if !ok || !ok1 || !ok2 || err != nil || iterations < 1 || iterations > 1<<20 {
		return false
	}
	dec := base64.StdEncoding.DecodeString
	salt, err1 := dec(saltB64)
	wantStored, err2 := dec(storedB64)
	wantServer, err3 := dec(serverB64)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	stored, server, err := scramKeys(password, salt, iterations)
	return err == nil && hmac.Equal(stored, wantStored) && hmac.Equal(server, wantServer)
}

// quoteLiteral renders s as an SQL string literal
// (standard_conforming_strings is on).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// isCode reports whether err is a PostgreSQL error with SQLSTATE code.
func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// IsStandby reports whether DataDir holds a passive's copy (a standby's
// cluster) rather than a primary's.
func (i *Instance) IsStandby() bool {
	dir, err := i.dataDir()
	return err == nil && i.Initialized() && isStandby(dir)
}

// Promote makes the passive's copy in DataDir the primary, for a server
// whose role is now the active's: the other member must be fenced first
// (stopped, accepting no writes), which Promote cannot see. It runs the
// copy as the standby it is, replays every WAL record it received, ends
// recovery with `pg_ctl promote` (PostgreSQL starts a new timeline) and
// stops it again. A primary's cluster is left as it is.
func (i *Instance) Promote(ctx context.Context) error {
	if i.role() != RoleActive {
		return fmt.Errorf("Promote makes a copy the active's cluster, and this server's role is %q", i.role())
	}
	if !i.IsStandby() {
		return nil
	}
	dir, _ := i.dataDir()
	// The copy runs as the standby it is, reaching for no active: it
	// replays the WAL it holds, all it ever received.
	standby := *i
	standby.Role, standby.promoting = RolePassive, true
	if err := standby.Start(ctx); err != nil {
		return fmt.Errorf("promote: start the copy as a standby: %w", err)
	}
	r, err := i.runner()
	if err == nil {
		var out string
		if out, err = r.run(ctx, "pg_ctl", "promote", "--wait", "--timeout="+waitSeconds(ctx), "--pgdata="+dir); err != nil {
			err = fmt.Errorf("promote the copy in %s: %w\n%s", dir, err, out)
		}
	}
	return errors.Join(err, standby.Stop(context.WithoutCancel(ctx)))
}

// MoveAside renames DataDir to DataDir.old-<UTC time>, for a member whose
// cluster is to be replaced by a fresh copy of the active's (a former
// active's, once the other member was promoted), and returns the new name.
// Nothing is deleted. The server must not run.
func (i *Instance) MoveAside(ctx context.Context) (string, error) {
	dir, err := i.dataDir()
	if err != nil {
		return "", err
	}
	st, err := i.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Running {
		return "", fmt.Errorf("PostgreSQL runs in %s: stop it before moving it aside", dir)
	}
	return moveAside(dir)
}
