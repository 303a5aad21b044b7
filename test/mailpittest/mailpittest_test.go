package mailpittest

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/test/toolcache"
)

// message is an RFC 5322 message; body should have CRLF line ends.
func message(from, to, subject, body string) string {
	header := fmt.Sprintf("From: Sender <%s>\nTo: <%s>\nSubject: %s\nDate: Mon, 02 Jan 2006 15:04:05 +0000\nMessage-ID: <%s@test.invalid>\n\n",
		from, to, subject, strings.ReplaceAll(subject, " ", "-"))
	return strings.ReplaceAll(header, "\n", "\r\n") + body
}

// send sends msg over c (after HELO/STARTTLS/AUTH as the caller did).
func send(c *smtp.Client, from string, to []string, msg string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("RCPT: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of DATA: %w", err)
	}
	return c.Quit()
}

func dial(t *testing.T, mp *Server) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(mp.SMTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestPlainSMTP(t *testing.T) {
	t.Parallel()
	mp := Start(t)
	if h, p := mp.SMTPHost(), mp.SMTPPort(); h != "127.0.0.1" || p == 0 || mp.SMTPAddr() != fmt.Sprintf("%s:%d", h, p) {
		t.Fatalf("SMTPAddr %q, host %q, port %d", mp.SMTPAddr(), h, p)
	}
	if mp.TLSConfig() != nil || mp.CertFile() != "" {
		t.Error("TLSConfig or CertFile set without TLS")
	}

	// The body has what a signature covers and SMTP could spoil: trailing
	// white space, a line that must be dot-stuffed, no final line end.
	body := "Plain text line.\r\nTrailing space   \r\n.leading dot\r\n\r\n--\r\nend"
	msg := message("kts@example.com", "admin@example.com", "Hello Mailpit", body)
	rcpts := []string{"admin@example.com", "hidden@example.com"}
	if err := smtp.SendMail(mp.SMTPAddr(), nil, "bounce@example.com", rcpts, []byte(msg)); err != nil {
		t.Fatal(err)
	}

	ms := mp.WaitFor(t, 1, 10*time.Second)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	sum := ms[0]
	if sum.Subject != "Hello Mailpit" || sum.From != "kts@example.com" ||
		!slices.Equal(sum.To, []string{"admin@example.com"}) {
		t.Errorf("summary: %+v", sum)
	}
	if got := sum.Recipients(); !slices.Equal(got, rcpts) {
		t.Errorf("recipients %q, want %q", got, rcpts)
	}
	if sum.Username != "" {
		t.Errorf("username %q without AUTH", sum.Username)
	}

	full := mp.Message(t, sum.ID)
	if full.Subject != "Hello Mailpit" || full.ReturnPath != "bounce@example.com" ||
		full.MessageID != "Hello-Mailpit@test.invalid" {
		t.Errorf("message: %+v", full)
	}
	if !strings.Contains(full.Text, "Plain text line.") || !strings.Contains(full.Text, ".leading dot") {
		t.Errorf("text %q", full.Text)
	}
	if want := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC); !full.Date.Equal(want) {
		t.Errorf("date %v, want %v", full.Date, want)
	}
	if got := full.Headers["Subject"]; !slices.Equal(got, []string{"Hello Mailpit"}) {
		t.Errorf("Subject header %q", got)
	}

	raw := mp.Raw(t, sum.ID)
	_, rawBody, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("raw message has no header end:\n%s", raw)
	}
	// net/smtp ends DATA with a CRLF the message lacked.
	if got := strings.TrimSuffix(string(rawBody), "\r\n"); got != body {
		t.Errorf("raw body\n%q\nwant\n%q", got, body)
	}
	if !bytes.Contains(raw, []byte("\r\nSubject: Hello Mailpit\r\n")) {
		t.Errorf("raw header lacks the subject:\n%s", raw)
	}
}

