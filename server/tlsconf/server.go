package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// ServerConfig returns the server's TLS settings: minimum version
// minVersion (see ParseMinVersion), TLS 1.2 suites from the OpenSSL cipher
// list cipherList (see ParseCipherList) and certificates from certs. The
// warnings are meant for the log.
func ServerConfig(minVersion, cipherList string, certs *CertSource) (*tls.Config, []string, error) {
	if certs == nil {
		return nil, nil, errors.New("tlsconf: ServerConfig needs a certificate source")
	}
	version, err := ParseMinVersion(minVersion)
	if err != nil {
		return nil, nil, fmt.Errorf("TLS_MIN_VERSION: %w", err)
	}
	suites, warnings, err := ParseCipherList(cipherList)
	if err != nil {
		return nil, nil, fmt.Errorf("SSL_CIPHER_LIST: %w", err)
	}
	for i, w := range warnings {
		warnings[i] = "SSL_CIPHER_LIST: " + w
	}
	if version == tls.VersionTLS13 && suites != nil {
		warnings = append(warnings, "SSL_CIPHER_LIST has no effect: TLS_MIN_VERSION is tlsv1.3, and the list only applies to TLS 1.2")
	}
	return &tls.Config{
		MinVersion:     version,
		CipherSuites:   suites,
		GetCertificate: certs.GetCertificate,
	}, warnings, nil
}
