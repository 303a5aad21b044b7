// Package pg manages the local PostgreSQL server that stores Trustee's keys.
//
// Trustee owns its database cluster: [Instance.Init] creates it with initdb,
// [Instance.Start] and [Instance.Stop] drive pg_ctl, and [Instance.Status]
// reports on it. The cluster only accepts password (SCRAM-SHA-256)
// connections over loopback TCP and over a Unix socket (kept inside the data
// directory unless [Instance.SocketDir] names another), [Instance.User]'s
// from [Instance.ClientsFrom], and replication connections from
// [Instance.ReplicationFrom]; with [Instance.TLS], those last two over TLS
// only, and connections to another host verify its certificate.
//
// Two servers can run as an active/passive pair. The active's cluster is
// the primary: [Instance.ConfigureReplication] creates the replication role
// and slot, and with [Instance.Standby] set every commit waits until the
// passive has applied it (synchronous_commit = remote_apply), so whatever
// the active acknowledged is readable on the passive. The passive's cluster
// is a read-only hot standby, copied from the active by
// [Instance.InitStandby] and copied afresh by [Instance.Reseed].
// [Instance.ReplicationStatus] reports on either side. A passive is never
// promoted.
//
// Every setting Trustee manages lives in one file, trustee.conf in the data
// directory, included from postgresql.conf and rewritten by Init and Start;
// pg_hba.conf is rewritten alongside it. Change settings in this package,
// not in those files.
//
// PostgreSQL refuses to run as root. When the calling process is root, the
// PostgreSQL programs run as the unprivileged account named by
// [Instance.RunAs], which then owns the data directory.
package pg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Defaults for the zero values of [Instance] fields.
const (
	DefaultHost  = "127.0.0.1"
	DefaultPort  = 11381
	DefaultUser  = "keytrustee"
	DefaultRunAs = "postgres"
)

// Replication defaults.
const (
	DefaultReplicationUser = "kts_replication"
	DefaultSlot            = "kts_passive"
	DefaultStandby         = "kts_passive"
)

// Role is an Instance's place in the active/passive pair.
type Role string

// Roles. The zero Role is RoleActive.
const (
	// RoleActive runs the primary: the cluster that takes writes.
	RoleActive Role = "active"
	// RolePassive runs a hot standby of the active's cluster: read-only,
	// replaying the active's WAL.
	RolePassive Role = "passive"
)

// DefaultDatabase is the database Init creates for the server.
const DefaultDatabase = "keytrustee"

// ConfigFile is the file, relative to the data directory, that holds every
// setting Trustee manages. Init and Start rewrite it.
const ConfigFile = "trustee.conf"

// LogFile is the server log, relative to the data directory.
const LogFile = "log/postgresql.log"

// fallbackBinDir is where Debian's postgresql-15 package puts the server.
const fallbackBinDir = "/usr/lib/postgresql/15/bin"

var (
	// ErrNotInstalled means the PostgreSQL 15 server programs were not found.
	ErrNotInstalled = errors.New("PostgreSQL 15 server programs not found")
	// ErrNotInitialized means the data directory holds no cluster yet.
	ErrNotInitialized = errors.New("no PostgreSQL cluster in data directory")
	// ErrAlreadyInitialized means Init found an existing cluster.
	ErrAlreadyInitialized = errors.New("data directory already holds a PostgreSQL cluster")
)

