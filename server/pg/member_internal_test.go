package pg

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenAddressesSocketDirAndParameters(t *testing.T) {
	i := &Instance{Host: "127.0.0.1", ListenAddresses: "*", SocketDir: "/var/run/postgresql",
		Parameters: map[string]string{"work_mem": "8MB", "log_min_duration_statement": "1s"}}
	if err := i.checkSettings(); err != nil {
		t.Fatal(err)
	}
	got := settingsMap(i, nil)
	if got["listen_addresses"] != "'*'" || got["unix_socket_directories"] != "'/var/run/postgresql'" {
		t.Errorf("settings: %v", got)
	}
	if i.connectHost() != "127.0.0.1" {
		t.Errorf("clients connect to %s, want DB_HOST", i.connectHost())
	}
	params := i.parameterSettings()
	if len(params) != 2 || params[0] != (setting{"log_min_duration_statement", "'1s'"}) || params[1] != (setting{"work_mem", "'8MB'"}) {
		t.Errorf("parameterSettings = %v", params)
	}

	for _, p := range []map[string]string{
		{"listen_addresses": "*"}, {"synchronous_commit": "off"}, {"primary_conninfo": "x"},
		{"Work_Mem": "1MB"}, {"work_mem = 1MB\nfsync": "off"}, {"work_mem": "1MB\nfsync = off"},
	} {
		if err := (&Instance{Parameters: p}).checkSettings(); err == nil {
			t.Errorf("parameters %q accepted", p)
		}
	}
	if err := (&Instance{SocketDir: "/a,/b"}).checkSettings(); err == nil {
		t.Error("a socket directory list accepted")
	}
}

// TestManagedSettings checks that checkSettings knows every setting of
// both roles.
func TestManagedSettings(t *testing.T) {
	managed := (&Instance{}).managedSettings()
	for _, i := range []*Instance{{Standby: "s"}, {Role: RolePassive}} {
		for _, s := range i.settings("/data", &upstream{host: "h", port: 1, user: "u"}) {
			if !managed[s.name] {
				t.Errorf("%s is not among the managed settings", s.name)
			}
		}
	}
	for _, name := range []string{"listen_addresses", "unix_socket_directories", "synchronous_standby_names", "primary_slot_name", "hot_standby_feedback"} {
		if !managed[name] {
			t.Errorf("%s is not among the managed settings", name)
		}
	}
}

func TestSocketPathTooLongInSocketDir(t *testing.T) {
	i := &Instance{SocketDir: "/" + strings.Repeat("s", 110)}
	if err := i.checkSocketPath("/data"); err == nil || !strings.Contains(err.Error(), "socket directory path") {
		t.Errorf("long socket directory: %v", err)
	}
	if err := (&Instance{SocketDir: "/run/pg"}).checkSocketPath("/" + strings.Repeat("d", 110)); err != nil {
		t.Errorf("a long data directory with a short socket directory: %v", err)
	}
}

func TestWriteFileLeavesSameContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.conf")
	if err := writeFile(path, "a = 1\n", nil); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := writeFile(path, "a = 1\n", nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("writing the same content replaced the file")
	}
	if err := writeFile(path, "a = 2\n", nil); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "a = 2\n" {
		t.Errorf("content %q", data)
	}
}

func TestScramMatches(t *testing.T) {
	v, err := scramVerifier("pw")
	if err != nil {
		t.Fatal(err)
	}
	if !scramMatches(v, "pw") {
		t.Error("the verifier of pw does not match pw")
	}
	for _, bad := range []string{"", "md5abc", strings.Replace(v, "4096", "x", 1), v[:len(v)-5]} {
		if scramMatches(bad, "pw") {
			t.Errorf("%q matches", bad)
		}
	}
	if scramMatches(v, "pw2") {
		t.Error("the verifier of pw matches pw2")
	}
}

func TestCopyErrorReason(t *testing.T) {
	out := "pg_basebackup: error: connection to server at \"127.0.0.1\", port 5 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?"
	e := &CopyError{Host: "127.0.0.1", Port: 5, Output: out, Hint: strings.TrimPrefix(basebackupHint(out, &Instance{}), "\n"), Err: errors.New("exit status 1")}
	want := `connection to server at "127.0.0.1", port 5 failed: Connection refused (is the active's PostgreSQL running and listening on that address?)`
	if got := e.Reason(); got != want {
		t.Errorf("Reason = %q\nwant %q", got, want)
	}
	if !strings.Contains(e.Error(), "copy the active's cluster from 127.0.0.1:5 with pg_basebackup: exit status 1\n"+out+"\nis the active's") {
		t.Errorf("Error = %q", e.Error())
	}
	if got := (&CopyError{Err: errors.New("signal: killed")}).Reason(); got != "pg_basebackup: signal: killed" {
		t.Errorf("Reason without output = %q", got)
	}
}

func TestLSNAndWALEnd(t *testing.T) {
	if lsn, err := parseLSN("1/3000148"); err != nil || lsn != 1<<32|0x3000148 || formatLSN(lsn) != "1/3000148" {
		t.Errorf("parseLSN = %x, %v", lsn, err)
	}
	if _, err := parseLSN("3000148"); err == nil {
		t.Error("parseLSN accepted a number without /")
	}
	dir := t.TempDir()
	for _, name := range []string{"000000010000000000000003", "000000010000000100000002", "000000010000000000000009.partial", "archive_status"} {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	const seg = 16 << 20
	if end, err := localWALEnd(dir, seg); err != nil || end != 1<<32+3*seg {
		t.Errorf("localWALEnd = %s, %v", formatLSN(end), err)
	}
	if _, err := localWALEnd(t.TempDir(), seg); err == nil {
		t.Error("no WAL: no error")
	}
}

func TestRestoreModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	pass := filepath.Join(dir, passFile)
	os.WriteFile(pass, []byte("x"), 0o600)
	// What a volume's fsGroup does to them.
	os.Chmod(dir, 0o2770)
	os.Chmod(pass, 0o660)
	if err := restoreModes(dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: os.ModeDir | 0o700, pass: 0o600} {
		if fi, _ := os.Stat(path); fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	os.Chmod(dir, 0o750) // PostgreSQL allows group read
	os.Remove(pass)
	if err := restoreModes(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v", fi.Mode().Perm())
	}
}
