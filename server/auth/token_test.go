package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	if _, err := NewTokens(make([]byte, 31)); err == nil {
		t.Fatal("NewTokens accepted a 31-byte key")
	}
	key := []byte(strings.Repeat("s", 32))
	tokens, err := NewTokens(key)
	if err != nil {
		t.Fatal(err)
	}
	key[0] = 'x' // the caller's slice is not kept
	now := time.Unix(1_700_000_000, 500_000_000)

	tok, exp, err := tokens.Issue(strings.ToLower(testFpr), 10*time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 82 || strings.ContainsAny(tok, "+/=") {
		t.Errorf("token %d characters, want 82 of base64url without padding", len(tok))
	}
	if want := time.Unix(1_700_000_600, 0); !exp.Equal(want) {
		t.Errorf("expires %v, want %v", exp, want)
	}
	if _, err := ParseAuthorization("KTS-Session " + tok); err != nil {
		t.Errorf("issued token does not parse in a header: %v", err)
	}
	for _, at := range []time.Time{now, exp.Add(-time.Second), now.Add(-time.Hour)} {
		if fpr, err := tokens.Verify(tok, at); err != nil || fpr != testFpr {
			t.Errorf("Verify at %v = %q, %v; want %s", at, fpr, err, testFpr)
		}
	}
	for _, at := range []time.Time{exp, exp.Add(time.Hour)} {
		if _, err := tokens.Verify(tok, at); !errors.Is(err, ErrTokenExpired) {
			t.Errorf("Verify at %v = %v, want ErrTokenExpired", at, err)
		}
	}

	// Every changed byte is caught.
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for i := range raw {
		bad := append([]byte(nil), raw...)
		bad[i] ^= 0x01
		_, err := tokens.Verify(base64.RawURLEncoding.EncodeToString(bad), now)
		if !errors.Is(err, ErrBadToken) {
			t.Fatalf("byte %d changed: %v, want ErrBadToken", i, err)
		}
	}
	// A token made with another key.
	other, _ := NewTokens([]byte(strings.Repeat("o", 64)))
	otherTok, _, _ := other.Issue(testFpr, 0, now)
	if _, err := tokens.Verify(otherTok, now); !errors.Is(err, ErrBadToken) {
		t.Errorf("token of another key: %v, want ErrBadToken", err)
	}
	// An expired forgery reports ErrBadToken, not expiry.
	if _, err := tokens.Verify(otherTok, now.Add(time.Hour)); !errors.Is(err, ErrBadToken) {
		t.Errorf("expired forgery: %v, want ErrBadToken", err)
	}
	for _, bad := range []string{"", "abc", tok[:81], tok + "A", strings.Repeat("!", 82), tok[:40] + "\n" + tok[41:]} {
		if _, err := tokens.Verify(bad, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q) = %v, want ErrMalformed", bad, err)
		}
	}
	var nilTokens *Tokens
	if _, err := nilTokens.Verify(tok, now); !errors.Is(err, ErrBadToken) {
		t.Errorf("nil Tokens: %v", err)
	}

	// Lifetimes.
	if _, exp, err := tokens.Issue(testFpr, 0, now); err != nil || !exp.Equal(time.Unix(now.Unix()+300, 0)) {
		t.Errorf("default lifetime: %v, %v", exp, err)
	}
	if _, _, err := tokens.Issue(testFpr, MaxTokenTTL, now); err != nil {
		t.Errorf("maximum lifetime: %v", err)
	}
	for _, ttl := range []time.Duration{-time.Second, MaxTokenTTL + time.Second} {
		if _, _, err := tokens.Issue(testFpr, ttl, now); err == nil {
			t.Errorf("lifetime %v accepted", ttl)
		}
	}
	for _, fpr := range []string{"", testFpr[1:], strings.Repeat("Z", 40)} {
		if _, _, err := tokens.Issue(fpr, 0, now); err == nil {
			t.Errorf("fingerprint %q accepted", fpr)
		}
	}
	if s := sprint(tokens); strings.Contains(s, "sss") {
		t.Errorf("printing Tokens shows the key: %s", s)
	}
}
