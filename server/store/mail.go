package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"trustee.dev/trustee/server/audit"
)

// Mail is a queued notification mail.
type Mail struct {
	ID          int64     `json:"id"`
	Recipient   string    `json:"recipient"`
	Subject     string    `json:"subject"`
	Body        string    `json:"-"`
	Created     time.Time `json:"created"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	LastError   string    `json:"last_error,omitempty"`
}

// QueueMail adds a mail to the outbox.
func (s *Store) QueueMail(ctx context.Context, recipient, subject, body string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO outbox(recipient, subject, body) VALUES ($1, $2, $3)`, recipient, subject, body)
	return err
}

// PendingMail lists the mail not sent yet, oldest first, without bodies.
func (s *Store) PendingMail(ctx context.Context) ([]Mail, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, recipient, subject, '', created_at, attempts, next_attempt_at, last_error
		FROM outbox WHERE sent_at IS NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanMail)
}

func scanMail(r pgx.CollectableRow) (Mail, error) {
	var m Mail
	err := r.Scan(&m.ID, &m.Recipient, &m.Subject, &m.Body, &m.Created, &m.Attempts, &m.NextAttempt, &m.LastError)
	return m, err
}

// SendDueMail takes up to limit mails whose time has come and passes each
// to send, in one transaction that keeps other senders off them. A mail
// sent is marked so and its body wiped; one that failed is retried after
// backoff(attempts so far).
func (s *Store) SendDueMail(ctx context.Context, limit int, send func(Mail) error, backoff func(attempts int) time.Duration) (sent, failed int, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, recipient, subject, body, created_at, attempts, next_attempt_at, last_error
			FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= now() ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, scanMail)
		if err != nil {
			return err
		}
		for _, m := range due {
			if err := send(m); err != nil {
				failed++
				_, err = tx.Exec(ctx, `UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + $3::interval WHERE id = $1`,
					m.ID, err.Error(), fmt.Sprintf("%d milliseconds", backoff(m.Attempts+1).Milliseconds()))
				if err != nil {
					return err
				}
				continue
			}
			sent++
			if _, err := tx.Exec(ctx, `UPDATE outbox SET sent_at = now(), body = '', attempts = attempts + 1, last_error = '' WHERE id = $1`, m.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return sent, failed, err
}

// MailQueueDepth counts the mail not sent yet.
func (s *Store) MailQueueDepth(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE sent_at IS NULL`).Scan(&n)
	return n, err
}

// ErrLinkUnusable means a contact link is unknown, used or expired.
var ErrLinkUnusable = errors.New("link unknown, used or expired")

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// AddContactLink records a key registration link for a contact of the
// organization; only the token's hash is kept.
func (s *Store) AddContactLink(ctx context.Context, orgName, contact, token string, expires time.Time) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO contact_links(token_hash, org_uuid, contact, expires_at)
		SELECT $1, uuid, $3, $4 FROM organizations WHERE name = $2`, hashToken(token), orgName, contact, expires)
	if err == nil && tag.RowsAffected() == 0 {
		return fmt.Errorf("organization %q: %w", orgName, ErrNotFound)
	}
	return err
}

// ContactLink is a usable key registration link.
type ContactLink struct {
	OrgName, Contact string
	Expires          time.Time
}

// LookupContactLink returns the link of token if it can still be used.
// A used or expired link is ErrLinkUnusable (with which of the two).
func (s *Store) LookupContactLink(ctx context.Context, token string) (ContactLink, error) {
	var l ContactLink
	var used *time.Time
	err := s.pool.QueryRow(ctx, `SELECT o.name, l.contact, l.expires_at, l.used_at FROM contact_links l
		JOIN organizations o ON o.uuid = l.org_uuid WHERE l.token_hash = $1`, hashToken(token)).Scan(&l.OrgName, &l.Contact, &l.Expires, &used)
	switch {
	case noRows(err):
		return l, fmt.Errorf("%w: this link is not known", ErrLinkUnusable)
	case err != nil:
		return l, err
	case used != nil:
		return l, fmt.Errorf("%w: this link was used on %s", ErrLinkUnusable, used.UTC().Format(time.RFC1123))
	case time.Now().After(l.Expires):
		return l, fmt.Errorf("%w: this link expired on %s", ErrLinkUnusable, l.Expires.UTC().Format(time.RFC1123))
	}
	return l, nil
}

// RegisterContactKey uses the link of token, once, to record the contact's
// public key.
func (s *Store) RegisterContactKey(ctx context.Context, token, fingerprint string, publicKey []byte) (ContactLink, error) {
	var l ContactLink
	err := s.audited(ctx, func(tx pgx.Tx) ([]audit.Event, error) {
		var orgUUID string
		err := tx.QueryRow(ctx, `UPDATE contact_links l SET used_at = now() FROM organizations o
			WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now() AND o.uuid = l.org_uuid
			RETURNING l.org_uuid, o.name, l.contact, l.expires_at`, hashToken(token)).Scan(&orgUUID, &l.OrgName, &l.Contact, &l.Expires)
		if noRows(err) {
			return nil, ErrLinkUnusable
		}
		if err != nil {
			return nil, err
		}
		_, err = tx.Exec(ctx, `INSERT INTO contact_keys(org_uuid, contact, fingerprint, public_key) VALUES ($1, $2, $3, $4)
			ON CONFLICT (org_uuid, contact) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, public_key = EXCLUDED.public_key, registered_at = now()`,
			orgUUID, l.Contact, fingerprint, publicKey)
		if err != nil {
			return nil, err
		}
		return []audit.Event{audit.Change(ctx, audit.ActionContactKey, "contact:"+l.OrgName+"/"+l.Contact, audit.OutcomeOK,
			map[string]any{"fingerprint": fingerprint})}, nil
	})
	if errors.Is(err, ErrLinkUnusable) {
		_, lookupErr := s.LookupContactLink(ctx, token)
		return l, lookupErr
	}
	return l, err
}

// ContactKey returns the public key a contact registered, or nil. Contacts
// are found by address in any organization (the key is the person's).
func (s *Store) ContactKey(ctx context.Context, contact string) ([]byte, error) {
	var key []byte
	err := s.pool.QueryRow(ctx, `SELECT public_key FROM contact_keys WHERE lower(contact) = lower($1) ORDER BY registered_at DESC LIMIT 1`, contact).Scan(&key)
	if noRows(err) {
		return nil, nil
	}
	return key, err
}

// ContactKeys maps the organization's contacts to the fingerprints of the
// keys they registered.
func (s *Store) ContactKeys(ctx context.Context, orgName string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT k.contact, k.fingerprint FROM contact_keys k JOIN organizations o ON o.uuid = k.org_uuid WHERE o.name = $1`, orgName)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var c, f string
		if err := rows.Scan(&c, &f); err != nil {
			return nil, err
		}
		out[c] = f
	}
	return out, rows.Err()
}
