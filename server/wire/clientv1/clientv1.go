// Package clientv1 holds the JSON bodies of the client API (docs/API.md):
// what server/httpapi decodes and renders and server/client sends and
// reads. Error answers carry wire.ErrorBody.
package clientv1

import "time"

// RegisterRequest is the body of POST /v1/register. It is signed by the key
// it registers.
type RegisterRequest struct {
	Org       string `json:"org"`
	AuthCode  string `json:"auth_code"`
	PublicKey string `json:"public_key"`
	Hostname  string `json:"hostname,omitempty"` // the client's own name for its host, for the contacts' mail
}

// Registration is the answer to POST /v1/register (201).
type Registration struct {
	Fingerprint       string `json:"fingerprint"`
	KeyID             string `json:"key_id"`
	Org               string `json:"org"`
	State             string `json:"state"`
	ServerFingerprint string `json:"server_fingerprint"`
	Message           string `json:"message"`
}

// Session is the answer to POST /v1/session (201): a token for the
// Authorization header (KTS-Session TOKEN) and when it expires.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Deposit describes one of a client's deposits: the answer to PUT
// /v1/deposits/NAME (201) and an entry of DepositList.
type Deposit struct {
	Name    string    `json:"name"`
	Size    int       `json:"size"`
	Created time.Time `json:"created"`
}

// DepositList is the answer to GET /v1/deposits.
type DepositList struct {
	Deposits []Deposit `json:"deposits"`
}
