package bench

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"trustee.dev/trustee/server/audit"
	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/store"
)

// benchClients registers one client per worker in fresh organizations
// without an auth code (8 clients each, under the registration rate limit).
// With o.unaudited set, it also returns the same clients talking to that
// URL (the server's audit-off listener).
func benchClients(ctx context.Context, db *store.Store, o Options, caFile string) (clients, unaudited []*client.Client, err error) {
	tag := make([]byte, 4)
	rand.Read(tag)
	dir, err := os.MkdirTemp("", "kts-bench-clients-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ctx = audit.WithActor(ctx, audit.Actor{ID: audit.LocalUser(), Source: audit.LocalSource(), Details: map[string]any{"tool": "kts bench"}})
	for w := 0; w < o.Workers; w++ {
		orgName := fmt.Sprintf("bench-%x-%d", tag, w/8)
		if w%8 == 0 {
			if _, _, err := db.AddOrganization(ctx, orgName, []string{"bench@example.com"}, ""); err != nil {
				return nil, nil, err
			}
		}
		cdir := filepath.Join(dir, strconv.Itoa(w))
		c, res, err := client.Register(ctx, cdir, client.RegisterOptions{
			ServerURL: o.Server, Org: orgName, CAFile: caFile, KeyType: openpgp.Ed25519,
			// Each server of a scratch pair has its own self-signed certificate.
			SkipSSLCheck: o.Pair,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("register bench client: %w", err)
		}
		if res.State != string(store.StateActive) {
			return nil, nil, fmt.Errorf("bench client registered as %s, want active", res.State)
		}
		clients = append(clients, c)
		if o.unaudited != "" {
			u, err := clientAt(cdir, o.unaudited)
			if err != nil {
				return nil, nil, err
			}
			unaudited = append(unaudited, u)
		}
	}
	return clients, unaudited, nil
}

// clientAt opens the client state in dir to talk to url instead.
func clientAt(dir, url string) (*client.Client, error) {
	data, err := os.ReadFile(filepath.Join(dir, client.ConfigFile))
	if err != nil {
		return nil, err
	}
	var cfg client.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, err
	}
	armored, err := os.ReadFile(filepath.Join(dir, client.KeyFile))
	if err != nil {
		return nil, err
	}
	key, err := openpgp.ReadPrivate(armored)
	if err != nil {
		return nil, err
	}
	cfg.ServerURL, cfg.Servers, cfg.PinnedSPKISHA256 = url, []string{url}, nil
	return client.New(cfg, key)
}

// benchHTTPClient makes a client with its own connection and the same TLS
// settings as like.
func benchHTTPClient(like *http.Client) *http.Client {
	tr := like.Transport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func bareGet(ctx context.Context, c *http.Client, url string, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && (resp.StatusCode != 200 || int(n) != size) {
		err = fmt.Errorf("bare server answered %d with %d bytes", resp.StatusCode, n)
	}
	return err
}
