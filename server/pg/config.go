package pg

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// includeLine makes postgresql.conf read ConfigFile. It goes at the end, so
// ConfigFile overrides postgresql.conf (ALTER SYSTEM, in
// postgresql.auto.conf, still overrides both).
const includeLine = "include '" + ConfigFile + "'"

// loopbackNetworks are the networks pg_hba.conf admits every role from.
var loopbackNetworks = []string{"127.0.0.1/32", "::1/128"}

// hbaConf returns pg_hba.conf: password (SCRAM) connections over the Unix
// socket and loopback TCP for databases, replication connections for the
// replication role from ReplicationFrom, connections for User from
// ClientsFrom (the loopback networks above are not repeated), and nothing
// else. With TLS, the replication role and User are admitted from their
// networks over TLS only (hostssl).
func (i *Instance) hbaConf() string {
	var b strings.Builder
	b.WriteString(`# Managed by Trustee: rewritten on every start. Local changes are lost.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
`)
	typ := "host   "
	if i.serverTLS() {
		typ = "hostssl"
	}
	for _, cidr := range i.replicationFrom() {
		fmt.Fprintf(&b, "%s replication  \"%s\"  %s  scram-sha-256\n", typ, i.replicationUser(), cidr)
	}
	for _, cidr := range i.clientsFrom() {
		fmt.Fprintf(&b, "%s all          \"%s\"  %s  scram-sha-256\n", typ, i.user(), cidr)
	}
	return b.String()
}

// clientsFrom returns the networks of ClientsFrom that the loopback lines
// of pg_hba.conf do not admit already.
func (i *Instance) clientsFrom() []string {
	var out []string
	for _, cidr := range i.ClientsFrom {
		if !slices.Contains(loopbackNetworks, cidr) && !slices.Contains(out, cidr) {
			out = append(out, cidr)
		}
	}
	return out
}

