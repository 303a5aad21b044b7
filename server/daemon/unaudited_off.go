//go:build !benchunaudited

package daemon

import (
	"context"
	"net/http"
)

// BenchOptions is empty in kts: only the benchmark build (build tag
// benchunaudited, docs/PERFORMANCE.md) can serve the client API without
// recording it in the audit log.
type BenchOptions struct{}

// serveUnaudited opens nothing: kts serves every request audited.
func serveUnaudited(context.Context, BenchOptions, unauditedServer) (*http.Server, func(), error) {
	return nil, func() {}, nil
}
