package e2e

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/test/browsertest"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/memberpods"
)

// TestKeyRegistrationInABrowser follows contact registration links in
// headless Chromium: paste a key and see its fingerprint; a used link, an
// expired link, a pasted private key and garbage each get a page that says
// what to do. Screenshots are kept as test artifacts.
func TestKeyRegistrationInABrowser(t *testing.T) {
	root := memberpods.RootDir(t)
	home := gnupgHome(t)
	dir := filepath.Join(root, "keytrustee")
	apiPort := harness.FreePort(t)
	url := "https://127.0.0.1:" + itoa(apiPort)
	kts(t, "init", "--confdir", dir, "--hostname", "localhost", "--key-type", "ed25519",
		"--listen", "127.0.0.1:"+itoa(apiPort), "--db-port", itoa(harness.FreePort(t)))
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", dir) })
	startServer(t, dir)
	kts(t, "org", "add", "-n", "acme", "-c", "finn@example.com,jake@example.com,bmo@example.com", "--confdir", dir)
	links := queuedLinks(t, dir)

	b := browsertest.Start(t)
	key := gpg(t, home, "--batch", "--armor", "--export", "John Doe")
	fpr := regexp.MustCompile(`fpr:+([0-9A-F]{40}):`).FindStringSubmatch(gpg(t, home, "--batch", "--with-colons", "--fingerprint", "John Doe"))[1]

	p := b.Open(t, strings.Replace(links["finn@example.com"], "https://localhost:11371", url, 1))
	if p.Status(t) != 200 || !strings.HasPrefix(p.Header(t, "Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("the link's page: %d, CSP %q", p.Status(t), p.Header(t, "Content-Security-Policy"))
	}
	if got := p.Text(t, "#server-key-id"); !strings.HasPrefix(got, "255E/") {
		t.Fatalf("the page offers server key %q", got)
	}
	p.Screenshot(t, "1-form")
	p.Fill(t, "#key", key)
	p.Click(t, "#submit")
	if p.Status(t) != 200 || !strings.Contains(p.Text(t, "#fingerprint"), fpr) {
		t.Fatalf("after submitting the key: %d %q", p.Status(t), p.Text(t, "main"))
	}
	p.Screenshot(t, "2-registered")

	p = b.Open(t, strings.Replace(links["finn@example.com"], "https://localhost:11371", url, 1))
	if p.Status(t) != 410 || !strings.Contains(p.Text(t, "#error"), "was used") || !strings.Contains(p.Text(t, "#help"), "keytrustee-orgtool add") {
		t.Fatalf("a used link: %d %q", p.Status(t), p.Text(t, "main"))
	}
	p.Screenshot(t, "3-used")

	private := gpg(t, home, "--batch", "--armor", "--pinentry-mode", "loopback", "--passphrase", "", "--export-secret-keys", "John Doe")
	for i, tc := range []struct{ paste, want string }{
		{private, "This is a private key"},
		{"hello, this is not a key", "whole block"},
		{strings.Split(key, "\n=")[0], "whole block"},
	} {
		p = b.Open(t, strings.Replace(links["jake@example.com"], "https://localhost:11371", url, 1))
		p.Fill(t, "#key", tc.paste)
		p.Click(t, "#submit")
		if p.Status(t) != 400 || !strings.Contains(p.Text(t, "#error"), tc.want) {
			t.Fatalf("pasting %.30q: %d %q", tc.paste, p.Status(t), p.Text(t, "main"))
		}
		p.Screenshot(t, "4-refused-"+itoa(i))
	}

	expireLink(t, dir, "bmo@example.com")
	p = b.Open(t, strings.Replace(links["bmo@example.com"], "https://localhost:11371", url, 1))
	if p.Status(t) != 410 || !strings.Contains(p.Text(t, "#error"), "expired") {
		t.Fatalf("an expired link: %d %q", p.Status(t), p.Text(t, "main"))
	}
	p.Screenshot(t, "5-expired")
}

// queuedLinks reads the registration links from the queued mail (no MTA
// is configured: the mail waits in the outbox).
func queuedLinks(t *testing.T, dir string) map[string]string {
	t.Helper()
	conn := dbConn(t, dir)
	rows, err := conn.Query(context.Background(), `SELECT recipient, body FROM outbox WHERE sent_at IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]string{}
	for rows.Next() {
		var to, body string
		rows.Scan(&to, &body)
		links[to] = regexp.MustCompile(`https://\S+/\?q=\S+`).FindString(body)
	}
	if len(links) != 3 {
		t.Fatalf("queued links: %v", links)
	}
	return links
}

func expireLink(t *testing.T, dir, contact string) {
	t.Helper()
	if _, err := dbConn(t, dir).Exec(context.Background(), `UPDATE contact_links SET expires_at = now() - interval '1 minute' WHERE contact = $1`, contact); err != nil {
		t.Fatal(err)
	}
}

func dbConn(t *testing.T, dir string) *pgx.Conn {
	t.Helper()
	st, err := confdir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	conn, err := pgx.Connect(context.Background(), st.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
