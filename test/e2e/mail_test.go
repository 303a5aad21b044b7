package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/mailpittest"
	"trustee.dev/trustee/test/memberpods"
)

// TestMailAsUsersRunIt sends the server's mail through a real MTA
// (mailpit, STARTTLS and AUTH): the contact registration mail with its
// one-time link, the key registered at that link, client registration mail
// encrypted to that key and signed by the server (checked with real gpg),
// and mail that waits while the MTA is down and arrives when it is back.
func TestMailAsUsersRunIt(t *testing.T) {
	root := memberpods.RootDir(t)
	mta := mailpittest.StartWith(t, mailpittest.Options{TLS: mailpittest.StartTLS, Credentials: map[string]string{"kts": "smtp-secret"}})
	home := gnupgHome(t) // John Doe's key: the contact's
	dir := filepath.Join(root, "keytrustee")
	apiPort := harness.FreePort(t)
	url := "https://127.0.0.1:" + itoa(apiPort)
	kts(t, "init", "--confdir", dir, "--hostname", "kts01.example.com", "--key-type", "ed25519",
		"--listen", "127.0.0.1:"+itoa(apiPort), "--db-port", itoa(harness.FreePort(t)))
	pwFile := filepath.Join(root, "smtp.password")
	os.WriteFile(pwFile, []byte("smtp-secret\n"), 0o600)
	cfg, err := config.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SMTPHost, cfg.SMTPPort, cfg.SMTPTLS, cfg.SMTPCAFile = mta.SMTPHost(), mta.SMTPPort(), "starttls", mta.CertFile()
	cfg.SMTPUser, cfg.SMTPPasswordFile, cfg.ExternalURL = "kts", pwFile, url
	if err := cfg.Save(dir); err != nil {
		t.Fatal(err)
	}
	kts(t, "db", "init", "--confdir", dir)
	kts(t, "db", "start", "--confdir", dir)
	t.Cleanup(func() { runTool(t, "", "kts", "db", "stop", "--confdir", dir) })
	startServer(t, dir)

	// Adding contacts mails each a link that works once, for 12 hours.
	added := time.Now()
	kts(t, "org", "add", "-n", "acme", "-c", "finn@example.com,jake@example.com", "--confdir", dir)
	msgs := mta.WaitFor(t, 2, 30*time.Second)
	links := map[string]string{}
	for _, m := range msgs {
		full := mta.Message(t, m.ID)
		if full.Subject != "KeyTrustee Contact Registration" || full.From != "keytrustee@kts01.example.com" || len(full.To) != 1 || full.Username != "kts" {
			t.Fatalf("contact mail: %+v", full)
		}
		link := regexp.MustCompile(regexp.QuoteMeta(url) + `/\?q=[A-Za-z0-9_-]{43}`).FindString(full.Text)
		exp := regexp.MustCompile(`expire in 12 hours, at (.+ UTC)`).FindStringSubmatch(full.Text)
		if link == "" || exp == nil {
			t.Fatalf("the mail to %v lacks the link or its expiry:\n%s", full.To, full.Text)
		}
		at, err := time.Parse("Mon Jan _2 15:04:05 2006 MST", exp[1])
		if err != nil || at.Sub(added) < 12*time.Hour-time.Minute || at.Sub(added) > 12*time.Hour+time.Minute {
			t.Fatalf("link expires %q (%v); want 12 hours from now", exp[1], err)
		}
		links[full.To[0]] = link
		verifySigned(t, home, dir, mta.Raw(t, m.ID))
	}

	// Finn registers John Doe's key at his link (the page itself is tested
	// in a browser by TestKeyRegistrationInABrowser); the link then is used.
	contactKey := gpg(t, home, "--batch", "--armor", "--export", "John Doe")
	if code := postForm(t, url+"/", "q="+strings.TrimPrefix(links["finn@example.com"], url+"/?q=")+"&key="+neturl.QueryEscape(contactKey)); code != 200 {
		t.Fatalf("registering Finn's key answered %d", code)
	}
	if code := httpStatus(t, links["finn@example.com"]); code != 410 {
		t.Fatalf("a used link answers %d, want 410", code)
	}
	var orgs map[string]struct {
		KeyInfo map[string]string `json:"key_info"`
	}
	json.Unmarshal([]byte(kts(t, "org", "list", "--confdir", dir)), &orgs)
	if fpr := orgs["acme"].KeyInfo["finn@example.com"]; len(fpr) != 40 || len(orgs["acme"].KeyInfo) != 1 {
		t.Fatalf("org list key_info after Finn registered a key: %v", orgs["acme"].KeyInfo)
	}

	// A client registers without the code: Finn's mail is encrypted to his
	// key and signed by the server; Jake's is signed.
	mta.DeleteAll(t)
	runTool(t, "", "keytrustee-orgtool", "set-auth", "-n", "acme", "-s", "the-code", "--confdir", dir)
	out := kts(t, "client", "register", "--dir", filepath.Join(root, "client"), "--server", url, "--org", "acme", "--skip-ssl-check")
	fpr := regexp.MustCompile(`[0-9A-F]{40}`).FindString(out)
	msgs = mta.WaitFor(t, 2, 30*time.Second)
	for _, m := range msgs {
		raw := mta.Raw(t, m.ID)
		switch m.To[0] {
		case "finn@example.com":
			if bytes.Contains(raw, []byte(fpr)) || !bytes.Contains(raw, []byte("multipart/encrypted")) {
				t.Fatal("the mail to a contact with a key is not encrypted")
			}
			text := decryptVerified(t, home, dir, raw)
			if !strings.Contains(text, "WAITING FOR APPROVAL") || !strings.Contains(text, "enable-client --fingerprint "+fpr) {
				t.Fatalf("decrypted client mail:\n%s", text)
			}
		case "jake@example.com":
			if !bytes.Contains(raw, []byte("multipart/signed")) || !bytes.Contains(raw, []byte(fpr)) {
				t.Fatal("the mail to a contact without a key is not a signed mail naming the client")
			}
			verifySigned(t, home, dir, raw)
		default:
			t.Fatalf("mail to %v", m.To)
		}
	}

	// The MTA goes away: the operation succeeds, its mail waits, visible,
	// and arrives once the MTA is back.
	mta.DeleteAll(t)
	if err := mta.Stop(); err != nil {
		t.Fatal(err)
	}
	kts(t, "org", "add", "-n", "acme", "-c", "marceline@example.com", "--confdir", dir)
	waitFor(t, "a failed attempt shown in the outbox", func() bool {
		var pending []map[string]any
		json.Unmarshal([]byte(kts(t, "org", "outbox", "--confdir", dir)), &pending)
		return len(pending) == 1 && pending[0]["recipient"] == "marceline@example.com" && pending[0]["last_error"] != nil
	})
	if m := curl(t, "-k", url+"/metrics"); !strings.Contains(m, "kts_mail_queue_depth 1") || !regexp.MustCompile(`kts_mail_send_failures_total [1-9]`).MatchString(m) {
		t.Fatalf("metrics while the MTA is down:\n%s", grepLines(m, "kts_mail"))
	}
	if err := mta.Start(); err != nil {
		t.Fatal(err)
	}
	// The first retry comes 10 s after the failure.
	if got := mta.WaitFor(t, 1, 60*time.Second); got[0].To[0] != "marceline@example.com" {
		t.Fatalf("after the MTA came back: %+v", got)
	}
	if out := kts(t, "org", "outbox", "--confdir", dir); strings.TrimSpace(out) != "[]" {
		t.Fatalf("outbox after delivery: %s", out)
	}
}