// checkClients refuses ClientsFrom networks that are not CIDR networks,
// and a User that pg_hba.conf cannot name.
func (i *Instance) checkClients() error {
	for _, cidr := range i.ClientsFrom {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return fmt.Errorf("client network %q is not a network in CIDR notation (such as 10.244.0.0/16 or fd00::/64)", cidr)
		}
		if p.Masked() != p {
			return fmt.Errorf("client network %q has bits set after its prefix length: write %s, or %s for the one address",
				cidr, p.Masked(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
		}
	}
	if len(i.clientsFrom()) > 0 && strings.ContainsAny(i.user(), "\"\x00\r\n") {
		return fmt.Errorf("database user %q cannot be admitted from client networks: pg_hba.conf cannot hold its name", i.user())
	}
	return nil
}

// setting is one line of ConfigFile; value is already in postgresql.conf
// syntax (see quote).
type setting struct {
	name, value string
}

// Replication settings. A hot standby refuses to start with smaller
// max_wal_senders than its primary's, so both roles set the same values.
const (
	maxWALSenders       = 10
	maxReplicationSlots = 10
	// walKeepSize is WAL the active keeps beyond what the slot retains,
	// so that a passive whose slot was lost may still catch up.
	walKeepSize = "256MB"
)

// settings returns every server setting Trustee manages. up is where a
// passive replicates from; it is ignored for the active. New settings
// belong here. (Parameters are not among them: see parameterSettings.)
func (i *Instance) settings(dataDir string, up *upstream) []setting {
	fsync := "on"
	if i.NoSync {
		fsync = "off"
	}
	sockDir, err := i.socketDir(dataDir)
	if err != nil { // refused by checkSettings before anything is written
		sockDir = dataDir
	}
	s := []setting{
		{"listen_addresses", quote(i.listenAddresses())},
		{"port", strconv.Itoa(i.port())},
		{"unix_socket_directories", quote(sockDir)},
		{"unix_socket_permissions", "0700"},
		{"password_encryption", quote("scram-sha-256")},
		{"fsync", fsync},
		// The server log goes to stderr, which pg_ctl sends to LogFile.
		{"logging_collector", "off"},
		{"log_destination", quote("stderr")},
		{"log_line_prefix", quote("%m [%p] %q%u@%d ")},
		// Bind parameters carry key material: never log them.
		{"log_parameter_max_length", "0"},
		{"log_parameter_max_length_on_error", "0"},

		{"wal_level", "replica"},
		{"max_wal_senders", strconv.Itoa(maxWALSenders)},
		{"max_replication_slots", strconv.Itoa(maxReplicationSlots)},
		{"wal_keep_size", quote(walKeepSize)},
		{"hot_standby", "on"},
	}
	if i.serverTLS() {
		// PostgreSQL re-reads these files when it reloads its
		// configuration.
		s = append(s,
			setting{"ssl", "on"},
			setting{"ssl_cert_file", quote(tlsPath(i.TLS.CertFile))},
			setting{"ssl_key_file", quote(tlsPath(i.TLS.KeyFile))},
			setting{"ssl_min_protocol_version", quote(i.tlsMinVersion())})
	}
	if i.role() == RolePassive {
		// A long read on the passive (a backup) must not hold up replay,
		// for every commit of the active waits for it (remote_apply): the
		// active keeps the rows such reads still see, and a read that
		// conflicts with replay anyway is cancelled after a second.
		s = append(s,
			setting{"hot_standby_feedback", "on"},
			setting{"max_standby_streaming_delay", quote("1s")})
		if up != nil {
			s = append(s,
				setting{"primary_conninfo", quote(up.conninfo(i.standbyName(), filepath.Join(dataDir, passFile), i.activeCA()))},
				setting{"primary_slot_name", quote(i.slot())})
		}
		return s
	}
	// What the active acknowledges must be readable on the passive.
	s = append(s, setting{"synchronous_commit", "remote_apply"})
	if i.Standby != "" {
		s = append(s, setting{"synchronous_standby_names", quote(`FIRST 1 ("` + i.Standby + `")`)})
	}
	return s
}

// parameterName is the form of a postgresql.conf setting name Parameters
// may hold.
var parameterName = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,62}$`)

// parameterSettings returns Parameters as settings, by name.
func (i *Instance) parameterSettings() []setting {
	names := slices.Sorted(maps.Keys(i.Parameters))
	s := make([]setting, 0, len(names))
	for _, name := range names {
		s = append(s, setting{name, quote(i.Parameters[name])})
	}
	return s
}

// managedSettings returns the names of every setting Trustee manages, in
// either role.
func (i *Instance) managedSettings() map[string]bool {
	names := map[string]bool{}
	for _, role := range []Role{RoleActive, RolePassive} {
		probe := Instance{Role: role, Standby: DefaultStandby, TLS: &TLS{CertFile: "/c", KeyFile: "/k"}}
		for _, s := range probe.settings("/", &upstream{}) {
			names[s.name] = true
		}
	}
	return names
}

// checkSettings refuses a socket directory PostgreSQL cannot take, and
// Parameters that are not setting names, that Trustee manages itself, or
// whose values hold control characters.
func (i *Instance) checkSettings() error {
	if _, err := i.socketDir("/"); err != nil {
		return err
	}
	managed := i.managedSettings()
	for _, name := range slices.Sorted(maps.Keys(i.Parameters)) {
		switch value := i.Parameters[name]; {
		case !parameterName.MatchString(name):
			return fmt.Errorf("PostgreSQL parameter %q: not a setting name (lower case letters, digits, _ and .)", name)
		case managed[name]:
			return fmt.Errorf("PostgreSQL parameter %q is set by Trustee itself and cannot be given as a parameter", name)
		case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' || r == 0x7f }):
			return fmt.Errorf("PostgreSQL parameter %q: the value contains a line break or another control character", name)
		}
	}
	return nil
}

// quote renders s as a postgresql.conf string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `''`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}

// writeConfig writes ConfigFile and pg_hba.conf, makes sure postgresql.conf
// includes ConfigFile, and creates the log directory. It is the only place
// that writes server configuration. A passive's upstream comes from its
// replication password file (see InitStandby).
func (i *Instance) writeConfig(dataDir string, acct *account) error {
	if err := i.checkReplication(); err != nil {
		return err
	}
	if err := i.checkSettings(); err != nil {
		return err
	}
	if err := i.checkClients(); err != nil {
		return err
	}
	var up *upstream
	if i.role() == RolePassive && !i.promoting {
		var err error
		if up, err = readUpstream(dataDir); err != nil {
			return err
		}
	}
	var b strings.Builder
	b.WriteString("# Managed by Trustee: rewritten on every start. Local changes are lost.\n")
	// Trustee's own settings come last: should a parameter name one, it
	// would not win.
	for _, s := range append(i.parameterSettings(), i.settings(dataDir, up)...) {
		fmt.Fprintf(&b, "%s = %s\n", s.name, s.value)
	}
	if err := writeFile(filepath.Join(dataDir, ConfigFile), b.String(), acct); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dataDir, "pg_hba.conf"), i.hbaConf(), acct); err != nil {
		return err
	}
	if err := ensureInclude(filepath.Join(dataDir, "postgresql.conf")); err != nil {
		return err
	}
	logDir := filepath.Join(dataDir, filepath.Dir(LogFile))
	if err := os.Mkdir(logDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create PostgreSQL log directory: %w", err)
	}
	return acct.chown(logDir)
}

// ensureInclude appends includeLine to postgresql.conf unless present.
func ensureInclude(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read PostgreSQL configuration: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == includeLine {
			return nil
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("update PostgreSQL configuration: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Settings managed by Trustee.\n%s\n", includeLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("update PostgreSQL configuration %s: %w", path, err)
	}
	return nil
}

// writeFile atomically replaces path with content, mode 0600, owned by the
// run-as account. A file that already holds content (with that mode) is
// left as it is.
func writeFile(path, content string, acct *account) error {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 && acct.owns(fi) {
		if old, err := os.ReadFile(path); err == nil && string(old) == content {
			return nil
		}
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	err := func() error {
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.WriteString(content)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = acct.chown(tmp)
		}
		if err == nil {
			err = os.Rename(tmp, path)
		}
		return err
	}()
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
