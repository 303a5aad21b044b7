package orgadmin

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"trustee.dev/trustee/server/store"
)

func TestOrgListing(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		org  store.Organization
		keys map[string]string
		want string
	}{
		{"code set, no keys", store.Organization{UUID: "u1", Name: "a", Contacts: []string{"x@example.com"}, AuthHash: "h", Creation: created, Expiration: store.NeverExpires},
			nil, `{"auth_secret":"<hidden>","contacts":["x@example.com"],"creation":"2026-01-02T02:04:05","expiration":"` + store.NeverExpires.UTC().Format(TimeLayout) + `","key_info":null,"name":"a","state":0,"uuid":"u1"}`},
		{"no code, no contacts, a contact key", store.Organization{UUID: "u2", Name: "b", Creation: created, Expiration: created, State: 1},
			map[string]string{"x@example.com": "ABCD"}, `{"auth_secret":"","contacts":[],"creation":"2026-01-02T02:04:05","expiration":"2026-01-02T02:04:05","key_info":{"x@example.com":"ABCD"},"name":"b","state":1,"uuid":"u2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := marshal(t, OrgListing([]store.Organization{tt.org}, map[string]map[string]string{tt.org.Name: tt.keys}))
			if want := `{"` + tt.org.Name + `":` + tt.want + `}`; got != want {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

func TestClientListing(t *testing.T) {
	got := marshal(t, ClientListing([]store.Client{{Fingerprint: "F", KeyID: "4096R/F", OrgName: "a", State: store.StateActive,
		Registered: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), SourceAddr: "127.0.0.1"}}))
	want := `[{"fingerprint":"F","key_id":"4096R/F","org":"a","registered":"2026-05-06T07:08:09","source":"127.0.0.1","state":"` + string(store.StateActive) + `"}]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestParseExpiration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{"never", store.NeverExpires, ""},
		{"2027-06-30T00:00:00Z", time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), ""},
		{"2027-06-30T02:00:00+02:00", time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), ""},
		{"2027-06-30", time.Time{}, `--expiration "2027-06-30": give a time as 2027-06-30T00:00:00Z (RFC 3339), or "never"`},
		{"", time.Time{}, `--expiration ""`},
		{"Never", time.Time{}, `"never"`},
	}
	for _, tt := range tests {
		got, err := ParseExpiration(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseExpiration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("ParseExpiration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFingerprintFlag(t *testing.T) {
	if fp, err := FingerprintFlag("abcd 1234 ABCD 1234 abcd  1234 ABCD 1234 abcd 1234"); err != nil || fp != "ABCD1234ABCD1234ABCD1234ABCD1234ABCD1234" {
		t.Errorf("gpg's spaced lower-case form: %q, %v", fp, err)
	}
	if _, err := FingerprintFlag("ABCD"); err == nil || !strings.Contains(err.Error(), "see list-clients") {
		t.Errorf("short fingerprint: %v", err)
	}
}

// marshal is v as JSON on one line, without HTML escapes.
func marshal(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
