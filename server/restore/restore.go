// Package restore holds what a restore decides before and while it puts a
// backup back: which configuration a server restored onto a fresh host
// starts with, what must be true before anything is written (the HSM
// opens the archive's secrets and holds every key its deposits are
// wrapped with), and which files outside the state directory it writes.
// Run is kts restore, onto a fresh host or over an existing server, and
// Drill is the restore drill (kts backup verify): they share these checks,
// so a drill passes only where a restore would.
package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"trustee.dev/trustee/server/backup"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/server/hsmkeys"
)

// FreshConfig is the configuration a server archive restored onto a fresh
// host starts with: a single server, whatever its place in a pair was. A
// restored active would otherwise wait for a passive that is not there
// (every commit waits for its synchronous standby), and a restored
// passive would follow an active it no longer matches. The pair is
// rebuilt from the restored server (kts db init --role active, then
// kts init --from-active on the other host). It returns what the archived
// server was in a pair ("active", "passive"), or "" for a single server.
func FreshConfig(archived config.Config) (cfg config.Config, wasPaired string) {
	cfg = archived
	switch {
	case cfg.Role == config.RolePassive:
		wasPaired = config.RolePassive
	case cfg.StandbyName != "":
		wasPaired = config.RoleActive
	}
	cfg.Role, cfg.StandbyName = config.RoleActive, ""
	cfg.ActiveURL, cfg.ActiveCA, cfg.ActiveDB = "", "", ""
	return cfg, wasPaired
}

// OutsideFiles lists the files the configuration names outside the state
// directory dir, as absolute paths: a backup archives them and a restore
// puts them back. Commands the configuration names (password and PIN
// scripts) are host software and not listed, nor is HSM_PIN_FILE: the
// token's PIN is kept apart from the backups, which open nothing without
// both the token and its PIN.
func OutsideFiles(dir string, cfg config.Config) []string {
	var out []string
	for _, p := range []string{cfg.SSLCertificate, cfg.SSLPrivateKey, cfg.SSLCertificateChain,
		cfg.ActiveCA, cfg.DBCAFile, cfg.ServerKey, cfg.Keyring, cfg.SessionKey, cfg.DBPasswordFile, cfg.ReplicationPasswordFile,
		cfg.AdminCAFile, cfg.SMTPCAFile, cfg.SMTPPasswordFile} {
		if p == "" {
			continue
		}
		abs := filepath.Clean(cfg.Path(dir, p))
		if rel, err := filepath.Rel(dir, abs); (err == nil && !strings.HasPrefix(rel, "..")) || slices.Contains(out, abs) {
			continue
		}
		out = append(out, abs)
	}
	return out
}

// Check opens an archive as a restore does, before anything is written:
// when its secrets are sealed by an HSM, the configured HSM must open
// them, and every HSM key the deposits in its dump are wrapped with must
// be in that HSM. dir is where relative paths of cfg (a PIN file) are
// found. It returns the open token (nil without an HSM), for the caller
// to close.
func Check(staged *backup.Staged, dir string, cfg config.Config) (*hsm.Token, error) {
	if cfg.HasHSM() {
		// Opening the token loads the configured PKCS#11 library and may
		// run HSM_PIN_SCRIPT: only when no other account can change them.
		if err := confdir.CheckTrusted(dir, cfg); err != nil {
			return nil, err
		}
	}
	tok, err := openHSM(staged, dir, cfg)
	if err != nil {
		return nil, err
	}
	if err := checkHSMKeys(staged, tok, cfg); err != nil {
		if tok != nil {
			tok.Close()
		}
		return nil, err
	}
	return tok, nil
}

