package confdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/fileperm"
)

// TrustedFile is a file the server trusts: its keyword in keytrustee.conf
// (or config.FileName itself) and its path.
type TrustedFile struct{ Key, Path string }

// Trusted lists what the server trusts in the state directory dir,
// keytrustee.conf first, then by keyword. That is keytrustee.conf, every
// file the configuration names, the HSM's PKCS#11 library, and the program
// each password or PIN script runs (not its arguments, which may hold the
// secret).
func Trusted(dir string, cfg config.Config) []TrustedFile {
	var files []TrustedFile
	for key, p := range map[string]string{
		"SERVER_KEY": cfg.ServerKey, "KEYRING": cfg.Keyring, "SESSION_KEY": cfg.SessionKey,
		"DB_PASSWORD_FILE": cfg.DBPasswordFile, "REPLICATION_PASSWORD_FILE": cfg.ReplicationPasswordFile,
		"SSL_CERTIFICATE": cfg.SSLCertificate, "SSL_PRIVATE_KEY": cfg.SSLPrivateKey,
		"SSL_CERTIFICATE_CHAIN": cfg.SSLCertificateChain, "ACTIVE_CA": cfg.ActiveCA, "DB_CA_FILE": cfg.DBCAFile,
		"HSM_PIN_FILE": cfg.HSMPINFile, "SMTP_CA_FILE": cfg.SMTPCAFile, "SMTP_PASSWORD_FILE": cfg.SMTPPasswordFile,
		"ADMIN_CA_FILE": cfg.AdminCAFile, "HSM_MODULE": cfg.HSMModule,
	} {
		if p != "" {
			files = append(files, TrustedFile{key, cfg.Path(dir, p)})
		}
	}
	for key, script := range map[string]string{
		"SSL_PRIVATE_KEY_PASSWORD_SCRIPT": cfg.SSLPrivateKeyPasswordScript,
		"HSM_PIN_SCRIPT":                  cfg.HSMPINScript, "SMTP_PASSWORD_SCRIPT": cfg.SMTPPasswordScript,
	} {
		if args := strings.Fields(script); len(args) > 0 {
			files = append(files, TrustedFile{key, args[0]})
		}
	}
	slices.SortFunc(files, func(a, b TrustedFile) int { return strings.Compare(a.Key, b.Key) })
	return append([]TrustedFile{{config.FileName, filepath.Join(dir, config.FileName)}}, files...)
}

// CheckTrusted refuses a state directory where another account than the
// one running kts (or root) can change what the server trusts (Trusted)
// or the directories holding it: such an account could plant a
// configuration whose scripts kts runs, or keys of its own. The error
// names every such file, who can change it and the command that stops it.
// Files that do not exist are left to the code that reads them. more are
// checked too.
func CheckTrusted(dir string, cfg config.Config, more ...TrustedFile) error {
	var files []fileperm.File
	seen := map[string]bool{}
	for _, t := range append(Trusted(dir, cfg), more...) {
		found, err := fileperm.Gather(t.Path, t.Key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, f := range found {
			if !seen[f.Path] {
				seen[f.Path] = true
				files = append(files, f)
			}
		}
	}
	return fileperm.CheckAll(fileperm.Current(), files)
}

// keepDir makes the existing state directory dir the caller's alone: mode
// 0700, keeping only the permission to pass through it (x) that group and
// others may have. Run by root, it takes back a dir another account owns
// (such as the PostgreSQL account, to which older versions gave it), and
// says so.
func keepDir(dir string) (note string, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if uid, ok := ownerOf(fi); ok && os.Geteuid() == 0 && uid != 0 {
		if err := os.Chown(dir, 0, -1); err != nil {
			return "", fmt.Errorf("take back the state directory %s from uid %d: %w", dir, uid, err)
		}
		who := fmt.Sprintf("uid %d", uid)
		if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
			who = fmt.Sprintf("OS account %q (uid %d)", u.Username, uid)
		}
		note = fmt.Sprintf("the state directory %s was owned by %s, which could replace the files in it: it is root's again", dir, who)
	}
	return note, os.Chmod(dir, 0o700|fi.Mode().Perm()&0o011)
}
