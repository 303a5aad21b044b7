package tlsconf

import (
	"crypto"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// checkInterval is how often GetCertificate looks for replaced files.
const checkInterval = time.Second

// expiryWarning is how long before expiry a certificate is reported.
const expiryWarning = 30 * 24 * time.Hour

// CertSource serves the server certificate and reloads it when its files
// change, so that a certificate can be replaced without a restart.
//
// GetCertificate checks the files' size, modification time and identity at
// most once per second. When they changed, it reads and validates them
// again; if that fails, the previous certificate stays in use and the error
// is logged. Replace the key and certificate together (write new files and
// rename them into place); a half-finished replacement is retried once the
// other file changes as well.
type CertSource struct {
	certFile, chainFile, keyFile, passwordScript string
	log                                          *slog.Logger

	cert      atomic.Pointer[tls.Certificate]
	nextCheck atomic.Int64 // UnixNano before which no check is done

	mu     sync.Mutex // held while checking or loading
	stamps []fileStamp
}

// NewCertSource loads the PEM certificate in certFile (which may be followed
// by intermediate certificates), the optional chain file chainFile (appended
// to the chain sent to clients) and the private key in keyFile. If
// passwordScript is set and the key is encrypted, the script is run (split on
// spaces, without a shell) and its output is the key's password. log may be
// nil.
func NewCertSource(certFile, chainFile, keyFile, passwordScript string, log *slog.Logger) (*CertSource, error) {
	if certFile == "" {
		return nil, errors.New("SSL_CERTIFICATE is not set; set it to the server certificate's PEM file")
	}
	if keyFile == "" {
		return nil, errors.New("SSL_PRIVATE_KEY is not set; set it to the server private key's PEM file")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &CertSource{
		certFile:       certFile,
		chainFile:      chainFile,
		keyFile:        keyFile,
		passwordScript: passwordScript,
		log:            log,
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate returns the current certificate; it fits
// tls.Config.GetCertificate. It never fails: a failed reload keeps the
// previous certificate.
func (s *CertSource) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.maybeReload()
	return s.cert.Load(), nil
}

// Certificate returns the certificate currently served.
func (s *CertSource) Certificate() *tls.Certificate {
	return s.cert.Load()
}

// Reload reads the files now, whether or not they changed. On error the
// previous certificate stays in use.
func (s *CertSource) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stamps = s.statFiles()
	s.nextCheck.Store(time.Now().Add(checkInterval).UnixNano())
	return s.load()
}

func (s *CertSource) maybeReload() {
	if time.Now().UnixNano() < s.nextCheck.Load() {
		return
	}
	// A check or reload is already running: serve the current certificate.
	if !s.mu.TryLock() {
		return
	}
	defer s.mu.Unlock()
	if time.Now().UnixNano() < s.nextCheck.Load() {
		return
	}
	defer func() { s.nextCheck.Store(time.Now().Add(checkInterval).UnixNano()) }()
	stamps := s.statFiles()
	if stampsEqual(stamps, s.stamps) {
		return
	}
	// Remember the new state even if loading fails, so that a broken file
	// is reported once, not every second.
	s.stamps = stamps
	if err := s.load(); err != nil {
		old := s.cert.Load()
		s.log.Error("TLS certificate files changed but could not be loaded; still serving the previous certificate",
			"error", err, "serial", serialHex(old.Leaf), "not_after", old.Leaf.NotAfter)
	}
}

// fileStamp identifies one version of a file.
type fileStamp struct {
	info os.FileInfo // nil if the file could not be examined
}

func (a fileStamp) equal(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return a.info.Size() == b.info.Size() && a.info.ModTime().Equal(b.info.ModTime()) && os.SameFile(a.info, b.info)
}

func stampsEqual(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].equal(b[i]) {
			return false
		}
	}
	return true
}

func (s *CertSource) statFiles() []fileStamp {
	var stamps []fileStamp
	for _, f := range []string{s.certFile, s.chainFile, s.keyFile} {
		if f == "" {
			continue
		}
		info, err := os.Stat(f)
		if err != nil {
			info = nil
		}
		stamps = append(stamps, fileStamp{info})
	}
	return stamps
}

