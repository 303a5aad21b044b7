package org

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"disaster-recov", "test_org", "A1", strings.Repeat("a", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	bad := map[string]string{
		"":                                "empty",
		"disaster recov":                  "spaces",
		"tab\there":                       "spaces",
		"org!":                            "special character",
		"org/evil":                        "special character",
		"-lead":                           "start with",
		"ümlaut":                          "special character",
		strings.Repeat("a", MaxNameLen+1): "at most",
	}
	for name, want := range bad {
		err := ValidateName(name)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v, want error mentioning %q", name, err, want)
		}
	}
}

func TestParseContacts(t *testing.T) {
	got, err := ParseContacts("finn@example.com,jake@example.com,Finn@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "finn@example.com,jake@example.com" {
		t.Fatalf("ParseContacts = %v", got)
	}
	bad := map[string]string{
		"":                                   "empty",
		"finn@example.com, jake@example.com": "no spaces",
		"finn@example.com,,jake@example.com": "empty address",
		"finn":                               "not an e-mail",
		"Finn <finn@example.com>":            "no spaces",
		"finn@":                              "not an e-mail",
	}
	for list, want := range bad {
		_, err := ParseContacts(list)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseContacts(%q) = %v, want error mentioning %q", list, err, want)
		}
	}
}

func TestAuthCodeHash(t *testing.T) {
	h, err := HashAuthCode("ThisISAs3cr3t!")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(h, "ThisISAs3cr3t!") || !strings.HasPrefix(h, "argon2id$") {
		t.Fatalf("hash %q does not look like an argon2id hash", h)
	}
	h2, _ := HashAuthCode("ThisISAs3cr3t!")
	if h == h2 {
		t.Fatal("two hashes of one code are equal: salt missing")
	}
	cases := []struct {
		stored, presented string
		want              bool
	}{
		{h, "ThisISAs3cr3t!", true},
		{h, "ThisISAs3cr3t", false},
		{h, "", false},
		{"", "", true},
		{"", "anything", true},
		{"argon2id$v=19$m=1,t=1,p=1$AAAA", "x", false},
		{"plaintext", "plaintext", false},
		{"argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "x", false},
	}
	for _, c := range cases {
		if got := CodeMatches(c.stored, c.presented); got != c.want {
			t.Errorf("CodeMatches(%.20q, %q) = %v, want %v", c.stored, c.presented, got, c.want)
		}
	}
	if blank, _ := HashAuthCode(""); blank != "" {
		t.Fatalf("blank code hashed to %q", blank)
	}
}

func TestValidateAuthCode(t *testing.T) {
	for _, ok := range []string{"", "ThisISAs3cr3t!", "with space"} {
		if err := ValidateAuthCode(ok); err != nil {
			t.Errorf("ValidateAuthCode(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a\nb", "\x00", strings.Repeat("x", MaxAuthCodeLen+1), "\xff"} {
		if err := ValidateAuthCode(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateAuthCode(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	code, err := GenerateAuthCode()
	if err != nil || len(code) != 24 {
		t.Fatalf("GenerateAuthCode = %q, %v", code, err)
	}
}
