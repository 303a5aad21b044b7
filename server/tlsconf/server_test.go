package tlsconf

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newSelfSignedSource makes an ECDSA certificate for localhost.
func newSelfSignedSource(t *testing.T) *CertSource {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := GenerateSelfSigned([]string{"localhost", "127.0.0.1"}, certFile, keyFile, time.Hour); err != nil {
		t.Fatal(err)
	}
	log, _ := newTestLogger(t)
	src, err := NewCertSource(certFile, "", keyFile, "", log)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestServerConfigHandshakes(t *testing.T) {
	src := newSelfSignedSource(t)
	tests := []struct {
		name       string
		minVersion string
		cipherList string
		client     *tls.Config
		wantErr    bool
		wantSuite  uint16
		wantVer    uint16
	}{
		{"TLS 1.1 client refused", "tlsv1.2", "", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, true, 0, 0},
		{"TLS 1.0 client refused", "", "", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, true, 0, 0},
		{"TLS 1.2 client accepted", "tlsv1.2", "", &tls.Config{MaxVersion: tls.VersionTLS12}, false, 0, tls.VersionTLS12},
		{"TLS 1.3 preferred", "tlsv1.2", "", &tls.Config{}, false, 0, tls.VersionTLS13},
		{"TLS 1.2 client refused by tlsv1.3", "tlsv1.3", "", &tls.Config{MaxVersion: tls.VersionTLS12}, true, 0, 0},
		{"TLS 1.3 client accepted by tlsv1.3", "tlsv1.3", "", &tls.Config{}, false, 0, tls.VersionTLS13},
		{"suite outside the list refused", "tlsv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305",
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, true, 0, 0},
		{"suite in the list accepted", "tlsv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305",
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}}, false, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.VersionTLS12},
		{"CBC suite removed with !SHA1", "", "HIGH:!SHA1",
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, true, 0, 0},
		{"CBC suite kept by HIGH", "", "HIGH",
			&tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.VersionTLS12},
		{"TLS 1.3 unaffected by the list", "", "ECDHE-ECDSA-AES256-GCM-SHA384", &tls.Config{}, false, 0, tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := ServerConfig(tt.minVersion, tt.cipherList, src)
			if err != nil {
				t.Fatal(err)
			}
			addr := serve(t, cfg)
			client := tt.client.Clone()
			client.InsecureSkipVerify = true
			st, err := handshake(addr, client)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("handshake succeeded with %s, %s; want it refused", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			if tt.wantVer != 0 && st.Version != tt.wantVer {
				t.Errorf("version %s, want %s", tls.VersionName(st.Version), tls.VersionName(tt.wantVer))
			}
			if tt.wantSuite != 0 && st.CipherSuite != tt.wantSuite {
				t.Errorf("suite %s, want %s", tls.CipherSuiteName(st.CipherSuite), tls.CipherSuiteName(tt.wantSuite))
			}
		})
	}
}

// TestOldClientControl shows that the TLS 1.0/1.1 clients above are refused
// because of the server's minimum version, not because they cannot speak.
func TestOldClientControl(t *testing.T) {
	cfg, _, err := ServerConfig("tlsv1.2", "", newSelfSignedSource(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinVersion = tls.VersionTLS10
	st, err := handshake(serve(t, cfg), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err != nil {
		t.Fatalf("TLS 1.1 handshake with a server allowing it: %v", err)
	}
	if st.Version != tls.VersionTLS11 {
		t.Errorf("version %s", tls.VersionName(st.Version))
	}
}

func TestServerConfig(t *testing.T) {
	src := newSelfSignedSource(t)
	tests := []struct {
		name, minVersion, cipherList string
		wantErr                      string
		wantWarnings                 []string
	}{
		{"defaults", "", "", "", nil},
		{"docs example", "tlsv1.2", "AES256:CAMELLIA256-SHA", "", []string{"SSL_CIPHER_LIST: cipher list element \"CAMELLIA256-SHA\" selects nothing"}},
		{"list unused with TLS 1.3", "tlsv1.3", "HIGH", "", []string{"SSL_CIPHER_LIST has no effect"}},
		{"bad version", "tlsv1.1", "", "TLS_MIN_VERSION: TLS version \"tlsv1.1\" is not allowed", nil},
		{"bad cipher", "", "HIGH:BOGUS", "SSL_CIPHER_LIST: cipher list: unknown cipher or keyword \"BOGUS\"", nil},
		{"empty selection", "", "CAMELLIA", "SSL_CIPHER_LIST: cipher list \"CAMELLIA\" selects no TLS 1.2 cipher suite", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, warnings, err := ServerConfig(tt.minVersion, tt.cipherList, src)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.GetCertificate == nil || cfg.MinVersion < tls.VersionTLS12 {
				t.Errorf("config %+v", cfg)
			}
			if len(warnings) != len(tt.wantWarnings) {
				t.Fatalf("warnings %q, want %q", warnings, tt.wantWarnings)
			}
			for i, w := range tt.wantWarnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q does not contain %q", warnings[i], w)
				}
			}
		})
	}
	if _, _, err := ServerConfig("", "", nil); err == nil {
		t.Error("ServerConfig with no certificate source succeeded")
	}
}
