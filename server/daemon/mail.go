package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/mail"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
	"trustee.dev/trustee/server/tlsconf"
)

// mailEvery is how often the outbox is looked at.
const mailEvery = 2 * time.Second

// mailBackoff is how long a mail waits after its n-th failed attempt:
// 10 s, doubling, at most an hour. Mail is never dropped.
func mailBackoff(n int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// mailer sends the outbox's mail, signed by the server's key and encrypted
// to recipients who registered one.
type mailer struct {
	db       *store.Store
	st       *confdir.State
	smtp     mail.SMTP
	log      *slog.Logger
	sent     prometheus.Counter
	failures prometheus.Counter
	depth    prometheus.GaugeFunc
}

// newMailer prepares the mailer of a state directory; nil when no SMTP_HOST
// is configured (mail then waits in the outbox).
func newMailer(db *store.Store, st *confdir.State, log *slog.Logger) (*mailer, error) {
	cfg := st.Config
	if cfg.SMTPHost == "" {
		return nil, nil
	}
	m := &mailer{db: db, st: st, log: log,
		smtp: mail.SMTP{Addr: net.JoinHostPort(cfg.SMTPHost, strconv.Itoa(cfg.SMTPPort)), TLS: cfg.SMTPTLS, Username: cfg.SMTPUser},
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "kts_mail_sent_total", Help: "Mails the MTA accepted."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "kts_mail_send_failures_total",
			Help: "Attempts to send a mail that failed (the mail stays queued)."}),
	}
	m.depth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kts_mail_queue_depth", Help: "Mails waiting in the outbox."}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, err := db.MailQueueDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.SMTPCAFile != "" {
		pem, err := os.ReadFile(cfg.Path(st.Dir, cfg.SMTPCAFile))
		if err != nil {
			return nil, fmt.Errorf("SMTP_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SMTP_CA_FILE %s holds no PEM certificate", cfg.SMTPCAFile)
		}
		tlsCfg.RootCAs = pool
	}
	m.smtp.TLSConfig = tlsCfg
	switch {
	case cfg.SMTPPasswordFile != "":
		pw, err := os.ReadFile(cfg.Path(st.Dir, cfg.SMTPPasswordFile))
		if err != nil {
			return nil, fmt.Errorf("SMTP_PASSWORD_FILE: %w", err)
		}
		m.smtp.Password = strings.TrimRight(string(pw), "\r\n")
	case cfg.SMTPPasswordScript != "":
		pw, err := tlsconf.RunSecretScript("SMTP_PASSWORD_SCRIPT", "the SMTP password", cfg.SMTPPasswordScript)
		if err != nil {
			return nil, err
		}
		m.smtp.Password = string(pw)
	}
	return m, nil
}

func (m *mailer) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sent, m.failures, m.depth}
}

// run sends due mail until ctx ends.
func (m *mailer) run(ctx context.Context) {
	t := time.NewTicker(mailEvery)
	defer t.Stop()
	for {
		for {
			sent, failed, err := m.db.SendDueMail(ctx, 20, func(msg store.Mail) error { return m.send(ctx, msg) }, mailBackoff)
			if err != nil && ctx.Err() == nil {
				m.log.Warn("mail outbox", "err", err)
			}
			m.sent.Add(float64(sent))
			m.failures.Add(float64(failed))
			if err != nil || sent+failed < 20 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// send composes and sends one queued mail.
func (m *mailer) send(ctx context.Context, q store.Mail) error {
	cfg := m.st.Config
	var to *openpgp.PublicKey
	if armored, err := m.db.ContactKey(ctx, q.Recipient); err != nil {
		return err
	} else if armored != nil {
		if to, err = openpgp.ParsePublic(armored); err != nil {
			// An expired or revoked key: the mail goes signed only.
			m.log.Warn("mail: the recipient's registered key is not usable; sending signed only", "recipient", q.Recipient, "err", err)
			to = nil
		}
	}
	msg, err := mail.Compose(mail.Message{From: cfg.MailFrom(), To: q.Recipient, Subject: q.Subject, Text: q.Body,
		Date: time.Now(), Host: cfg.Hostname}, m.st.ServerKey, to)
	if err != nil {
		return err
	}
	if err := m.smtp.Send(ctx, cfg.MailFrom(), []string{q.Recipient}, msg); err != nil {
		m.log.Warn("mail not sent; it stays queued", "recipient", q.Recipient, "subject", q.Subject, "attempt", q.Attempts+1, "err", err)
		return err
	}
	m.log.Info("mail sent", "recipient", q.Recipient, "subject", q.Subject, "encrypted", to != nil)
	return nil
}
