package config

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// equal compares configurations, which hold a list and a map.
func equal(a, b Config) bool { return reflect.DeepEqual(a, b) }

func TestPostgreSQLKeys(t *testing.T) {
	c, err := Parse([]byte(`{"HOSTNAME": "kts-active-0", "REPLICATION_FROM": ["10.244.0.0/16", "fd00::/64"],
		"DB_LISTEN_ADDRESSES": "*", "DB_SOCKET_DIR": "/var/run/postgresql",
		"DB_PARAMETERS": {"shared_buffers": "256MB", "log_min_duration_statement": "1s"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.ReplicationFrom, []string{"10.244.0.0/16", "fd00::/64"}) || c.DBListenAddresses != "*" ||
		c.DBSocketDir != "/var/run/postgresql" || len(c.DBParameters) != 2 || c.DBParameters["shared_buffers"] != "256MB" {
		t.Fatalf("parsed %+v", c)
	}
	dir := t.TempDir()
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Load(dir); err != nil || !equal(got, c) {
		t.Fatalf("Load after Save = %+v, %v", got, err)
	}

	// Missing keys keep what a single host does today.
	d, err := Parse([]byte(`{"HOSTNAME": "kts01.example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.ReplicationFrom, []string{"127.0.0.1/32", "::1/128"}) || !slices.Equal(d.DBClientsFrom, []string{"127.0.0.1/32", "::1/128"}) ||
		d.DBListenAddresses != "" || d.DBSocketDir != "" || len(d.DBParameters) != 0 {
		t.Fatalf("defaults: %+v", d)
	}
	// What the operator sets for a member: the backup Job reads it over
	// the network.
	if k, err := Parse([]byte(`{"HOSTNAME": "h", "DB_CLIENTS_FROM": ["0.0.0.0/0", "::/0"]}`)); err != nil ||
		!slices.Equal(k.DBClientsFrom, []string{"0.0.0.0/0", "::/0"}) {
		t.Fatalf("DB_CLIENTS_FROM: %v, %v", k.DBClientsFrom, err)
	}
	// A user name pg_hba.conf cannot hold is no matter while only loopback
	// admits it.
	if _, err := Parse([]byte(`{"HOSTNAME": "h", "DB_USER": "kts\"owner"}`)); err != nil {
		t.Fatalf("DB_USER with a quote, loopback only: %v", err)
	}
	// What the operator renders for no parameters.
	if n, err := Parse([]byte(`{"HOSTNAME": "h", "DB_PARAMETERS": null}`)); err != nil || n.DBParameters != nil {
		t.Fatalf("DB_PARAMETERS null: %v, %v", n.DBParameters, err)
	}
}

func TestPostgreSQLKeysErrors(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{`"REPLICATION_FROM": []`, "REPLICATION_FROM: lists no network"},
		{`"REPLICATION_FROM": ["10.0.0.7"]`, `REPLICATION_FROM: "10.0.0.7" is not a network in CIDR notation`},
		{`"REPLICATION_FROM": "10.0.0.0/8"`, "REPLICATION_FROM: must be a list of strings, not a string"},
		{`"DB_CLIENTS_FROM": []`, `DB_CLIENTS_FROM: lists no network; list the networks (CIDR) DB_USER "keytrustee" may connect from`},
		{`"DB_CLIENTS_FROM": null`, "DB_CLIENTS_FROM: lists no network"},
		{`"DB_CLIENTS_FROM": ["10.244.0.0/16", "10.0.0.7"]`, `DB_CLIENTS_FROM: "10.0.0.7" is not a network in CIDR notation`},
		{`"DB_CLIENTS_FROM": ["10.0.0.7/8"]`, `DB_CLIENTS_FROM: "10.0.0.7/8" has bits set after its prefix length: write the network "10.0.0.0/8", or "10.0.0.7/32" for the one address`},
		{`"DB_CLIENTS_FROM": ["fd00::7/64"]`, `write the network "fd00::/64", or "fd00::7/128" for the one address`},
		{`"DB_CLIENTS_FROM": ["fe80::1%eth0/64"]`, `DB_CLIENTS_FROM: "fe80::1%eth0/64" is not a network in CIDR notation`},
		{`"DB_CLIENTS_FROM": "0.0.0.0/0"`, "DB_CLIENTS_FROM: must be a list of strings, not a string"},
		{`"DB_CLIENTS_FROM": ["0.0.0.0/0"], "DB_USER": "kts\"owner"`, `DB_USER: "kts\"owner" contains a double quote, which pg_hba.conf cannot hold`},
		{`"DB_LISTEN_ADDRESSES": "a, ,b"`, "DB_LISTEN_ADDRESSES:"},
		{`"DB_LISTEN_ADDRESSES": "'*'"`, "DB_LISTEN_ADDRESSES:"},
		{`"DB_SOCKET_DIR": "/run/a,/run/b"`, "DB_SOCKET_DIR:"},
		{`"DB_PARAMETERS": {"listen_addresses": "*"}`, `DB_PARAMETERS: "listen_addresses" is set by Trustee itself`},
		{`"DB_PARAMETERS": {"listen_addresses": "*"}`, "set DB_LISTEN_ADDRESSES"},
		{`"DB_PARAMETERS": {"synchronous_commit": "off"}`, `"synchronous_commit" is set by Trustee itself`},
		{`"DB_PARAMETERS": {"Fsync": "off"}`, `DB_PARAMETERS: "Fsync" is not a PostgreSQL setting name`},
		{`"DB_PARAMETERS": {"work_mem": "4MB\n fsync = off"}`, `the value of "work_mem" contains a line break`},
		{`"DB_PARAMETERS": {"work_mem": 4}`, "DB_PARAMETERS: must be an object whose values are strings, not an object"},
		{`"DB_PARAMETERS": ["work_mem"]`, "DB_PARAMETERS: must be an object whose values are strings, not an array"},
	} {
		_, err := Parse([]byte(`{"HOSTNAME": "h", ` + tt.conf + `}`))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.conf, err, tt.want)
		}
	}
	many := map[string]string{}
	for i := range maxDBParameters + 1 {
		many["custom.p"+strings.Repeat("x", i)] = "1"
	}
	c := Default("h")
	c.DBParameters = many
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("65 parameters: %v", err)
	}
}

