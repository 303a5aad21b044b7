package client

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
)

// RegisterOptions describe a registration.
type RegisterOptions struct {
	ServerURL string // https://host:11371
	Org       string
	AuthCode  string
	CAFile    string // CA bundle that signed the server certificate; "" = system roots
	// SkipSSLCheck accepts a self-signed certificate: the certificate's key
	// and the server's OpenPGP fingerprint seen now are pinned, and later
	// connections must present the same.
	SkipSSLCheck bool
	KeyType      openpgp.KeyType // default Ed25519
	Name         string          // user ID name on the client key
	// Warn receives warnings meant for the user.
	Warn func(string)
}

// RegisterResult is what the server said.
type RegisterResult struct {
	Fingerprint       string `json:"fingerprint"`
	KeyID             string `json:"key_id"`
	Org               string `json:"org"`
	State             string `json:"state"`
	ServerFingerprint string `json:"server_fingerprint"`
	Message           string `json:"message"`
}

// Register creates a client state directory, generates the client's key
// pair and registers it with the server. The directory must not hold a
// registered client already.
func Register(ctx context.Context, dir string, o RegisterOptions) (*Client, RegisterResult, error) {
	var res RegisterResult
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, res, fmt.Errorf("%s already holds a registered client; use another --dir", dir)
	}
	u := strings.TrimRight(o.ServerURL, "/")
	if !strings.HasPrefix(u, "https://") {
		return nil, res, fmt.Errorf("server URL %q must start with https://", o.ServerURL)
	}
	if o.KeyType == "" {
		o.KeyType = openpgp.Ed25519
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	var seen string
	seenPtr := (*string)(nil)
	if o.SkipSSLCheck {
		o.Warn("--skip-ssl-check: the server certificate is not verified; pinning the certificate key and OpenPGP fingerprint seen now")
		seenPtr = &seen
	}
	tlsCfg, err := tlsConfig(o.CAFile, "", seenPtr)
	if err != nil {
		return nil, res, err
	}
	c := New(Config{ServerURL: u, Org: o.Org, CAFile: o.CAFile}, nil, tlsCfg)

	serverID, err := fetchFingerprint(ctx, c)
	if err != nil {
		return nil, res, err
	}
	name := o.Name
	if name == "" {
		host, _ := os.Hostname()
		name = "Trustee client " + host
	}
	key, err := openpgp.Generate(o.KeyType, name, "")
	if err != nil {
		return nil, res, fmt.Errorf("generate client key: %w", err)
	}
	c.key = key
	body, err := json.Marshal(map[string]string{"org": o.Org, "auth_code": o.AuthCode, "public_key": string(key.Public().Armor())})
	if err != nil {
		return nil, res, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/v1/register", bytes.NewReader(body))
	if err != nil {
		return nil, res, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := auth.SignRequest(key, req, body, time.Now()); err != nil {
		return nil, res, err
	}
	out, err := c.send(req, http.StatusCreated)
	if err != nil {
		return nil, res, err
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, res, fmt.Errorf("decode registration answer: %w", err)
	}
	if res.ServerFingerprint != serverID {
		return nil, res, fmt.Errorf("server identity changed during registration (%s, then %s)", serverID, res.ServerFingerprint)
	}
	c.Config.Fingerprint = res.Fingerprint
	c.Config.ServerFingerprint = serverID
	c.Config.PinnedSPKISHA256 = seen
	c.Config.State = res.State
	if err := save(dir, c.Config, key); err != nil {
		return nil, res, err
	}
	pinned, err := tlsConfig(o.CAFile, seen, nil)
	if err != nil {
		return nil, res, err
	}
	return New(c.Config, key, pinned), res, nil
}

// fetchFingerprint asks the server for its OpenPGP identity.
func fetchFingerprint(ctx context.Context, c *Client) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Config.ServerURL+"/?a=fingerprint", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			return "", fmt.Errorf("reach server: %w (give the CA that signed its certificate with --ca-file, or use --skip-ssl-check for a self-signed server)", err)
		}
		return "", fmt.Errorf("reach server: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK || !validServerID(id) {
		return "", fmt.Errorf("%s did not answer like a Key Trustee server (status %d)", c.Config.ServerURL, resp.StatusCode)
	}
	return id, nil
}

// validServerID checks the "<bits><letter>/<40 hex>" shape.
func validServerID(id string) bool {
	bits, fp, ok := strings.Cut(id, "/")
	if !ok || len(bits) < 2 || len(fp) != 40 {
		return false
	}
	for _, r := range bits[:len(bits)-1] {
		if r < '0' || r > '9' {
			return false
		}
	}
	for _, r := range fp {
		if !('0' <= r && r <= '9' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// save writes the client state directory: 0700, files 0600.
func save(dir string, cfg Config, key *openpgp.PrivateKey) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	armored, err := key.Armor()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), armored, 0o600); err != nil {
		return err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ConfigFile), append(data, '\n'), 0o600)
}
