package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"trustee.dev/trustee/server/auth"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/wire/clientv1"
)

// RegisterOptions describe a registration.
type RegisterOptions struct {
	// ServerURL is the server, https://host:11371, or both servers of an
	// active/passive pair comma-separated, the active first.
	ServerURL string
	Org       string
	AuthCode  string
	CAFile    string // CA bundle that signed the server certificates; "" = system roots
	// SkipSSLCheck accepts self-signed certificates: each server's
	// certificate key and the OpenPGP fingerprint seen now are pinned, and
	// later connections must present the same.
	SkipSSLCheck bool
	KeyType      openpgp.KeyType // default Ed25519
	Name         string          // user ID name on the client key
	// Warn receives warnings meant for the user.
	Warn func(string)
}

// RegisterResult is what the server said.
type RegisterResult = clientv1.Registration

// Register creates a client state directory, generates the client's key
// pair and registers it with the active server (the first listed). Every
// listed server is asked for its OpenPGP identity first and must present
// the same one. The directory must not hold a registered client already.
func Register(ctx context.Context, dir string, o RegisterOptions) (*Client, RegisterResult, error) {
	var res RegisterResult
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return nil, res, fmt.Errorf("%s already holds a registered client; use another --dir", dir)
	}
	servers, err := parseServers(o.ServerURL)
	if err != nil {
		return nil, res, err
	}
	if o.KeyType == "" {
		o.KeyType = openpgp.Ed25519
	}
	if o.Warn == nil {
		o.Warn = func(string) {}
	}
	if o.SkipSSLCheck {
		o.Warn("--skip-ssl-check: the server certificate is not verified; pinning the certificate key and OpenPGP fingerprint seen now")
	}
	serverID, pins, err := identify(ctx, servers, o)
	if err != nil {
		return nil, res, err
	}
	c, err := New(Config{ServerURL: servers[0], Servers: servers, Org: o.Org, CAFile: o.CAFile, PinnedSPKISHA256: pins}, nil)
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
	hostname, _ := os.Hostname()
	body, err := json.Marshal(clientv1.RegisterRequest{Org: o.Org, AuthCode: o.AuthCode, PublicKey: string(key.Public().Armor()), Hostname: hostname})
	if err != nil {
		return nil, res, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, servers[0]+"/v1/register", bytes.NewReader(body))
	if err != nil {
		return nil, res, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := auth.SignRequest(key, req, body, time.Now()); err != nil {
		return nil, res, err
	}
	out, err := c.send(0, req, http.StatusCreated)
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
	c.Config.State = res.State
	if err := save(dir, c.Config, key); err != nil {
		return nil, res, err
	}
	c, err = New(c.Config, key)
	return c, res, err
}

// identify asks every server for its OpenPGP identity, which must be the
// same for all, and with SkipSSLCheck records the certificate key each
// presents.
func identify(ctx context.Context, servers []string, o RegisterOptions) (string, Pins, error) {
	roots, err := rootCAs(o.CAFile)
	if err != nil {
		return "", nil, err
	}
	var id string
	var pins Pins
	for _, u := range servers {
		var seen string
		var record *string
		if o.SkipSSLCheck {
			record = &seen
		}
		hc := newHTTPClient(tlsConfig(roots, "", record))
		got, err := fetchFingerprint(ctx, hc, u)
		hc.CloseIdleConnections()
		if err != nil {
			if len(servers) > 1 && unreachable(ctx, err) {
				return "", nil, fmt.Errorf("%w (registration checks every listed server: start it, or correct --server)", err)
			}
			return "", nil, err
		}
		if id == "" {
			id = got
		} else if got != id {
			return "", nil, fmt.Errorf("%s presents OpenPGP identity %s but %s presents %s: the servers of a pair share one identity, so one of them is not part of this pair; correct --server",
				u, got, servers[0], id)
		}
		if o.SkipSSLCheck {
			if pins == nil {
				pins = Pins{}
			}
			pins[u] = seen
		}
	}
	return id, pins, nil
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