// TestReservedDBParametersMatchTheAPI keeps ReservedDBParameters and the
// names the Kubernetes API refuses in PostgreSQLParameter the same list.
func TestReservedDBParametersMatchTheAPI(t *testing.T) {
	src, err := os.ReadFile("../../api/v1alpha1/keytrusteeserver_types.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^// \+kubebuilder:validation:XValidation:rule="!\(self\.name in \[([^\]]*)\]\)"`).FindSubmatch(src)
	if m == nil {
		t.Fatal("no name rule on PostgreSQLParameter in api/v1alpha1/keytrusteeserver_types.go")
	}
	var api []string
	for _, q := range strings.Split(string(m[1]), ",") {
		api = append(api, strings.Trim(strings.TrimSpace(q), "'"))
	}
	got, want := slices.Sorted(slices.Values(ReservedDBParameters)), slices.Sorted(slices.Values(api))
	if !slices.Equal(got, want) {
		t.Errorf("ReservedDBParameters =\n%v\nthe API refuses\n%v", got, want)
	}
}

func TestDBTLS(t *testing.T) {
	d, err := Parse([]byte(`{"HOSTNAME": "h"}`))
	if err != nil || d.DBTLS || d.DBCAFile != "" {
		t.Fatalf("defaults: DB_TLS %v, DB_CA_FILE %q, %v", d.DBTLS, d.DBCAFile, err)
	}
	if q := d.DBSSLQuery("/state"); q != "sslmode=disable" {
		t.Errorf("DBSSLQuery without DB_TLS = %q", q)
	}

	// A member as the operator renders it: TLS, the server on loopback.
	member, err := Parse([]byte(`{"HOSTNAME": "h", "DB_TLS": true, "SSL_CERTIFICATE": "/etc/kts/tls/tls.crt",
		"SSL_PRIVATE_KEY": "/etc/kts/tls/tls.key", "DB_CLIENTS_FROM": ["0.0.0.0/0"]}`))
	if err != nil || !member.DBTLS {
		t.Fatalf("member: %v, %v", member.DBTLS, err)
	}
	if q := member.DBSSLQuery("/state"); q != "sslmode=disable" {
		t.Errorf("DBSSLQuery of a member over loopback = %q", q)
	}
	if member.DBTLSMinVersion() != "TLSv1.2" {
		t.Errorf("DBTLSMinVersion = %q", member.DBTLSMinVersion())
	}
	member.TLSMinVersion = "TLSv1.3"
	if member.DBTLSMinVersion() != "TLSv1.3" {
		t.Errorf("DBTLSMinVersion for tlsv1.3 = %q", member.DBTLSMinVersion())
	}

	// A backup Job reading a member over the network: verify-full against
	// DB_CA_FILE, or ACTIVE_CA on a passive's configuration.
	job := passiveConfig(Default("h"))
	job.DBTLS, job.DBHost = true, "kts-passive-0.kts-members.ns.svc"
	if err := job.Validate(); err != nil {
		t.Fatalf("passive's Job with ACTIVE_CA: %v", err)
	}
	if q := job.DBSSLQuery("/state"); q != "sslmode=verify-full&sslrootcert=%2Fstate%2Factive-ca.pem" {
		t.Errorf("DBSSLQuery with ACTIVE_CA = %q", q)
	}
	job.DBCAFile = "/etc/kts/tls/ca.crt"
	if verify, ca := job.DBClientTLS("/state"); !verify || ca != "/etc/kts/tls/ca.crt" {
		t.Errorf("DBClientTLS with DB_CA_FILE = %v, %q", verify, ca)
	}
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "/var/run/postgresql"} {
		job.DBHost = h
		if verify, _ := job.DBClientTLS("/state"); verify {
			t.Errorf("DB_HOST %q: TLS over loopback", h)
		}
	}
}