func TestAuthAcceptAny(t *testing.T) {
	t.Parallel()
	mp := Start(t)
	// net/smtp allows PLAIN without TLS to 127.0.0.1 only.
	auth := smtp.PlainAuth("", "kts-mailer", "any password", mp.SMTPHost())
	msg := message("kts@example.com", "a@example.com", "With AUTH", "body\r\n")
	if err := smtp.SendMail(mp.SMTPAddr(), auth, "kts@example.com", []string{"a@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	// Without AUTH too: it is optional.
	msg = message("kts@example.com", "a@example.com", "Without AUTH", "body\r\n")
	if err := smtp.SendMail(mp.SMTPAddr(), nil, "kts@example.com", []string{"a@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ms := mp.WaitFor(t, 2, 10*time.Second)
	if len(ms) != 2 || ms[0].Subject != "With AUTH" || ms[1].Subject != "Without AUTH" {
		t.Fatalf("messages (oldest first): %+v", ms)
	}
	if ms[0].Username != "kts-mailer" || ms[1].Username != "" {
		t.Errorf("usernames %q, %q", ms[0].Username, ms[1].Username)
	}
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	mp := StartWith(t, Options{Credentials: map[string]string{"alice": "s3cret {SHA}x"}})
	msg := message("kts@example.com", "a@example.com", "Authenticated", "body\r\n")
	to := []string{"a@example.com"}

	err := smtp.SendMail(mp.SMTPAddr(), nil, "kts@example.com", to, []byte(msg))
	if smtpCode(err) != 530 {
		t.Errorf("without AUTH: %v, want 530", err)
	}
	bad := smtp.PlainAuth("", "alice", "wrong", mp.SMTPHost())
	err = smtp.SendMail(mp.SMTPAddr(), bad, "kts@example.com", to, []byte(msg))
	if smtpCode(err) != 535 {
		t.Errorf("wrong password: %v, want 535", err)
	}
	good := smtp.PlainAuth("", "alice", "s3cret {SHA}x", mp.SMTPHost())
	if err := smtp.SendMail(mp.SMTPAddr(), good, "kts@example.com", to, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	ms := mp.WaitFor(t, 1, 10*time.Second)
	if len(ms) != 1 || ms[0].Username != "alice" {
		t.Fatalf("messages: %+v", ms)
	}
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	mp := StartWith(t, Options{TLS: StartTLS})
	if mp.CertFile() == "" || mp.TLSConfig() == nil {
		t.Fatal("no certificate for STARTTLS")
	}

	c := dial(t, mp)
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	// An untrusting client refuses the test certificate...
	if err := c.StartTLS(&tls.Config{ServerName: "127.0.0.1"}); err == nil {
		t.Fatal("STARTTLS verified the self-signed certificate against the system roots")
	}

	// ...one with TLSConfig trusts it.
	c = dial(t, mp)
	if err := c.StartTLS(mp.TLSConfig()); err != nil {
		t.Fatal(err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		t.Fatal("no TLS after STARTTLS")
	}
	if err := c.Auth(smtp.PlainAuth("", "tls-user", "pw", mp.SMTPHost())); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "kts@example.com", []string{"a@example.com"}, message("kts@example.com", "a@example.com", "Over STARTTLS", "body\r\n")); err != nil {
		t.Fatal(err)
	}

	// STARTTLS is optional in this mode.
	c = dial(t, mp)
	if err := send(c, "kts@example.com", []string{"a@example.com"}, message("kts@example.com", "a@example.com", "In clear", "body\r\n")); err != nil {
		t.Fatal(err)
	}

	ms := mp.WaitFor(t, 2, 10*time.Second)
	if ms[0].Subject != "Over STARTTLS" || ms[0].Username != "tls-user" || ms[1].Subject != "In clear" {
		t.Fatalf("messages: %+v", ms)
	}
}

func TestRequireStartTLS(t *testing.T) {
	t.Parallel()
	mp := StartWith(t, Options{TLS: RequireStartTLS, Credentials: map[string]string{"bob": "pw"}})
	c := dial(t, mp)
	if err := c.Mail("kts@example.com"); smtpCode(err) != 530 {
		t.Fatalf("MAIL before STARTTLS: %v, want 530", err)
	}
	c = dial(t, mp)
	if err := c.StartTLS(mp.TLSConfig()); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "bob", "pw", mp.SMTPHost())); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "kts@example.com", []string{"a@example.com"}, message("kts@example.com", "a@example.com", "Required TLS", "body\r\n")); err != nil {
		t.Fatal(err)
	}
	if ms := mp.WaitFor(t, 1, 10*time.Second); ms[0].Username != "bob" {
		t.Fatalf("messages: %+v", ms)
	}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	mp := StartWith(t, Options{TLS: ImplicitTLS})
	conn, err := tls.Dial("tcp", mp.SMTPAddr(), mp.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, mp.SMTPHost())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered inside TLS")
	}
	if err := c.Auth(smtp.PlainAuth("", "smtps", "pw", mp.SMTPHost())); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "kts@example.com", []string{"a@example.com"}, message("kts@example.com", "a@example.com", "SMTPS", "body\r\n")); err != nil {
		t.Fatal(err)
	}
	if ms := mp.WaitFor(t, 1, 10*time.Second); ms[0].Subject != "SMTPS" {
		t.Fatalf("messages: %+v", ms)
	}

	// A plain client gets nowhere.
	plain, err := net.DialTimeout("tcp", mp.SMTPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_ = plain.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := smtp.NewClient(plain, mp.SMTPHost()); err == nil {
		t.Error("plain SMTP greeting on the implicit-TLS port")
	}
}

func TestOwnCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := writeTestCert(cert, key); err != nil {
		t.Fatal(err)
	}
	mp := StartWith(t, Options{CertFile: cert, KeyFile: key})
	if mp.TLS() != StartTLS || mp.CertFile() != cert {
		t.Fatalf("mode %v, cert %q", mp.TLS(), mp.CertFile())
	}
	c := dial(t, mp)
	if err := c.StartTLS(mp.TLSConfig()); err != nil {
		t.Fatal(err)
	}
	st, _ := c.TLSConnectionState()
	if len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "mailpittest SMTP server" {
		t.Fatalf("peer certificates: %v", st.PeerCertificates)
	}
}