// load reads and checks the files and, if all is well, makes the result the
// current certificate.
func (s *CertSource) load() error {
	cert, err := s.readKeyPair()
	if err != nil {
		return err
	}
	s.cert.Store(cert)
	leaf := cert.Leaf
	s.log.Info("loaded TLS certificate", "file", s.certFile, "subject", leaf.Subject.String(),
		"dns_names", leaf.DNSNames, "serial", serialHex(leaf), "not_after", leaf.NotAfter, "chain_length", len(cert.Certificate))
	now := time.Now()
	switch {
	case now.After(leaf.NotAfter):
		s.log.Warn("the TLS certificate has expired and clients will reject it; replace SSL_CERTIFICATE and SSL_PRIVATE_KEY with a valid certificate and key",
			"file", s.certFile, "not_after", leaf.NotAfter)
	case now.Before(leaf.NotBefore):
		s.log.Warn("the TLS certificate is not valid yet and clients will reject it; check the system clock or the certificate",
			"file", s.certFile, "not_before", leaf.NotBefore)
	case leaf.NotAfter.Sub(now) < expiryWarning:
		s.log.Warn("the TLS certificate expires soon; replace SSL_CERTIFICATE and SSL_PRIVATE_KEY before it does",
			"file", s.certFile, "not_after", leaf.NotAfter)
	}
	if k, ok := cert.PrivateKey.(*rsa.PrivateKey); ok && k.N.BitLen() < 2048 {
		s.log.Warn("the TLS private key is a weak RSA key; use at least 2048 bits", "file", s.keyFile, "bits", k.N.BitLen())
	}
	return nil
}

func (s *CertSource) readKeyPair() (*tls.Certificate, error) {
	certs, err := readCertificates(s.certFile, "SSL_CERTIFICATE")
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	if s.chainFile != "" {
		chain, err := readCertificates(s.chainFile, "SSL_CERTIFICATE_CHAIN")
		if err != nil {
			return nil, err
		}
		if !issuedByAny(leaf, append(certs[1:], chain...)) {
			s.log.Warn("no certificate in the chain issued the server certificate; clients may fail to verify it, check SSL_CERTIFICATE_CHAIN",
				"chain_file", s.chainFile, "issuer", leaf.Issuer.String())
		}
		certs = append(certs, chain...)
	}

	keyPEM, err := os.ReadFile(s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("SSL_PRIVATE_KEY: %v; check the path and that the file is readable by the server", err)
	}
	defer clear(keyPEM)
	var password func() ([]byte, error)
	if s.passwordScript != "" {
		password = func() ([]byte, error) { return runPasswordScript(s.passwordScript) }
	}
	key, encrypted, err := parsePrivateKey(keyPEM, s.keyFile, password)
	if err != nil {
		return nil, err
	}
	if !encrypted && s.passwordScript != "" {
		s.log.Warn("SSL_PRIVATE_KEY is not encrypted, so SSL_PRIVATE_KEY_PASSWORD_SCRIPT is not used", "file", s.keyFile)
	}
	if !publicKeysEqual(leaf.PublicKey, key.Public()) {
		return nil, fmt.Errorf("SSL_PRIVATE_KEY %s does not match the certificate in SSL_CERTIFICATE %s; use the key the certificate was issued for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)",
			s.keyFile, s.certFile)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// readCertificates reads every PEM CERTIFICATE block of file; setting names
// the configuration key for messages.
func readCertificates(file, setting string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %v; check the path and that the file is readable by the server", setting, err)
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s %s: certificate %d: %v", setting, file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		hint := "the file must hold PEM certificates (convert DER with: openssl x509 -inform der -in CERT -out CERT.pem)"
		if strings.Contains(string(data), "PRIVATE KEY") {
			hint = "it holds a private key but no certificate; check that SSL_CERTIFICATE and SSL_PRIVATE_KEY are not swapped"
		}
		return nil, fmt.Errorf("%s %s: no PEM CERTIFICATE found; %s", setting, file, hint)
	}
	return certs, nil
}

func issuedByAny(leaf *x509.Certificate, candidates []*x509.Certificate) bool {
	for _, c := range candidates {
		if leaf.CheckSignatureFrom(c) == nil {
			return true
		}
	}
	return false
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func serialHex(c *x509.Certificate) string {
	if c == nil || c.SerialNumber == nil {
		return ""
	}
	return c.SerialNumber.Text(16)
}
