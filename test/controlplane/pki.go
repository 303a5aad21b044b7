package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certValidity is how long the cluster's certificates are valid: longer
// than any test run.
const certValidity = 7 * 24 * time.Hour

// pki is the cluster's certificate authority: it signs the API server's
// serving certificate and the client certificates every component and
// user authenticates with (the API server's --client-ca-file). It also
// holds the service account token signing key.
type pki struct {
	dir    string // ca.crt, apiserver.crt/.key, sa.key, sa.pub
	ca     *x509.Certificate
	caKey  crypto.Signer
	caPEM  []byte
	server string // the API server's URL
}

// Files in pki.dir.
const (
	caCertFile     = "ca.crt"
	serverCertFile = "apiserver.crt"
	serverKeyFile  = "apiserver.key"
	saKeyFile      = "sa.key"
	saPubFile      = "sa.pub"
)

// newPKI creates a CA, the API server's serving certificate (127.0.0.1
// and localhost) and the service account key pair in dir.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "controlplane-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir, ca: ca, caKey: key, caPEM: pemBlock("CERTIFICATE", der)}
	if err := os.WriteFile(filepath.Join(dir, caCertFile), p.caPEM, 0o600); err != nil {
		return nil, err
	}

	certPEM, keyPEM, err := p.issue(pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth,
		[]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, serverCertFile), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, serverKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}

	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, saKeyFile), pemBlock("EC PRIVATE KEY", saDER), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, saPubFile), pemBlock("PUBLIC KEY", saPub), 0o600); err != nil {
		return nil, err
	}
	return p, nil
}

// path is the path of one of pki's files.
func (p *pki) path(name string) string {
	return filepath.Join(p.dir, name)
}

// issue signs a new key's certificate for subject with usage.
func (p *pki) issue(subject pkix.Name, usage x509.ExtKeyUsage, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), pemBlock("EC PRIVATE KEY", keyDER), nil
}

// user issues a client certificate for user name in groups (the
// certificate's organizations, as the API server reads them) and returns a
// REST config with it and the content of a kubeconfig file with it.
func (p *pki) user(name string, groups ...string) (*rest.Config, []byte, error) {
	certPEM, keyPEM, err := p.issue(pkix.Name{CommonName: name, Organization: groups}, x509.ExtKeyUsageClientAuth, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("certificate of user %s: %w", name, err)
	}
	cfg := &rest.Config{
		Host: p.server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.caPEM,
			CertData: certPEM,
			KeyData:  keyPEM,
		},
		// The defaults (5 and 10) slow down tests that create many
		// objects.
		QPS:   100,
		Burst: 200,
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["controlplane"] = &clientcmdapi.Cluster{Server: p.server, CertificateAuthorityData: p.caPEM}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	kc.Contexts["controlplane"] = &clientcmdapi.Context{Cluster: "controlplane", AuthInfo: name}
	kc.CurrentContext = "controlplane"
	b, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, nil, fmt.Errorf("kubeconfig of user %s: %w", name, err)
	}
	return cfg, b, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}