// verifySigned checks a multipart/signed mail's signature with real gpg
// against the server's public key.
func verifySigned(t *testing.T, home, dir string, raw []byte) {
	t.Helper()
	signed, sig := signedParts(t, raw)
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "signed"), signed, 0o600)
	os.WriteFile(filepath.Join(work, "sig.asc"), sig, 0o600)
	importServerKey(t, home, dir)
	cmd := exec.Command("gpg", "--batch", "--status-fd", "1", "--verify", filepath.Join(work, "sig.asc"), filepath.Join(work, "signed"))
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "[GNUPG:] GOODSIG") {
		t.Fatalf("gpg --verify of the mail: %v\n%s", err, out)
	}
}

// signedParts returns a multipart/signed mail's signed entity and signature.
func signedParts(t *testing.T, raw []byte) (signed, sig []byte) {
	t.Helper()
	b := regexp.MustCompile(`boundary="([^"]+)"`).FindSubmatch(raw)
	if b == nil {
		t.Fatalf("no MIME boundary in\n%s", raw)
	}
	parts := bytes.Split(raw, append([]byte("\r\n--"), b[1]...))
	if len(parts) != 4 {
		t.Fatalf("%d parts in a signed mail", len(parts)-2)
	}
	signed = bytes.TrimPrefix(parts[1], []byte("\r\n"))
	sig = parts[2][bytes.Index(parts[2], []byte("-----BEGIN PGP SIGNATURE-----")):]
	return signed, sig
}

// decryptVerified decrypts a multipart/encrypted mail with real gpg and the
// contact's secret key, checks the server's signature inside, and returns
// the text.
func decryptVerified(t *testing.T, home, dir string, raw []byte) string {
	t.Helper()
	i := bytes.Index(raw, []byte("-----BEGIN PGP MESSAGE-----"))
	j := bytes.Index(raw, []byte("-----END PGP MESSAGE-----"))
	if i < 0 || j < 0 {
		t.Fatal("no OpenPGP message in the encrypted mail")
	}
	importServerKey(t, home, dir)
	cmd := exec.Command("gpg", "--batch", "--status-fd", "2", "--decrypt")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	cmd.Stdin = bytes.NewReader(raw[i : j+len("-----END PGP MESSAGE-----")])
	var stdout, status bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &status
	if err := cmd.Run(); err != nil || !strings.Contains(status.String(), "[GNUPG:] GOODSIG") || !strings.Contains(status.String(), "DECRYPTION_OKAY") {
		t.Fatalf("gpg --decrypt of the mail: %v\n%s", err, status.String())
	}
	return strings.ReplaceAll(stdout.String(), "=\r\n", "")
}

// importServerKey imports the server's public key into the GnuPG home.
func importServerKey(t *testing.T, home, dir string) {
	t.Helper()
	st, err := confdir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cmd := exec.Command("gpg", "--batch", "--import")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
	cmd.Stdin = bytes.NewReader(st.ServerKey.Public().Armor())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import of the server key: %v\n%s", err, out)
	}
}

func postForm(t *testing.T, url, body string) int {
	t.Helper()
	out, _ := exec.Command("curl", "--silent", "--insecure", "--output", "/dev/null", "--write-out", "%{http_code}",
		"--data-binary", body, "-H", "Content-Type: application/x-www-form-urlencoded", url).Output()
	code := 0
	fmt.Sscan(string(out), &code)
	return code
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
