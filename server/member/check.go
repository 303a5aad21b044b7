package member

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
)

// check validates everything setup needs before it changes anything, and
// returns the configuration and the file's content.
func (o Options) check(ctx context.Context, out io.Writer) (config.Config, []byte, error) {
	if err := checkMember(o.Member); err != nil {
		return config.Config{}, nil, err
	}
	data, err := os.ReadFile(o.ConfigFile)
	if err != nil {
		return config.Config{}, nil, fmt.Errorf("--config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return cfg, nil, fmt.Errorf("%s: %w", o.ConfigFile, err)
	}
	if err := checkConfigRole(o.Member, o.ConfigFile, cfg.Role); err != nil {
		return cfg, nil, err
	}
	if err := confdir.CheckFiles(o.Dir, cfg); err != nil {
		return cfg, nil, fmt.Errorf("%s names files that cannot be read:\n%w", o.ConfigFile, err)
	}
	if _, err := os.Stat(o.Dir); err == nil && !o.ConfigOnly {
		// A state directory older versions gave to the PostgreSQL account
		// is taken back before it is trusted.
		note, err := confdir.Instance(o.Dir, cfg, o.RunAs).PrepareStateDir(o.Dir)
		if err != nil {
			return cfg, nil, err
		}
		if note != "" {
			fmt.Fprintln(out, note)
		}
	}
	if err := confdir.CheckTrusted(o.Dir, cfg, confdir.TrustedFile{Key: "--config", Path: o.ConfigFile}); err != nil {
		return cfg, nil, err
	}
	installed, err := config.Load(o.Dir)
	agreed := roleAgreed(readMarker(o.ActiveMarker), o.Name, cfg.Role)
	if err := checkInstalled(o.Dir, installed.Role, err, cfg.Role, agreed); err != nil {
		return cfg, nil, err
	}
	if o.ConfigOnly {
		return cfg, data, nil
	}
	inst := confdir.Instance(o.Dir, cfg, o.RunAs)
	st, err := inst.Status(ctx)
	if err != nil {
		return cfg, nil, err
	}
	if st.Running {
		return cfg, nil, fmt.Errorf("PostgreSQL runs in %s (pid %d); setup prepares it before it runs: stop it first", st.DataDir, st.PID)
	}
	if cfg.HasHSM() {
		if err := checkHSM(o.Dir, cfg, needsKEK(cfg.Role, inst.Initialized())); err != nil {
			return cfg, nil, err
		}
	}
	return cfg, data, nil
}

// installConfig writes data as dir/keytrustee.conf (mode 0600) unless it
// holds that already, atomically: a crash leaves the old or the new file.
// dir is created with mode 0700. It reports whether it wrote the file.
func installConfig(dir string, data []byte) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	path := filepath.Join(dir, config.FileName)
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm() == 0o600 {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(dir, "."+config.FileName+".*.tmp")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return false, fmt.Errorf("install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return true, nil
}
