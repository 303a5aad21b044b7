package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"trustee.dev/trustee/bench/loadgen"
	"trustee.dev/trustee/server/client"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/hsmadmin"
	"trustee.dev/trustee/server/hsmkeys"
	"trustee.dev/trustee/server/openpgp"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/server/store"
)

// softHSMModule is where Debian's softhsm2 package puts its PKCS#11 library.
const softHSMModule = "/usr/lib/softhsm/libsofthsm2.so"

// hsmTarget is one of the servers bench hsm measures.
type hsmTarget struct {
	name    string
	dir     string
	clients []*client.Client
}

// HSM starts, on one scratch PostgreSQL, a server with the file keyring,
// one with its keys in a SoftHSM2 token (set up as kts keyhsm init does) and one on the
// same token without the data key cache, and measures get and put on each
// in interleaved rounds.
func HSM(ctx context.Context, out io.Writer, o Options) (err error) {
	if o.Workers < 1 || o.Rounds < 1 || o.Size < 1 || o.Prefill < 1 {
		return errors.New("--concurrency, --rounds, --size and --prefill must be positive")
	}
	if _, err := os.Stat(softHSMModule); err != nil {
		return fmt.Errorf("SoftHSM2 is not installed (%s): apt-get install softhsm2", softHSMModule)
	}
	root, err := os.MkdirTemp("", "kts-bench-hsm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	os.Chmod(root, 0o755)
	pin, err := newSoftHSMToken(root, "kts-bench")
	if err != nil {
		return err
	}
	pinFile := filepath.Join(root, "hsm.pin")
	if err := os.WriteFile(pinFile, []byte(pin+"\n"), 0o600); err != nil {
		return err
	}

	fileDir, hsmDir, nocacheDir := filepath.Join(root, "file"), filepath.Join(root, "hsm"), filepath.Join(root, "hsm-nocache")
	dbPort, err := pg.FreePort()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "starting a scratch PostgreSQL and three servers in %s\n", root)
	listen := make([]string, 3)
	for i := range listen {
		port, err := pg.FreePort()
		if err != nil {
			return err
		}
		listen[i] = "127.0.0.1:" + strconv.Itoa(port)
	}
	for i, dir := range []string{fileDir, hsmDir} {
		if _, err := confdir.Init(dir, confdir.InitOptions{Hostname: "localhost", KeyType: openpgp.Ed25519, DBPort: dbPort, ListenAddress: listen[i]}); err != nil {
			return err
		}
	}
	cfg, err := config.Load(fileDir)
	if err != nil {
		return err
	}
	inst := confdir.Instance(fileDir, cfg, pg.DefaultRunAs)
	if err := confdir.InitDB(ctx, os.Stdout, fileDir, cfg, inst); err != nil {
		return err
	}
	if err := inst.Start(ctx); err != nil {
		return err
	}
	defer inst.Stop(context.WithoutCancel(ctx))
	password, err := confdir.ReadDBPassword(fileDir, cfg)
	if err != nil {
		return err
	}
	// The HSM servers use their own database on the same cluster.
	hcfg, err := config.Load(hsmDir)
	if err != nil {
		return err
	}
	hcfg.DBName, hcfg.DBPasswordFile = "keytrustee_hsm", cfg.Path(fileDir, cfg.DBPasswordFile)
	if err := hcfg.Save(hsmDir); err != nil {
		return err
	}
	if err := inst.CreateDatabase(ctx, password, hcfg.DBName); err != nil {
		return err
	}
	hcfg.HSMModule, hcfg.HSMTokenLabel, hcfg.HSMPINFile = softHSMModule, "kts-bench", pinFile
	if err := hsmadmin.InitKeys(ctx, io.Discard, hsmDir, hcfg, hsmkeys.KEKLabelPrefix+"1"); err != nil {
		return err
	}
	// The third server: the same state, calling the token for every key.
	if err := exec.CommandContext(ctx, "cp", "-a", hsmDir, nocacheDir).Run(); err != nil {
		return err
	}
	ncfg := hcfg
	ncfg.HSMDataKeyCacheSeconds, ncfg.ListenAddress = 0, listen[2]
	if err := ncfg.Save(nocacheDir); err != nil {
		return err
	}

	targets := []*hsmTarget{{name: "file"}, {name: "hsm"}, {name: "hsm-nocache"}}
	for i, dir := range []string{fileDir, hsmDir, nocacheDir} {
		p, err := o.Start(ctx, "server", "--confdir", dir, "--log-level", "warn", "--announce")
		if err != nil {
			return err
		}
		defer p.Stop()
		st, err := confdir.Open(dir)
		if err != nil {
			return err
		}
		db, err := store.Open(ctx, st.DSN(), 2)
		st.Close()
		if err != nil {
			return err
		}
		defer db.Close()
		to := o
		to.Server = p.URL
		to.Pair = true // each server has its own self-signed certificate: pin it
		if targets[i].clients, _, err = benchClients(ctx, db, to, ""); err != nil {
			return err
		}
		targets[i].dir = dir
	}
	payload := make([]byte, o.Size)
	rand.Read(payload)
	fmt.Fprintf(out, "prefilling %d deposits of %d bytes on each server\n", o.Workers*o.Prefill, o.Size)
	for _, t := range targets {
		for w, c := range t.clients {
			for i := 0; i < o.Prefill; i++ {
				if err := c.Put(ctx, "p-"+strconv.Itoa(i), payload); err != nil {
					return fmt.Errorf("prefill %s client %d: %w", t.name, w, err)
				}
			}
		}
	}

	results := map[string][]loadgen.Result{}
	for round := 1; round <= o.Rounds; round++ {
		runID := fmt.Sprintf("%s-%d", hex.EncodeToString(payload[:4]), round)
		fmt.Fprintf(out, "\nround %d/%d  load average %s\n", round, o.Rounds, loadAverage())
		for _, kind := range []string{"get", "put"} {
			for _, t := range targets {
				clients := t.clients
				op := func(ctx context.Context, w, seq int) error {
					if kind == "put" {
						return clients[w].Put(ctx, fmt.Sprintf("w-%s-%d", runID, seq), payload)
					}
					b, err := clients[w].Get(ctx, "p-"+strconv.Itoa(seq%o.Prefill))
					if err == nil && len(b) != o.Size {
						err = fmt.Errorf("got %d bytes", len(b))
					}
					return err
				}
				name := t.name + "-" + kind
				r := loadgen.ClosedLoop(ctx, name, o.Workers, o.Warmup, o.Window, op)
				results[name] = append(results[name], r)
				fmt.Fprintf(out, "  %s\n", r)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
	}
	fmt.Fprintf(out, "\nmedian over %d rounds (range), %d clients, %d-byte values, %v windows:\n", o.Rounds, o.Workers, o.Size, o.Window)
	errorsSeen := 0
	for _, rs := range results {
		for _, r := range rs {
			errorsSeen += r.Errors
		}
	}
	for _, line := range []struct{ a, b, what string }{
		{"hsm-get", "file-get", "get, HSM keyring (data key cache) / file keyring"},
		{"hsm-put", "file-put", "put, HSM keyring / file keyring (one HSM wrap per put)"},
		{"hsm-nocache-get", "file-get", "get, HSM keyring without cache / file keyring (one HSM unwrap per get)"},
		{"hsm-nocache-put", "file-put", "put, HSM keyring without cache / file keyring"},
	} {
		var xs []float64
		for i := range results[line.a] {
			xs = append(xs, results[line.a][i].Rate()/results[line.b][i].Rate())
		}
		m, lo, hi := loadgen.Median(xs)
		fmt.Fprintf(out, "  %-72s %.2f (%.2f–%.2f)\n", line.what, m, lo, hi)
	}
	if errorsSeen > 0 {
		return fmt.Errorf("%d operations failed: the run is void", errorsSeen)
	}
	return nil
}

// newSoftHSMToken makes a SoftHSM2 token labelled label in dir/tokens,
// points this process (and the servers it starts) at it, and returns the
// user PIN.
func newSoftHSMToken(dir, label string) (string, error) {
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		return "", err
	}
	os.Setenv("SOFTHSM2_CONF", conf)
	secret := func() string {
		b := make([]byte, 8)
		rand.Read(b)
		return hex.EncodeToString(b)
	}
	pin := secret()
	out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", secret(), "--pin", pin).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("softhsm2-util --init-token: %w: %s", err, out)
	}
	return pin, nil
}
