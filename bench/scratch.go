package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/daemon"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
)

// startBareServer starts the transport anchor (ServeBare) as a process of
// its own.
func startBareServer(ctx context.Context, o Options) (*Child, error) {
	p, err := o.Start(ctx, "bench", "bare-server", "--confdir", o.Confdir, "--size", strconv.Itoa(o.Size))
	if err != nil {
		return nil, err
	}
	p.URL += "/payload"
	return p, nil
}

// ServeBare is the transport anchor: it serves size bytes with the
// server's TLS settings from the state directory dir until ctx ends,
// printing "listening ADDR" on out once it accepts.
func ServeBare(ctx context.Context, out io.Writer, dir string, size int) error {
	st, err := confdir.Open(dir)
	if err != nil {
		return err
	}
	tlsCfg, err := daemon.TLSConfig(st, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	payload := make([]byte, size)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		w.Write(payload)
	}), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "listening %s\n", ln.Addr())
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(tls.NewListener(ln, tlsCfg)); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// scratch is a throwaway PostgreSQL + server, or a pair of them.
type scratch struct {
	confdir, url string // the active's
	unaudited    string // the active's audit-off listener (single server only)
	servers      []*Child
	insts        []*pg.Instance
	root         string
}

func (s *scratch) stop() {
	for i := len(s.servers) - 1; i >= 0; i-- {
		s.servers[i].Stop()
	}
	for i := len(s.insts) - 1; i >= 0; i-- {
		s.insts[i].Stop(context.Background())
	}
	os.RemoveAll(s.root)
}

// startScratch starts a throwaway server (and with --pair its passive) in
// a temporary directory.
func startScratch(ctx context.Context, out io.Writer, o Options) (_ *scratch, err error) {
	root, err := os.MkdirTemp("", "kts-bench-")
	if err != nil {
		return nil, err
	}
	os.Chmod(root, 0o755)
	s := &scratch{root: root, confdir: filepath.Join(root, "active")}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	ports := make([]int, 4)
	for i := range ports {
		if ports[i], err = pg.FreePort(); err != nil {
			return nil, err
		}
	}
	what := "a scratch PostgreSQL and server"
	if o.Pair {
		what = "a scratch pair (two PostgreSQL, two servers)"
	}
	fmt.Fprintf(out, "starting %s in %s\n", what, root)
	if _, err := confdir.Init(s.confdir, confdir.InitOptions{Hostname: "localhost", KeyType: openpgp.Ed25519,
		DBPort: ports[1], ListenAddress: "127.0.0.1:" + strconv.Itoa(ports[0])}); err != nil {
		return nil, err
	}
	cfg, err := config.Load(s.confdir)
	if err != nil {
		return nil, err
	}
	dirs := []string{s.confdir}
	if o.Pair {
		if err := confdir.PairActive(ctx, os.Stdout, s.confdir, cfg, pg.DefaultRunAs); err != nil {
			return nil, err
		}
		if cfg, err = config.Load(s.confdir); err != nil {
			return nil, err
		}
	} else if err := confdir.InitDB(ctx, os.Stdout, s.confdir, cfg, confdir.Instance(s.confdir, cfg, pg.DefaultRunAs)); err != nil {
		return nil, err
	}
	s.insts = append(s.insts, confdir.Instance(s.confdir, cfg, pg.DefaultRunAs))
	if err := s.insts[0].Start(ctx); err != nil {
		return nil, err
	}
	if o.Pair {
		passive := filepath.Join(root, "passive")
		if _, err := confdir.InitFromActive(s.confdir, passive, confdir.PassiveOptions{
			Hostname: "localhost", ListenAddress: "127.0.0.1:" + strconv.Itoa(ports[2]), DBPort: ports[3],
			ActiveURL: "https://127.0.0.1:" + strconv.Itoa(ports[0]), ActiveDB: "127.0.0.1:" + strconv.Itoa(ports[1]),
		}); err != nil {
			return nil, err
		}
		pcfg, err := config.Load(passive)
		if err != nil {
			return nil, err
		}
		inst := confdir.Instance(passive, pcfg, pg.DefaultRunAs)
		if err := confdir.InitPassive(ctx, os.Stdout, passive, pcfg, inst); err != nil {
			return nil, err
		}
		if err := inst.Start(ctx); err != nil {
			return nil, err
		}
		s.insts = append(s.insts, inst)
		dirs = append(dirs, passive)
	}
	for i, dir := range dirs {
		args := []string{"server", "--confdir", dir, "--log-level", "warn", "--announce", "--audit-sync", o.AuditSync}
		if o.ServerProfile != "" && i == 0 {
			args = append(args, "--cpu-profile", o.ServerProfile)
		}
		if !o.Pair {
			// What the audit log costs is measured on the same server,
			// through a listener that records nothing.
			args = append(args, "--bench-unaudited-listen", "127.0.0.1:0")
		}
		p, err := o.Start(ctx, args...)
		if err != nil {
			return nil, err
		}
		s.servers = append(s.servers, p)
	}
	s.url, s.unaudited = s.servers[0].URL, s.servers[0].Unaudited
	if o.Pair {
		s.url += "," + s.servers[1].URL
	}
	return s, nil
}