// Instance is a PostgreSQL cluster on this host. Zero fields take the
// defaults documented on each; only DataDir is required. An Instance holds
// no state of its own, so its methods may be called concurrently, but
// lifecycle calls (Init, Start, Stop) should not race each other.
type Instance struct {
	// DataDir is the PostgreSQL data directory. Init creates it with mode
	// 0700.
	DataDir string
	// Host is the address PostgreSQL listens on, and the one clients on
	// this host connect to; default DefaultHost.
	Host string
	// ListenAddresses is PostgreSQL's listen_addresses when it should
	// listen on more than Host: a comma-separated list of addresses or
	// host names, "*" for all. Default: Host.
	ListenAddresses string
	// SocketDir is the directory of PostgreSQL's Unix socket and its lock
	// file; default the data directory. Start creates it if missing.
	SocketDir string
	// Port is the TCP port; default DefaultPort.
	Port int
	// User is the database superuser role; default DefaultUser.
	User string
	// RunAs is the OS account that runs PostgreSQL when the caller is
	// root; default DefaultRunAs. Ignored when the caller is not root.
	RunAs string
	// BinDir holds initdb, pg_ctl and postgres. Default: the output of
	// `pg_config --bindir`, else /usr/lib/postgresql/15/bin.
	BinDir string
	// NoSync turns fsync off (and skips initdb's final sync). A crash can
	// then lose or corrupt data: use it only for throwaway clusters.
	NoSync bool

	// Role is the server's place in the pair; "" means RoleActive.
	Role Role
	// promoting runs a passive's copy without an upstream, for Promote.
	promoting bool
	// Standby is the passive's replication name (its application_name).
	// On the active it names the synchronous standby every commit waits
	// for; "" means none, and commits do not wait. On the passive it is
	// the name it connects with; "" means DefaultStandby.
	Standby string
	// ReplicationUser is the role the passive replicates as; default
	// DefaultReplicationUser. The active creates it
	// (ConfigureReplication) and admits it from ReplicationFrom. The
	// passive records it, with the active's address, when it is seeded.
	ReplicationUser string
	// Slot is the physical replication slot on the active that keeps the
	// WAL the passive has not received yet; default DefaultSlot.
	Slot string
	// CreateMissingSlot makes InitStandby and Reseed create Slot on the
	// active when it is not there (as the replication role may), rather
	// than fail: for a passive whose slot was dropped while the active
	// runs on.
	CreateMissingSlot bool
	// ReplicationFrom lists the networks (CIDR, such as 10.0.0.7/32) the
	// replication role may connect from; default loopback only
	// (127.0.0.1/32 and ::1/128). Set it on the active to admit the
	// passive's host.
	ReplicationFrom []string
	// ClientsFrom lists the networks (CIDR) User may connect from over
	// TCP, besides loopback, which every role may connect from; default
	// loopback only. Set it when clients on other hosts (a backup reading
	// this cluster over the network) connect as User.
	ClientsFrom []string

	// Parameters are more postgresql.conf settings, name → value (as
	// postgresql.conf has it, unquoted), written with Trustee's own. A
	// setting Trustee manages cannot be among them.
	Parameters map[string]string

	// TLS, when set, encrypts the connections that leave the loopback
	// interface; nil: none does. See [TLS].
	TLS *TLS
}

// TLS is how an Instance encrypts connections beyond loopback.
//
// The server offers TLS with CertFile and KeyFile (ssl = on), and admits
// the replication role from ReplicationFrom and User from ClientsFrom
// over TLS only (hostssl); loopback admits every role either way.
// PostgreSQL re-reads the two files when it reloads its configuration:
// [Instance.Run] makes it reload when they change, [Instance.Reload] on
// demand. When the calling process is root, the run-as account must be
// able to read them, and PostgreSQL accepts the key only when that
// account owns it with mode 0600 or less, or root owns it with mode 0640
// or less (a group of the account reading it, as a Kubernetes Secret
// mounted with mode 0440 and an fsGroup has it).
//
// The passive reaches the active over TLS, verifying the active's
// certificate against ActiveCAFile and its host name (libpq's sslmode
// verify-full): its replication connection, pg_basebackup and
// UpstreamStale. Clients of the server (ConnString, Dump, Load) reach a
// Host beyond loopback the same way, against CAFile.
//
// Paths should be absolute; relative ones are taken from the current
// directory.
type TLS struct {
	// CertFile is the server's PEM certificate, followed by any
	// intermediate certificates clients need to verify it.
	CertFile string
	// KeyFile is its unencrypted PEM private key.
	KeyFile string
	// MinVersion is ssl_min_protocol_version: "TLSv1.2" (the default
	// for "") or "TLSv1.3".
	MinVersion string
	// ActiveCAFile holds the CA certificates that verify the active's
	// certificate; for the passive.
	ActiveCAFile string
	// CAFile holds the CA certificates that verify the server's own
	// certificate when a client reaches Host beyond loopback.
	CAFile string
}

// Status describes the server process of an Instance.
type Status struct {
	Running bool
	PID     int    // postmaster process ID when Running
	Port    int    // port the server listens on (configured port when not running)
	DataDir string // absolute data directory
}

func (i *Instance) host() string {
	if i.Host == "" {
		return DefaultHost
	}
	return i.Host
}

func (i *Instance) port() int {
	if i.Port == 0 {
		return DefaultPort
	}
	return i.Port
}

