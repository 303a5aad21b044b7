package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"trustee.dev/trustee/server/httpapi"
)

// adminCACheckInterval is how often the admin CA file is looked at for a
// replacement.
const adminCACheckInterval = time.Second

// AdminTLSConfig returns the admin listener's TLS settings: those of the
// client API in base (minimum version, cipher suites, certificate and its
// reload), and a client certificate required, verified against the CA
// certificates in caFile (ADMIN_CA_FILE) and issued for client
// authentication (ExtKeyUsageClientAuth; a certificate that names no usage
// is refused too). caFile is read again when it changes, at most once a
// second; a replacement that fails to load keeps the previous CAs in
// service and is logged.
func AdminTLSConfig(base *tls.Config, caFile string, log *slog.Logger) (*tls.Config, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cas := &adminCAs{file: caFile, log: log, base: base.Clone()}
	cas.base.ClientAuth = tls.RequireAndVerifyClientCert
	cas.base.VerifyConnection = requireClientAuthUsage
	cas.base.GetConfigForClient = nil
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, err
	}
	cas.stamp = statStamp(caFile)
	cas.nextCheck.Store(time.Now().Add(adminCACheckInterval).UnixNano())
	cas.install(pool)
	outer := cas.cfg.Load().Clone()
	outer.GetConfigForClient = cas.configForClient
	return outer, nil
}

// requireClientAuthUsage refuses a client certificate that is not
// explicitly for client authentication: the chain verification lets a
// certificate without extended key usages through.
func requireClientAuthUsage(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("admin API: a client certificate is required")
	}
	if !slices.Contains(cs.PeerCertificates[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return errors.New("admin API: the client certificate is not issued for client authentication (extended key usage clientAuth)")
	}
	return nil
}

// adminCAs holds the TLS settings with the current admin CA certificates.
type adminCAs struct {
	file string
	log  *slog.Logger
	base *tls.Config

	cfg       atomic.Pointer[tls.Config]
	nextCheck atomic.Int64 // UnixNano before which the file is not looked at

	mu    sync.Mutex // held while checking or loading
	stamp os.FileInfo
}

func (a *adminCAs) install(pool *x509.CertPool) {
	cfg := a.base.Clone()
	cfg.ClientCAs = pool
	a.cfg.Store(cfg)
}

func (a *adminCAs) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	a.maybeReload()
	return a.cfg.Load(), nil
}

func (a *adminCAs) maybeReload() {
	if time.Now().UnixNano() < a.nextCheck.Load() || !a.mu.TryLock() {
		return
	}
	defer a.mu.Unlock()
	defer a.nextCheck.Store(time.Now().Add(adminCACheckInterval).UnixNano())
	stamp := statStamp(a.file)
	if sameStamp(stamp, a.stamp) {
		return
	}
	a.stamp = stamp
	pool, err := loadCAPool(a.file)
	if err != nil {
		a.log.Error("ADMIN_CA_FILE changed but could not be loaded; still accepting admin certificates of the previous CAs", "err", err)
		return
	}
	a.install(pool)
	a.log.Info("admin CA certificates reloaded", "file", a.file)
}

func statStamp(file string) os.FileInfo {
	fi, err := os.Stat(file)
	if err != nil {
		return nil
	}
	return fi
}

func sameStamp(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

// loadCAPool reads the PEM CA certificates of ADMIN_CA_FILE.
func loadCAPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("ADMIN_CA_FILE: %w (it must hold the PEM CA certificates that sign admin client certificates)", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ADMIN_CA_FILE %s: certificate %d: %w", file, n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("ADMIN_CA_FILE %s holds no PEM certificate; it must hold the CA certificates that sign admin client certificates", file)
	}
	return pool, nil
}

// newAdminServer serves the admin API: one handler, no other routes.
func newAdminServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           httpapi.TLSState(h),
		ConnContext:       httpapi.ConnContext,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.With("listener", "admin").Handler(), slog.LevelWarn),
	}
}

// serveAdmin serves the admin API on ln with mutual TLS; requests net/http
// cannot parse are answered with the API's JSON errors, as on the client
// API's port.
func serveAdmin(srv *http.Server, ln net.Listener) error {
	return srv.Serve(httpapi.JSONErrorListener(tls.NewListener(ln, srv.TLSConfig), srv.MaxHeaderBytes))
}

// listenAdmin opens the admin listener on addr (ADMIN_LISTEN_ADDRESS).
func listenAdmin(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s (ADMIN_LISTEN_ADDRESS): %w", addr, err)
	}
	return ln, nil
}
