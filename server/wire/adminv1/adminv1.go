// Package adminv1 holds the JSON bodies of the admin API
// (docs/API.md#admin-api): what server/adminapi decodes and renders and
// server/adminclient sends and reads. Error answers carry wire.ErrorBody.
package adminv1

import "time"

// Organization is an organization as the API shows it: the answer to GET
// and PUT /admin/v1/organizations/NAME.
type Organization struct {
	Name     string   `json:"name"`
	UUID     string   `json:"uuid"`
	Contacts []string `json:"contacts"`
	// Expires is when the organization expires or expired (a retirement
	// sets it to the time of retirement); nil: never.
	Expires *time.Time   `json:"expires"`
	Clients ClientCounts `json:"clients"`
}

// Expired reports whether the organization has expired by now: its clients
// are refused (organization_expired).
func (o *Organization) Expired(now time.Time) bool {
	return o.Expires != nil && !now.Before(*o.Expires)
}

// ClientCounts counts an organization's clients by state.
type ClientCounts struct {
	Active   int `json:"active"`
	Pending  int `json:"pending"`
	Disabled int `json:"disabled"`
}

// Request bodies. The server refuses unknown fields; a field left out
// (nil) is refused where the request needs it.
type (
	// OrganizationRequest is the body of PUT /admin/v1/organizations/NAME.
	OrganizationRequest struct {
		Contacts []string `json:"contacts"`
	}
	// ClientStateRequest is the body of PUT
	// /admin/v1/organizations/NAME/clients/FINGERPRINT: StateActive or
	// StateDisabled.
	ClientStateRequest struct {
		State *string `json:"state"`
	}
)

// AuthCodeRequest is the body of PUT /admin/v1/organizations/NAME/auth-code:
// the new code, or "" for none. Printing it shows no code.
type AuthCodeRequest struct {
	AuthCode *string `json:"auth_code"`
}

func (AuthCodeRequest) String() string     { return `{"auth_code": "<redacted>"}` }
func (b AuthCodeRequest) GoString() string { return b.String() }

// The states a client is set to with ClientStateRequest.
const (
	StateActive   = "active"   // the client may use deposits
	StateDisabled = "disabled" // the client is refused (403)
)
