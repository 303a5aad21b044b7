//go:build benchunaudited

package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/httpapi"
)

// BenchOptions, in the benchmark build only (build tag benchunaudited),
// open a second listener of the client API that records nothing in the
// audit log, so that the benchmark measures what the audit log costs on
// the same server. Opening it is recorded.
type BenchOptions struct {
	// UnauditedListen is the address of the audit-off listener; empty
	// opens none.
	UnauditedListen string
	// UnauditedReady is called with the address of that listener.
	UnauditedReady func(addr string)
}

// serveUnaudited opens the audit-off listener o asks for and serves it
// until the returned server is shut down; close closes its listener.
func serveUnaudited(ctx context.Context, o BenchOptions, u unauditedServer) (_ *http.Server, close func(), _ error) {
	if o.UnauditedListen == "" {
		return nil, func() {}, nil
	}
	bln, err := net.Listen("tcp", o.UnauditedListen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %s (the benchmark's unaudited listener): %w", o.UnauditedListen, err)
	}
	if err := u.journal.Record(ctx, audit.Event{Actor: audit.ActorServer, Action: audit.ActionUnauditedServer,
		Object: "listener:" + bln.Addr().String(), Outcome: "opened", Details: map[string]any{"purpose": "kts bench"}}); err != nil {
		bln.Close()
		return nil, nil, err
	}
	// The client API's own server settings (timeouts and limits), so
	// that the two listeners differ only in what they record.
	srv := u.srv
	bench := &http.Server{Handler: unaudited(u.api), TLSConfig: srv.TLSConfig, ReadHeaderTimeout: srv.ReadHeaderTimeout,
		ReadTimeout: srv.ReadTimeout, WriteTimeout: srv.WriteTimeout, IdleTimeout: srv.IdleTimeout,
		MaxHeaderBytes: srv.MaxHeaderBytes, ErrorLog: srv.ErrorLog, ConnContext: srv.ConnContext}
	bsides := split(bln) // as the client API's port is served
	go func() {
		u.errc <- bench.Serve(httpapi.JSONErrorListener(tls.NewListener(bsides.tls, u.tlsCfg), bench.MaxHeaderBytes))
	}()
	go func() { u.errc <- u.plain.Serve(httpapi.JSONErrorListener(bsides.plain, u.plain.MaxHeaderBytes)) }()
	u.log.Warn("serving the client API WITHOUT audit records, for kts bench only", "addr", bln.Addr().String())
	if o.UnauditedReady != nil {
		o.UnauditedReady(bln.Addr().String())
	}
	return bench, func() { bln.Close() }, nil
}

// unaudited serves h recording nothing: the benchmark's audit-off
// listener.
func unaudited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(audit.Unaudited(r.Context())))
	})
}
