package daemon

import (
	"crypto/tls"
	"log/slog"
	"net/http"

	"trustee.dev/trustee/server/audit"
)

// unauditedServer is what the benchmark build's audit-off listener is
// served with: the client API as the server serves it on its own port.
type unauditedServer struct {
	journal *audit.Journal
	api     http.Handler
	// srv and plain are the client API's servers, whose settings the
	// audit-off listener copies.
	srv, plain *http.Server
	tlsCfg     *tls.Config
	errc       chan<- error
	log        *slog.Logger
}
