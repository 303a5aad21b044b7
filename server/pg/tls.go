package pg

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// certCheckInterval is how often Run looks for replaced certificate files.
var certCheckInterval = time.Second

// certStamp identifies one version of each of the server's certificate
// and key files.
type certStamp []os.FileInfo

// certStamp stats the server's certificate and key files; a file that
// cannot be examined has a nil entry.
func (i *Instance) certStamp() certStamp {
	var st certStamp
	for _, f := range []string{i.TLS.CertFile, i.TLS.KeyFile} {
		fi, err := os.Stat(tlsPath(f))
		if err != nil {
			fi = nil
		}
		st = append(st, fi)
	}
	return st
}

// changed reports whether any file differs between a and b: in size,
// modification time or identity (a file renamed into place, or a
// Kubernetes Secret volume switching to its new data).
func (a certStamp) changed(b certStamp) bool {
	if len(a) != len(b) {
		return true
	}
	for k := range a {
		x, y := a[k], b[k]
		if x == nil || y == nil {
			if x != y {
				return true
			}
			continue
		}
		if x.Size() != y.Size() || !x.ModTime().Equal(y.ModTime()) || !os.SameFile(x, y) {
			return true
		}
	}
	return false
}

// watchCerts sends on reload whenever the server's certificate or key
// file changes, until ctx is done, and says so on log.
func (i *Instance) watchCerts(ctx context.Context, log io.Writer, reload chan<- struct{}) {
	last := i.certStamp()
	t := time.NewTicker(certCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := i.certStamp()
		if !now.changed(last) {
			continue
		}
		last = now
		if log != nil {
			fmt.Fprintf(log, "kts: the TLS certificate files %s and %s changed; PostgreSQL reloads them\n",
				tlsPath(i.TLS.CertFile), tlsPath(i.TLS.KeyFile))
		}
		select {
		case reload <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
}

// Reload makes the running server re-read its configuration files and,
// with TLS, its certificate and key (pg_ctl reload), as after replacing
// them. Connections open already keep the certificate they began with.
// The server must be running.
func (i *Instance) Reload(ctx context.Context) error {
	st, err := i.Status(ctx)
	if err != nil {
		return err
	}
	if !st.Running {
		return fmt.Errorf("PostgreSQL in %s is not running: there is nothing to reload", st.DataDir)
	}
	r, err := i.runner()
	if err != nil {
		return err
	}
	if out, err := r.run(ctx, "pg_ctl", "reload", "--pgdata="+st.DataDir); err != nil {
		return fmt.Errorf("reload PostgreSQL in %s: %w\n%s", st.DataDir, err, out)
	}
	return nil
}
