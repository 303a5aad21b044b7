package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"trustee.dev/trustee/server/tlsconf"
)

// DefaultReplicationFrom is REPLICATION_FROM when the file does not set
// it: loopback only, for a pair on one host.
func DefaultReplicationFrom() []string { return []string{"127.0.0.1/32", "::1/128"} }

// DefaultDBClientsFrom is DB_CLIENTS_FROM when the file does not set it:
// loopback only, where the server itself connects.
func DefaultDBClientsFrom() []string { return []string{"127.0.0.1/32", "::1/128"} }

// ReservedDBParameters are the postgresql.conf settings that Trustee sets
// itself (listening, replication, durability, file locations, logging of
// statements and their parameters): DB_PARAMETERS cannot change them. The
// Kubernetes API refuses the same names in spec.postgresql.parameters
// (PostgreSQLParameter in api/v1alpha1; a test keeps the two lists equal).
var ReservedDBParameters = []string{
	"listen_addresses", "port", "unix_socket_directories", "unix_socket_group", "unix_socket_permissions",
	"data_directory", "config_file", "hba_file", "ident_file", "include", "include_dir", "include_if_exists",
	"ssl", "ssl_cert_file", "ssl_key_file", "ssl_ca_file", "ssl_min_protocol_version", "password_encryption",
	"fsync", "full_page_writes",
	"wal_level", "max_wal_senders", "max_replication_slots", "wal_keep_size",
	"hot_standby", "hot_standby_feedback", "max_standby_streaming_delay",
	"synchronous_commit", "synchronous_standby_names", "primary_conninfo", "primary_slot_name",
	"restore_command", "recovery_target", "recovery_target_timeline",
	"archive_mode", "archive_command", "archive_library",
	"logging_collector", "log_destination", "log_line_prefix",
	"log_parameter_max_length", "log_parameter_max_length_on_error", "log_statement",
}

// Limits of DB_PARAMETERS, as the Kubernetes API has them.
const (
	maxDBParameters          = 64
	maxDBParameterValueBytes = 1024
)