func (i *Instance) listenAddresses() string {
	if i.ListenAddresses == "" {
		return i.host()
	}
	return i.ListenAddresses
}

// socketDir returns the absolute directory of the Unix socket for the data
// directory dataDir.
func (i *Instance) socketDir(dataDir string) (string, error) {
	if i.SocketDir == "" {
		return dataDir, nil
	}
	if strings.ContainsAny(i.SocketDir, "\x00\n\r,'\\") {
		return "", fmt.Errorf("PostgreSQL socket directory %q: the path must not contain commas, quotes, backslashes or control characters", i.SocketDir)
	}
	return filepath.Abs(i.SocketDir)
}

func (i *Instance) user() string {
	if i.User == "" {
		return DefaultUser
	}
	return i.User
}

func (i *Instance) role() Role {
	if i.Role == "" {
		return RoleActive
	}
	return i.Role
}

func (i *Instance) standbyName() string {
	if i.Standby == "" {
		return DefaultStandby
	}
	return i.Standby
}

func (i *Instance) replicationUser() string {
	if i.ReplicationUser == "" {
		return DefaultReplicationUser
	}
	return i.ReplicationUser
}

func (i *Instance) slot() string {
	if i.Slot == "" {
		return DefaultSlot
	}
	return i.Slot
}

func (i *Instance) replicationFrom() []string {
	if len(i.ReplicationFrom) == 0 {
		return []string{"127.0.0.1/32", "::1/128"}
	}
	return i.ReplicationFrom
}

func (i *Instance) runAs() string {
	if i.RunAs == "" {
		return DefaultRunAs
	}
	return i.RunAs
}

// dataDir returns DataDir as an absolute path.
func (i *Instance) dataDir() (string, error) {
	if i.DataDir == "" {
		return "", errors.New("no PostgreSQL data directory configured")
	}
	if strings.ContainsAny(i.DataDir, "\x00\n\r") {
		return "", errors.New("PostgreSQL data directory path contains control characters")
	}
	return filepath.Abs(i.DataDir)
}

// Initialized reports whether DataDir holds a PostgreSQL cluster.
func (i *Instance) Initialized() bool {
	dir, err := i.dataDir()
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// ConnString returns a postgres:// URL that reaches database as User with
// password over TCP, on Host. Over loopback TLS is disabled; beyond it,
// with TLS set, the server's certificate is verified against TLS.CAFile
// (sslmode verify-full).
func (i *Instance) ConnString(database, password string) string {
	q := url.Values{"sslmode": {"disable"}}
	if ca, ok := i.clientCA(); ok {
		q = url.Values{"sslmode": {"verify-full"}, "sslrootcert": {tlsPath(ca)}}
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(i.user(), password),
		Host:     net.JoinHostPort(i.connectHost(), strconv.Itoa(i.port())),
		Path:     "/" + database,
		RawQuery: q.Encode(),
	}
	if password == "" {
		u.User = url.User(i.user())
	}
	return u.String()
}

// connectHost returns the address clients on this host use: the first
// listen address, or loopback when that is a wildcard.
func (i *Instance) connectHost() string {
	h, _, _ := strings.Cut(i.host(), ",")
	switch h = strings.TrimSpace(h); h {
	case "", "*", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return h
}

// clientCA returns the CA file that verifies the server's certificate,
// and true, when clients reach Host over TLS: TLS is set and Host is
// beyond loopback.
func (i *Instance) clientCA() (string, bool) {
	if i.TLS == nil || isLoopback(i.connectHost()) {
		return "", false
	}
	return i.TLS.CAFile, true
}

// isLoopback reports whether host is reached without leaving this host:
// a loopback address, "localhost", or a Unix socket directory.
func isLoopback(host string) bool {
	if strings.HasPrefix(host, "/") || strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// serverTLS reports whether the server offers TLS.
func (i *Instance) serverTLS() bool {
	return i.TLS != nil && i.TLS.CertFile != "" && i.TLS.KeyFile != ""
}

// tlsMinVersion is ssl_min_protocol_version.
func (i *Instance) tlsMinVersion() string {
	if i.TLS == nil || i.TLS.MinVersion == "" {
		return "TLSv1.2"
	}
	return i.TLS.MinVersion
}

// tlsPath returns p as an absolute path, or "" for "".
func tlsPath(p string) string {
	if p == "" {
		return ""
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now,
// for a throw-away cluster (a restore drill, a benchmark).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
