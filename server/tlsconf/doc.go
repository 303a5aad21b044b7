// Package tlsconf builds the TLS settings of the Key Trustee Server from the
// values of keytrustee.conf.
//
// It parses the minimum protocol version (TLS_MIN_VERSION) and the OpenSSL
// style cipher list (SSL_CIPHER_LIST), loads the server certificate, its
// chain and its possibly password-protected private key (SSL_CERTIFICATE,
// SSL_CERTIFICATE_CHAIN, SSL_PRIVATE_KEY, SSL_PRIVATE_KEY_PASSWORD_SCRIPT),
// reloads them when the files are replaced, and generates the self-signed
// certificate a new server starts with.
//
// The cipher list governs TLS 1.2 only. TLS 1.3 cipher suites are fixed by
// Go's crypto/tls and are always enabled when TLS 1.3 is negotiated, just as
// OpenSSL's cipher list does not touch TLS 1.3 suites (those are set
// separately in OpenSSL and cannot be changed in Go). TLS 1.0 and 1.1 are
// never offered.
package tlsconf