func TestStopStart(t *testing.T) {
	t.Parallel()
	mp := Start(t)
	addr, url := mp.SMTPAddr(), mp.URL()
	to := []string{"a@example.com"}
	if err := smtp.SendMail(addr, nil, "kts@example.com", to, []byte(message("kts@example.com", to[0], "Before", "1\r\n"))); err != nil {
		t.Fatal(err)
	}
	mp.WaitFor(t, 1, 10*time.Second)

	if err := mp.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := mp.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("SMTP port answers after Stop")
	}
	if _, err := mp.List(); err == nil {
		t.Fatal("API answers after Stop")
	}

	// A sender that retries, as a mail queue does, while Mailpit comes
	// back later; WaitFor waits through the outage.
	started := make(chan error, 1)
	go func() {
		time.Sleep(500 * time.Millisecond)
		started <- mp.Start()
	}()
	sent := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := smtp.SendMail(addr, nil, "kts@example.com", to, []byte(message("kts@example.com", to[0], "After", "2\r\n")))
			if err == nil || time.Now().After(deadline) {
				sent <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	ms := mp.WaitFor(t, 2, 30*time.Second)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if mp.SMTPAddr() != addr || mp.URL() != url {
		t.Errorf("addresses changed: %s %s, were %s %s", mp.SMTPAddr(), mp.URL(), addr, url)
	}
	if len(ms) != 2 || ms[0].Subject != "Before" || ms[1].Subject != "After" {
		t.Fatalf("messages: %+v", ms)
	}
	if err := mp.Start(); err == nil {
		t.Error("Start of a running server succeeded")
	}

	mp.DeleteAll(t)
	if ms := mp.Messages(t); len(ms) != 0 {
		t.Fatalf("%d messages after DeleteAll", len(ms))
	}
}

func TestWrapperVersion(t *testing.T) {
	root, err := toolcache.RepoRoot("hack/mailpit/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	v, err := toolcache.WrapperVersion(filepath.Join(root, "hack", "mailpit", "go.mod"), mailpitModule)
	if err != nil || !strings.HasPrefix(v, "v1.") {
		t.Fatalf("version %q, %v", v, err)
	}
	p, err := CachePath(v)
	if err != nil || !strings.HasSuffix(p, filepath.Join("trustee", "mailpit-"+v, "mailpit")) {
		t.Fatalf("cache path %q, %v", p, err)
	}
}