// dbParameterName is the form of a postgresql.conf setting name (lower
// case, so that no spelling slips past ReservedDBParameters).
var dbParameterName = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,62}$`)

// LoopbackDBHost reports whether host, a DB_HOST, is reached without
// leaving this host: a loopback address, "localhost", or the directory of
// a Unix socket.
func LoopbackDBHost(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// DBCA returns the file of the CA certificates that verify the
// PostgreSQL at DB_HOST: DB_CA_FILE, else ACTIVE_CA.
func (c Config) DBCA() string {
	if c.DBCAFile != "" {
		return c.DBCAFile
	}
	return c.ActiveCA
}

// DBClientTLS says how a client connects to the PostgreSQL at DB_HOST:
// with DB_TLS and a DB_HOST beyond loopback, over TLS, verifying the
// server's certificate and host name (libpq's sslmode verify-full)
// against rootCert, DBCA resolved against the state directory confdir;
// otherwise without TLS (verify false).
func (c Config) DBClientTLS(confdir string) (verify bool, rootCert string) {
	if !c.DBTLS || LoopbackDBHost(c.DBHost) {
		return false, ""
	}
	return true, c.Path(confdir, c.DBCA())
}

// DBSSLQuery returns the TLS parameters of a postgres:// URL that reaches
// DB_HOST, as DBClientTLS has them: "sslmode=disable", or "sslmode=
// verify-full&sslrootcert=FILE".
func (c Config) DBSSLQuery(confdir string) string {
	verify, ca := c.DBClientTLS(confdir)
	if !verify {
		return "sslmode=disable"
	}
	return "sslmode=verify-full&sslrootcert=" + url.QueryEscape(ca)
}

// DBTLSMinVersion is PostgreSQL's ssl_min_protocol_version for
// TLS_MIN_VERSION: "TLSv1.2" or "TLSv1.3".
func (c Config) DBTLSMinVersion() string {
	if v, err := tlsconf.ParseMinVersion(c.TLSMinVersion); err == nil && v == tls.VersionTLS13 {
		return "TLSv1.3"
	}
	return "TLSv1.2"
}

// validatePostgreSQL checks REPLICATION_FROM, DB_CLIENTS_FROM,
// DB_LISTEN_ADDRESSES, DB_SOCKET_DIR, DB_PARAMETERS, DB_TLS and
// DB_CA_FILE.
func (c Config) validatePostgreSQL() []error {
	var errs []error
	add := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if msg := checkPath(c.DBCAFile, false); msg != "" {
		add("DB_CA_FILE", "%s", msg)
	}
	switch {
	case c.DBTLS:
		if c.SSLPrivateKeyPasswordScript != "" {
			add("DB_TLS", "PostgreSQL cannot read a private key that needs SSL_PRIVATE_KEY_PASSWORD_SCRIPT: give SSL_PRIVATE_KEY "+
				"unencrypted (on a mount only the server's accounts can read), or set DB_TLS to false")
		}
		if !LoopbackDBHost(c.DBHost) && c.DBCA() == "" {
			add("DB_CA_FILE", "is empty (and so is ACTIVE_CA), but DB_HOST %q is beyond loopback, where DB_TLS verifies "+
				"PostgreSQL's certificate: set DB_CA_FILE to the PEM file of the CA certificates that sign it", c.DBHost)
		}
	case c.DBCAFile != "":
		add("DB_CA_FILE", "is set, but DB_TLS is false, so no connection to PostgreSQL uses TLS: set DB_TLS to true, or remove DB_CA_FILE")
	}
	if len(c.ReplicationFrom) == 0 {
		add("REPLICATION_FROM", "lists no network; list the networks (CIDR) the passive replicates from, e.g. [\"10.0.0.7/32\"], or remove the key for loopback only")
	}
	for _, cidr := range c.ReplicationFrom {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			add("REPLICATION_FROM", "%q is not a network in CIDR notation, such as \"10.0.0.7/32\", \"10.244.0.0/16\" or \"fd00::7/128\"", cidr)
		}
	}
	if len(c.DBClientsFrom) == 0 {
		add("DB_CLIENTS_FROM", "lists no network; list the networks (CIDR) DB_USER %q may connect from over TCP, e.g. [\"10.244.0.0/16\"], or remove the key for loopback only", c.DBUser)
	}
	beyondLoopback := false
	for _, cidr := range c.DBClientsFrom {
		if msg := checkNetwork(cidr); msg != "" {
			add("DB_CLIENTS_FROM", "%s", msg)
		} else if !slices.Contains(DefaultDBClientsFrom(), cidr) {
			beyondLoopback = true
		}
	}
	if beyondLoopback && strings.ContainsRune(c.DBUser, '"') {
		add("DB_USER", "%q contains a double quote, which pg_hba.conf cannot hold, and DB_CLIENTS_FROM admits it there by name; choose a name without one", c.DBUser)
	}
	if c.DBListenAddresses != "" {
		for _, a := range strings.Split(c.DBListenAddresses, ",") {
			if a = strings.TrimSpace(a); a == "" || strings.ContainsFunc(a, isSpaceOrControl) || strings.ContainsAny(a, `'"\`) {
				add("DB_LISTEN_ADDRESSES", "%q is not a comma-separated list of host names or addresses (\"*\" for all; remove the key to listen on DB_HOST)", c.DBListenAddresses)
				break
			}
		}
	}
	if c.DBSocketDir != "" {
		if strings.ContainsFunc(c.DBSocketDir, isSpaceOrControl) || strings.ContainsAny(c.DBSocketDir, `,'"\`) {
			add("DB_SOCKET_DIR", "%q must be a directory path without spaces, commas, quotes or backslashes, e.g. \"/var/run/postgresql\"", c.DBSocketDir)
		}
	}
	if len(c.DBParameters) > maxDBParameters {
		add("DB_PARAMETERS", "sets %d parameters; at most %d are allowed", len(c.DBParameters), maxDBParameters)
	}
	names := make([]string, 0, len(c.DBParameters))
	for name := range c.DBParameters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value := c.DBParameters[name]
		switch {
		case !dbParameterName.MatchString(name):
			add("DB_PARAMETERS", "%q is not a PostgreSQL setting name (lower case letters, digits, _ and ., up to 63 bytes, e.g. \"shared_buffers\")", name)
		case slices.Contains(ReservedDBParameters, name):
			add("DB_PARAMETERS", "%q is set by Trustee itself (listening, replication, durability, file locations, logging of statements and their parameters) and cannot be changed here%s", name, reservedHint(name))
		case len(value) > maxDBParameterValueBytes:
			add("DB_PARAMETERS", "the value of %q is longer than %d bytes", name, maxDBParameterValueBytes)
		case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' || r == 0x7f }):
			add("DB_PARAMETERS", "the value of %q contains a line break or another control character", name)
		}
	}
	return errs
}

// checkNetwork checks one network of DB_CLIENTS_FROM: CIDR notation
// without host bits, so that "10.0.0.7/8" (10.0.0.0/8, or 10.0.0.7/32?)
// is never taken for what it does not say.
func checkNetwork(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a network in CIDR notation, such as \"10.0.0.7/32\", \"10.244.0.0/16\", \"0.0.0.0/0\" or \"fd00::/64\"", cidr)
	case p.Masked() != p:
		return fmt.Sprintf("%q has bits set after its prefix length: write the network %q, or %q for the one address", cidr, p.Masked().String(),
			netip.PrefixFrom(p.Addr(), p.Addr().BitLen()).String())
	}
	return ""
}

// reservedHint names the key that sets a reserved parameter, if any.
func reservedHint(name string) string {
	switch name {
	case "listen_addresses":
		return "; set DB_LISTEN_ADDRESSES"
	case "port":
		return "; set DB_PORT"
	case "unix_socket_directories":
		return "; set DB_SOCKET_DIR"
	}
	return ""
}