func TestDBTLSErrors(t *testing.T) {
	for _, tt := range []struct{ conf, want string }{
		{`"DB_TLS": "yes"`, "DB_TLS: must be true or false, not a string"},
		{`"DB_TLS": 1`, "DB_TLS: must be true or false, not 1"},
		{`"DB_TLS": true, "DB_HOST": "10.0.0.7"`, `DB_CA_FILE: is empty (and so is ACTIVE_CA), but DB_HOST "10.0.0.7" is beyond loopback`},
		{`"DB_TLS": true, "SSL_PRIVATE_KEY_PASSWORD_SCRIPT": "/bin/echo -n pw"`, "DB_TLS: PostgreSQL cannot read a private key that needs SSL_PRIVATE_KEY_PASSWORD_SCRIPT"},
		{`"DB_TLS": true, "SSL_CERTIFICATE": ""`, "SSL_CERTIFICATE: is empty"},
		{`"DB_CA_FILE": "/etc/kts/tls/ca.crt"`, "DB_CA_FILE: is set, but DB_TLS is false"},
		{`"DB_TLS": true, "DB_CA_FILE": "ca\u0000.crt"`, "DB_CA_FILE: contains a NUL byte"},
		{`"DB_PARAMETERS": {"ssl_min_protocol_version": "TLSv1.3"}`, `"ssl_min_protocol_version" is set by Trustee itself`},
	} {
		_, err := Parse([]byte(`{"HOSTNAME": "h", ` + tt.conf + `}`))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.conf, err, tt.want)
		}
	}
	if _, err := Parse([]byte(`{"HOSTNAME": "h", "DB_TLS": true, "DB_HOST": "10.0.0.7", "DB_CA_FILE": "/ca.crt"}`)); err != nil {
		t.Errorf("DB_HOST beyond loopback with DB_CA_FILE: %v", err)
	}
}
