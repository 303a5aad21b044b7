package mail_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kmail "trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/test/mailpittest"
)

func send(t *testing.T, s kmail.SMTP) error {
	t.Helper()
	msg := []byte("From: keytrustee@kts01.example.com\r\nTo: finn@example.com\r\nSubject: hello\r\n\r\nbody\r\n")
	return s.Send(context.Background(), "keytrustee@kts01.example.com", []string{"finn@example.com"}, msg)
}

func TestSMTPModes(t *testing.T) {
	t.Run("STARTTLS with AUTH", func(t *testing.T) {
		mta := mailpittest.StartWith(t, mailpittest.Options{TLS: mailpittest.RequireStartTLS, Credentials: map[string]string{"kts": "pw"}})
		s := kmail.SMTP{Addr: mta.SMTPAddr(), TLS: kmail.TLSStartTLS, TLSConfig: mta.TLSConfig(), Username: "kts", Password: "pw"}
		if err := send(t, s); err != nil {
			t.Fatal(err)
		}
		if m := mta.WaitFor(t, 1, 10*time.Second); m[0].Username != "kts" || m[0].Subject != "hello" {
			t.Fatalf("received %+v", m[0])
		}
		s.Password = "wrong"
		if err := send(t, s); err == nil || !strings.Contains(err.Error(), "AUTH") {
			t.Fatalf("a wrong password: %v", err)
		}
		s.Password, s.TLSConfig = "pw", nil // the system's CAs do not know the MTA's certificate
		if err := send(t, s); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Fatalf("an unverifiable certificate: %v", err)
		}
	})
	t.Run("implicit TLS", func(t *testing.T) {
		mta := mailpittest.StartWith(t, mailpittest.Options{TLS: mailpittest.ImplicitTLS})
		if err := send(t, kmail.SMTP{Addr: mta.SMTPAddr(), TLS: kmail.TLSImplicit, TLSConfig: mta.TLSConfig()}); err != nil {
			t.Fatal(err)
		}
		mta.WaitFor(t, 1, 10*time.Second)
	})
	t.Run("no STARTTLS offered", func(t *testing.T) {
		mta := mailpittest.Start(t)
		err := send(t, kmail.SMTP{Addr: mta.SMTPAddr(), TLS: kmail.TLSStartTLS})
		if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
			t.Fatalf("STARTTLS required from a plain MTA: %v", err)
		}
		if got := mta.Messages(t); len(got) != 0 {
			t.Fatal("mail went out in the clear")
		}
		if err := send(t, kmail.SMTP{Addr: mta.SMTPAddr(), TLS: kmail.TLSNone}); err != nil {
			t.Fatalf("TLS none to a loopback MTA: %v", err)
		}
	})
}
