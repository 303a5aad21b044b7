package pg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// installHint tells the operator how to get the PostgreSQL server programs.
const installHint = "install PostgreSQL 15 (Debian/Ubuntu: `apt-get install postgresql-15`) " +
	"or point the PostgreSQL bin directory at an existing installation"

// childEnv is the whole environment of PostgreSQL programs: nothing is
// inherited, so no PGPASSWORD or other PG* variable can leak in.
var childEnv = []string{
	"PATH=/usr/local/bin:/usr/bin:/bin",
	"LC_ALL=C",
}

// account is the OS account that runs PostgreSQL programs when the caller
// is root. A nil *account means "run as the caller".
type account struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// ResolveBinDir returns the directory holding the PostgreSQL server
// programs: BinDir if set, else the output of `pg_config --bindir`, else
// /usr/lib/postgresql/15/bin. The error wraps ErrNotInstalled and says how
// to install PostgreSQL when none of them has the programs.
func (i *Instance) ResolveBinDir() (string, error) {
	if i.BinDir != "" {
		if err := hasServer(i.BinDir); err != nil {
			return "", fmt.Errorf("%w in %s: %v; %s", ErrNotInstalled, i.BinDir, err, installHint)
		}
		return i.BinDir, nil
	}
	if path, err := exec.LookPath("pg_config"); err == nil {
		if out, err := exec.Command(path, "--bindir").Output(); err == nil {
			if dir := strings.TrimSpace(string(out)); hasServer(dir) == nil {
				return dir, nil
			}
		}
	}
	if hasServer(fallbackBinDir) == nil {
		return fallbackBinDir, nil
	}
	return "", fmt.Errorf("%w (looked in `pg_config --bindir` and %s): %s",
		ErrNotInstalled, fallbackBinDir, installHint)
}

// hasServer checks that dir holds the programs this package runs.
func hasServer(dir string) error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("no %s", name)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", name)
		}
	}
	return nil
}

// runner runs the PostgreSQL programs of one Instance.
type runner struct {
	bin  string
	acct *account
}

func (i *Instance) runner() (*runner, error) {
	bin, err := i.ResolveBinDir()
	if err != nil {
		return nil, err
	}
	acct, err := i.account()
	if err != nil {
		return nil, err
	}
	return &runner{bin: bin, acct: acct}, nil
}

// run runs a PostgreSQL program with a minimal environment from "/" (which
// every account can enter) and returns its trimmed combined output.
func (r *runner) run(ctx context.Context, name string, args ...string) (string, error) {
	return r.runEnv(ctx, nil, name, args...)
}

// runEnv is run with env added to the minimal environment.
func (r *runner) runEnv(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, name), args...)
	cmd.Env = append(append([]string(nil), childEnv...), env...)
	cmd.Dir = "/"
	cmd.SysProcAttr = r.acct.sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// chown gives path to the run-as account; a no-op when not root.
func (a *account) chown(path string) error {
	if a == nil {
		return nil
	}
	if err := os.Chown(path, int(a.uid), int(a.gid)); err != nil {
		return fmt.Errorf("give %s to OS account %q: %w", path, a.name, err)
	}
	return nil
}
