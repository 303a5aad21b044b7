package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/store"
)

func TestOutboxRetriesWithBackoffAndNeverLosesMail(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	for _, to := range []string{"finn@example.com", "jake@example.com"} {
		if err := s.QueueMail(ctx, to, "subject", "body for "+to); err != nil {
			t.Fatal(err)
		}
	}
	down := errors.New("connect: connection refused")
	sent, failed, err := s.SendDueMail(ctx, 10, func(store.Mail) error { return down }, func(int) time.Duration { return time.Hour })
	if err != nil || sent != 0 || failed != 2 {
		t.Fatalf("SendDueMail with the MTA down = %d sent, %d failed, %v", sent, failed, err)
	}
	pending, err := s.PendingMail(ctx)
	if err != nil || len(pending) != 2 || pending[0].Attempts != 1 || !strings.Contains(pending[0].LastError, "refused") || pending[0].Body != "" {
		t.Fatalf("pending after a failure = %+v, %v", pending, err)
	}
	// Not due yet: nothing is tried.
	if sent, failed, _ := s.SendDueMail(ctx, 10, func(store.Mail) error { t.Fatal("tried a mail before its time"); return nil }, nil); sent+failed != 0 {
		t.Fatal("a mail was tried before its time")
	}
	if _, err := s.Pool().Exec(ctx, `UPDATE outbox SET next_attempt_at = now()`); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	sent, failed, err = s.SendDueMail(ctx, 10, func(m store.Mail) error { bodies = append(bodies, m.Body); return nil }, nil)
	if err != nil || sent != 2 || failed != 0 || bodies[0] != "body for finn@example.com" {
		t.Fatalf("SendDueMail = %d, %d, %v; bodies %q", sent, failed, err, bodies)
	}
	if n, err := s.MailQueueDepth(ctx); err != nil || n != 0 {
		t.Fatalf("queue depth after sending = %d, %v", n, err)
	}
	var left int
	s.Pool().QueryRow(ctx, `SELECT count(*) FROM outbox WHERE body <> ''`).Scan(&left)
	if left != 0 {
		t.Fatal("a sent mail's body was kept")
	}
}

func TestContactLinksWorkOnceUntilTheyExpire(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if _, _, err := s.AddOrganization(ctx, "acme", []string{"finn@example.com"}, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContactLink(ctx, "acme", "finn@example.com", "token-1", time.Now().Add(12*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContactLink(ctx, "acme", "finn@example.com", "token-old", time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddContactLink(ctx, "nosuch", "x@example.com", "t", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a link for an unknown organization: %v", err)
	}
	if l, err := s.LookupContactLink(ctx, "token-1"); err != nil || l.OrgName != "acme" || l.Contact != "finn@example.com" {
		t.Fatalf("LookupContactLink = %+v, %v", l, err)
	}
	for token, want := range map[string]string{"token-old": "expired", "nope": "not known"} {
		if _, err := s.RegisterContactKey(ctx, token, "F", []byte("k")); !errors.Is(err, store.ErrLinkUnusable) || !strings.Contains(err.Error(), want) {
			t.Errorf("RegisterContactKey with %s = %v", token, err)
		}
	}
	if _, err := s.RegisterContactKey(ctx, "token-1", "FPR1", []byte("key 1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterContactKey(ctx, "token-1", "FPR2", []byte("key 2")); !errors.Is(err, store.ErrLinkUnusable) || !strings.Contains(err.Error(), "used") {
		t.Fatalf("a second use of the link: %v", err)
	}
	if key, err := s.ContactKey(ctx, "Finn@Example.com"); err != nil || string(key) != "key 1" {
		t.Fatalf("ContactKey = %q, %v", key, err)
	}
	if keys, err := s.ContactKeys(ctx, "acme"); err != nil || keys["finn@example.com"] != "FPR1" {
		t.Fatalf("ContactKeys = %v, %v", keys, err)
	}
	var stored int
	s.Pool().QueryRow(ctx, `SELECT count(*) FROM contact_links WHERE token_hash = 'token-1'`).Scan(&stored)
	if stored != 0 {
		t.Fatal("a link's secret is stored in the clear")
	}
}
