package devpair

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/config"
)

// member makes a state directory holding only keytrustee.conf.
func member(t *testing.T, root, name string) string {
	t.Helper()
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := config.Default("localhost").Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestUseMailpitPointsBothServersAtItOnce(t *testing.T) {
	root := t.TempDir()
	a, p := member(t, root, "active"), member(t, root, "passive")
	if err := UseMailpit(a, p); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{a, p} {
		cfg, err := config.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.SMTPHost != "127.0.0.1" || cfg.SMTPPort != MailSMTP || cfg.SMTPTLS != "none" || cfg.ExternalURL != "https://127.0.0.1:11371" {
			t.Errorf("%s: SMTP %s:%d tls %s external %s", d, cfg.SMTPHost, cfg.SMTPPort, cfg.SMTPTLS, cfg.ExternalURL)
		}
	}
	// A second start leaves the files as they are.
	conf := filepath.Join(a, config.FileName)
	old := time.Unix(1, 0)
	if err := os.Chtimes(conf, old, old); err != nil {
		t.Fatal(err)
	}
	if err := UseMailpit(a); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(conf); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("an unchanged configuration was rewritten: %v", err)
	}
}

func TestAdminAPIMakesOneCAAndEachMembersListener(t *testing.T) {
	root := t.TempDir()
	a, p := member(t, root, "active"), member(t, root, "passive")
	if err := adminAPI(root, map[string]int{a: ActiveAdmin, p: PassiveAdmin}); err != nil {
		t.Fatal(err)
	}
	ca, cert, key := AdminFiles(root)
	caPEM, _ := os.ReadFile(ca)
	for _, f := range []string{ca, cert, key} {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}
	for d, port := range map[string]string{a: "11373", p: "11374"} {
		cfg, err := config.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.AdminListenAddress != "127.0.0.1:"+port || cfg.AdminCAFile != filepath.Join("..", "admin-ca.pem") {
			t.Errorf("%s: admin listen %q CA %q", d, cfg.AdminListenAddress, cfg.AdminCAFile)
		}
	}
	// The set is made once: a second start keeps the CA.
	if err := adminAPI(root, map[string]int{a: ActiveAdmin}); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(ca); string(again) != string(caPEM) {
		t.Error("the admin CA was made again")
	}
}

func TestMailLine(t *testing.T) {
	tests := []struct {
		mail bool
		want string
	}{
		{false, "Mail is not sent (no mailpit): queued mail shows with  bin/kts org outbox --confdir d/active\n"},
		{true, "Mail goes to mailpit (SMTP 127.0.0.1:11025); read it with\n  curl http://127.0.0.1:11080/api/v1/messages\n"},
	}
	for _, tt := range tests {
		if got := mailLine(tt.mail, "bin/kts", "d/active"); !strings.HasPrefix(got, tt.want) {
			t.Errorf("mailLine(%v) = %q, want prefix %q", tt.mail, got, tt.want)
		}
	}
}
