package mail

import (
	"fmt"
	"time"
)

// Subjects of the server's mail, as the reference product sends them.
const (
	ContactRegistrationSubject = "KeyTrustee Contact Registration"
	ClientRegistrationSubject  = "KeyTrustee Client Registration"
)

// ContactLinkLifetime is how long a key registration link works.
const ContactLinkLifetime = 12 * time.Hour

// ContactRegistrationText is the mail a contact gets when added to an
// organization: the link to register an OpenPGP key, and when it expires.
func ContactRegistrationText(org, link string, expires time.Time) string {
	return fmt.Sprintf(`Hello, this is an automated message from your Trustee key trustee server.

You have been listed as an administrator contact for key trustee services
at your organization [%s]. As an administrator, you may be contacted to
authorize the activation of new key trustee clients.

We recommend that you register an OpenPGP public key for secure
administration of your clients: mail to you is then encrypted to it. To do
so, visit the link below and follow the instructions.

%s
This link will expire in 12 hours, at %s, and works once.

Mail from this server is signed with its OpenPGP key, which the page above
offers for you to import.
`, org, link, expires.UTC().Format("Mon Jan _2 15:04:05 2006 MST"))
}

// ClientRegistration describes a client that registered, for the mail to
// its organization's contacts.
type ClientRegistration struct {
	Org, Fingerprint, KeyID string
	Hostname, Source        string // the host name the client gave, and the address it came from
	Active                  bool   // registered with the right auth code (or none needed)
}

// ClientRegistrationText is the mail an organization's contacts get when a
// client registers: who, and the command that enables it when it waits.
func ClientRegistrationText(c ClientRegistration) string {
	state := "It is ACTIVE: it registered with the organization's auth code (or none is required)."
	action := fmt.Sprintf(`If you do not know this client, disable it:

    keytrustee-orgtool disable-client --fingerprint %s`, c.Fingerprint)
	if !c.Active {
		state = "It is WAITING FOR APPROVAL: it cannot use deposits until an administrator enables it."
		action = fmt.Sprintf(`If you expected this client, enable it on the key trustee server:

    keytrustee-orgtool enable-client --fingerprint %s

(or: kts org enable-client --fingerprint %s)`, c.Fingerprint, c.Fingerprint)
	}
	return fmt.Sprintf(`Hello, this is an automated message from your Trustee key trustee server.

A new client registered with your organization [%s]:

    fingerprint: %s
    key:         %s
    host name:   %s
    address:     %s

%s

%s
`, c.Org, c.Fingerprint, c.KeyID, c.Hostname, c.Source, state, action)
}