// openHSM opens the HSM that sealed the archive's secrets, and checks that
// it unseals them. It returns nil when the configuration names no HSM and
// the archive holds no sealed file.
func openHSM(staged *backup.Staged, dir string, cfg config.Config) (*hsm.Token, error) {
	var sealed []string
	for _, name := range hsmkeys.SealedFiles(cfg) {
		if data, err := stagedFile(staged, name); err == nil && hsmkeys.IsSealed(data) {
			sealed = append(sealed, name)
		}
	}
	if len(sealed) == 0 {
		if !cfg.HasHSM() {
			return nil, nil
		}
		// Secrets kept unsealed (HSM_SEAL_STATE false): the token still
		// holds the keys of the deposits, which checkHSMKeys looks for.
		tok, err := hsmkeys.OpenToken(dir, cfg)
		if err != nil {
			return nil, fmt.Errorf("the configuration names the HSM %s, which holds the deposits' keys; restore needs it: %w", hsmkeys.Describe(cfg), err)
		}
		return tok, nil
	}
	if !cfg.HasHSM() {
		return nil, fmt.Errorf("the backup's %s are sealed by an HSM, and the configuration names none (keytrustee.conf HSM_MODULE)", strings.Join(sealed, ", "))
	}
	tok, err := hsmkeys.OpenToken(dir, cfg)
	if err != nil {
		return nil, fmt.Errorf("the backup's secrets are sealed by the HSM %s; restore needs it: %w", hsmkeys.Describe(cfg), err)
	}
	for _, name := range sealed {
		data, _ := stagedFile(staged, name)
		pt, err := hsmkeys.Unseal(tok, name, data)
		clear(pt)
		if err != nil {
			tok.Close()
			return nil, fmt.Errorf("the HSM %s does not open the backup's %s (restore needs the same HSM key): %w", hsmkeys.Describe(cfg), name, err)
		}
	}
	return tok, nil
}

// DepositsTable and KEKColumn are where a dump says which key wraps each
// deposit's data key.
const (
	DepositsTable = "public.deposits"
	KEKColumn     = "kek_id"
)

// checkHSMKeys checks, from the archive's dump, that the token holds every
// HSM key the deposits are wrapped with.
func checkHSMKeys(staged *backup.Staged, tok *hsm.Token, cfg config.Config) error {
	if staged.Dump < 0 {
		return nil
	}
	f, err := os.Open(staged.File(staged.Dump))
	if err != nil {
		return err
	}
	defer f.Close()
	ids, err := backup.ColumnValues(f, DepositsTable, KEKColumn)
	if err != nil {
		return fmt.Errorf("reading the database dump: %w", err)
	}
	for _, id := range ids {
		label, ok := hsmkeys.Label(id)
		if !ok {
			continue
		}
		if tok == nil {
			return fmt.Errorf("the backup's deposits are wrapped by HSM key %q, and the configuration names no HSM (keytrustee.conf HSM_MODULE)", label)
		}
		if _, err := tok.Key(label); err != nil {
			return fmt.Errorf("the backup's deposits are wrapped by HSM key %q, which the HSM %s does not hold (restore needs the same HSM key): %w",
				label, hsmkeys.Describe(cfg), err)
		}
	}
	return nil
}

// Config reads the configuration in a staged server archive.
func Config(staged *backup.Staged) (config.Config, error) {
	data, err := stagedFile(staged, config.FileName)
	if err != nil {
		return config.Config{}, err
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return cfg, fmt.Errorf("the archive's %s: %w", config.FileName, err)
	}
	return cfg, nil
}

// Secret reads a secret file of the staged state directory (relative to
// it, or an absolute path archived from outside it), without its final
// newline.
func Secret(staged *backup.Staged, p string) (string, error) {
	data, err := stagedFile(staged, p)
	return strings.TrimRight(string(data), "\r\n"), err
}

func stagedFile(staged *backup.Staged, p string) ([]byte, error) {
	i, ok := staged.Lookup(filepath.ToSlash(p))
	if !ok {
		return nil, fmt.Errorf("the archive holds no %s", p)
	}
	return os.ReadFile(staged.File(i))
}
