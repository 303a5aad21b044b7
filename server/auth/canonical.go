package auth

import (
	"encoding/hex"
	"net/url"
	"strconv"
	"strings"
)

// canonicalVersion is the first line of every canonical request.
const canonicalVersion = "KTS-PGP-V1"

// CanonicalRequest returns the bytes a KTS-PGP signature covers: the lines
//
//	KTS-PGP-V1, METHOD, escaped path, canonical query, timestamp, nonce, hex SHA-256 of the body
//
// joined by "\n" with no newline at the end. The method is upper-cased, an
// empty path becomes "/", and the query is url.ParseQuery(rawQuery) re-encoded
// with url.Values.Encode (pairs that do not parse are left out, as net/http
// leaves them out of r.URL.Query(); Authenticate refuses such queries).
func CanonicalRequest(method, escapedPath, rawQuery string, timestamp int64, nonce string, bodySHA256 [32]byte) []byte {
	if escapedPath == "" {
		escapedPath = "/"
	}
	query, _ := url.ParseQuery(rawQuery)
	var b strings.Builder
	b.Grow(len(canonicalVersion) + len(method) + len(escapedPath) + len(rawQuery) + len(nonce) + 100)
	for _, line := range []string{canonicalVersion, strings.ToUpper(method), escapedPath, query.Encode(), strconv.FormatInt(timestamp, 10), nonce} {
		b.WriteString(line)
		b.WriteByte('\n')
	}
	b.WriteString(hex.EncodeToString(bodySHA256[:]))
	return []byte(b.String())
}
