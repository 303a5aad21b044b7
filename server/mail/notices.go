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
