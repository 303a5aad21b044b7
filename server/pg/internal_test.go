package pg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1":   `'127.0.0.1'`,
		`/srv/it's`:   `'/srv/it''s'`,
		`C:\x`:        `'C:\\x'`,
		"line\nbreak": `'line\nbreak'`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	old := "old 1\nold 2\n"
	if err := os.WriteFile(path, []byte(old+"new 1\nnew 2\nnew 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := logTail(path, int64(len(old)), 2); got != "new 2\nnew 3" {
		t.Errorf("tail since offset = %q", got)
	}
	if got := logTail(path, 1<<20, 2); got != "new 2\nnew 3" {
		t.Errorf("tail with nothing new = %q", got)
	}
	if got := logTail(path, 0, 10); strings.Count(got, "\n") != 4 {
		t.Errorf("whole tail = %q", got)
	}
}

func TestSettings(t *testing.T) {
	i := &Instance{Host: "127.0.0.1", Port: 5000, NoSync: true}
	got := map[string]string{}
	for _, s := range i.settings("/data") {
		got[s.name] = s.value
	}
	for k, want := range map[string]string{
		"port":                    "5000",
		"fsync":                   "off",
		"unix_socket_directories": "'/data'",
		"listen_addresses":        "'127.0.0.1'",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q", k, got[k], want)
		}
	}
}
