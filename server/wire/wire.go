// Package wire holds what both HTTPS APIs of a Trustee server put on the
// wire alike: the JSON body of every answer with a status of 400 or more.
// The bodies of each API are in its own package below: clientv1 (the
// client API, /v1/... of docs/API.md) and adminv1 (the admin API,
// /admin/v1/...). The servers (server/httpapi, server/adminapi) and their
// Go clients (server/client, server/adminclient) both use them, so a field
// is named once. These packages import nothing of the server.
package wire

// ErrorBody is the JSON body of every 4xx and 5xx answer of both APIs:
// {"error": code, "message": text}. The codes are listed in docs/API.md.
type ErrorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}
