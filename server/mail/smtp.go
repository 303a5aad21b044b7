package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"time"
)

// TLS modes of an SMTP connection.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which is required
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // no TLS: only for an MTA on the same host
)

// SMTP sends mail through one MTA.
type SMTP struct {
	Addr      string // host:port
	TLS       string // TLSStartTLS, TLSImplicit or TLSNone
	TLSConfig *tls.Config
	// Username and Password, when set, authenticate (AUTH PLAIN, only over
	// TLS or to a loopback MTA).
	Username, Password string
	Timeout            time.Duration // the whole exchange; default 30 s
}

// Send delivers msg from the envelope sender to the recipients.
func (s SMTP) Send(ctx context.Context, from string, to []string, msg []byte) error {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("SMTP address %q: %w", s.Addr, err)
	}
	tlsCfg := s.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{}
	}
	tlsCfg = tlsCfg.Clone()
	if tlsCfg.ServerName == "" {
		tlsCfg.ServerName = host
	}
	tlsCfg.MinVersion = tls.VersionTLS12
	d := net.Dialer{}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("connect to the MTA at %s: %w", s.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if s.TLS == TLSImplicit {
		conn = tls.Client(conn, tlsCfg)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("SMTP greeting from %s: %w", s.Addr, err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fmt.Errorf("SMTP EHLO: %w", err)
	}
	switch s.TLS {
	case TLSStartTLS:
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("the MTA at %s does not offer STARTTLS; mail is not sent in the clear (set SMTP_TLS to \"tls\" for implicit TLS, or \"none\" for an MTA on this host)", s.Addr)
		}
		if err := c.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("SMTP STARTTLS with %s: %w", s.Addr, err)
		}
	case TLSImplicit, TLSNone:
	default:
		return fmt.Errorf("SMTP TLS mode %q: use %q, %q or %q", s.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("SMTP AUTH as %s: %w", s.Username, err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP: the MTA did not accept the message: %w", err)
	}
	c.Quit() // the message is accepted; a failed QUIT does not undo that
	return nil
}
