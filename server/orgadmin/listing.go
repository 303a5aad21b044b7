package orgadmin

import (
	"fmt"
	"time"

	"trustee.dev/trustee/server/store"
)

// HiddenSecret stands where keytrustee-orgtool prints the auth code: codes
// are stored only as hashes and can't be shown.
const HiddenSecret = "<hidden>"

// TimeLayout is how the listings write times (UTC, no zone, as
// keytrustee-orgtool does).
const TimeLayout = "2006-01-02T15:04:05"

// OrgListing is `list`'s answer: organizations keyed by name, in
// keytrustee-orgtool's shape. key_info maps the contacts who registered an
// OpenPGP key to its fingerprint (null when none did).
func OrgListing(orgs []store.Organization, contactKeys map[string]map[string]string) map[string]any {
	out := make(map[string]any, len(orgs))
	for _, o := range orgs {
		secret := HiddenSecret
		if o.AuthHash == "" {
			secret = ""
		}
		var keyInfo any
		if len(contactKeys[o.Name]) > 0 {
			keyInfo = contactKeys[o.Name]
		}
		contacts := o.Contacts
		if contacts == nil {
			contacts = []string{}
		}
		out[o.Name] = map[string]any{
			"auth_secret": secret,
			"contacts":    contacts,
			"creation":    o.Creation.UTC().Format(TimeLayout),
			"expiration":  o.Expiration.UTC().Format(TimeLayout),
			"key_info":    keyInfo,
			"name":        o.Name,
			"state":       o.State,
			"uuid":        o.UUID,
		}
	}
	return out
}

// ClientListing is `list-clients`'s answer.
func ClientListing(cs []store.Client) []map[string]any {
	out := make([]map[string]any, len(cs))
	for i, c := range cs {
		out[i] = map[string]any{"fingerprint": c.Fingerprint, "key_id": c.KeyID, "org": c.OrgName,
			"state": c.State, "registered": c.Registered.UTC().Format(TimeLayout), "source": c.SourceAddr}
	}
	return out
}

// ParseExpiration reads set-expiration's time: RFC 3339, or "never".
func ParseExpiration(s string) (time.Time, error) {
	if s == "never" {
		return store.NeverExpires, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expiration %q: give a time as 2027-06-30T00:00:00Z (RFC 3339), or \"never\"", s)
	}
	return t, nil
}

// FingerprintFlag accepts a fingerprint with spaces or lower case, as gpg
// prints it, and returns 40 upper-case hex digits.
func FingerprintFlag(s string) (string, error) {
	fp, err := ParseFingerprint(s)
	if err != nil {
		return "", fmt.Errorf("--fingerprint %q: want the client's 40-hex-digit OpenPGP fingerprint (see list-clients)", s)
	}
	return fp, nil
}
