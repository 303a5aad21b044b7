package hsmtest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"trustee.dev/trustee/server/hsm"
	"trustee.dev/trustee/test/harness"
)

// A Remote is a SoftHSM2 token served by `p11-kit server` on a unix socket
// and reached through p11-kit's client module: an HSM on the other end of a
// connection. Stop kills the server (the HSM is lost), Start brings it back
// with the same token and keys, Pause and Resume freeze and thaw it (an HSM
// that stops answering).
//
// p11-kit 0.24 (Debian 12) does not carry CKM_AES_GCM over its protocol, so
// Seal and Open fail through a Remote with CKR_MECHANISM_INVALID; key lookup,
// generation, attributes and token information work. Its client module also
// sometimes deadlocks when the server is killed while several threads are in
// calls: stop the server while calls run one at a time.
type Remote struct {
	t      testing.TB
	cfg    hsm.Config
	conf   string // the server's SOFTHSM2_CONF
	socket string

	mu   sync.Mutex
	proc *harness.Process // nil while stopped
}

// clientModule finds p11-kit's client module (its directory depends on the architecture).
func clientModule() string {
	m, _ := filepath.Glob("/usr/lib/*/pkcs11/p11-kit-client.so")
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// NewRemote makes a fresh SoftHSM2 token in its own directory, starts
// `p11-kit server` for it and points this process's p11-kit client at it
// (t.Setenv of P11_KIT_SERVER_ADDRESS, so t must not be parallel; one Remote
// at a time per process). The server is stopped when t ends.
func NewRemote(t testing.TB) *Remote {
	t.Helper()
	needSoftHSM(t)
	if _, err := exec.LookPath("p11-kit"); err != nil {
		missing(t, "p11-kit is not installed (Debian package p11-kit)")
	}
	mod := clientModule()
	if mod == "" {
		missing(t, "p11-kit's client module p11-kit-client.so is not installed (Debian package p11-kit-modules)")
	}

	// A short directory for the socket: unix socket paths are limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "p11kit-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })

	r := &Remote{
		t:      t,
		conf:   writeConf(t, t.TempDir()),
		socket: filepath.Join(sockDir, "s"),
		cfg: hsm.Config{
			Module:     mod,
			TokenLabel: "kts-remote",
			PIN:        secret(8),
		},
	}
	dirs.Store(envKey(r.cfg), initToken(t, r.conf, r.cfg.TokenLabel, r.cfg.PIN))
	addr := "unix:path=" + r.socket
	t.Setenv("P11_KIT_SERVER_ADDRESS", addr)
	envs.Store(envKey(r.cfg), []string{"P11_KIT_SERVER_ADDRESS=" + addr})
	t.Cleanup(func() {
		envs.Delete(envKey(r.cfg))
		dirs.Delete(envKey(r.cfg))
		r.Stop()
	})
	r.Start()
	return r
}

// Config returns the Config that opens the token through p11-kit's client module.
func (r *Remote) Config() hsm.Config { return r.cfg }

// Start starts the server (again) and waits for its socket.
func (r *Remote) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		return
	}
	os.Remove(r.socket)
	cmd := exec.Command("p11-kit", "server", "--foreground", "--name", r.socket,
		"--provider", SoftHSMModule, "pkcs11:token="+r.cfg.TokenLabel)
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+r.conf)
	// Its own process group: the server forks a process per connection, and
	// Stop must kill those too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p, err := harness.StartProcess("p11-kit server", cmd)
	if err != nil {
		r.t.Fatal(err)
	}
	r.proc = p
	// Ready when it accepts connections: the socket file appears before the
	// server listens on it, and a client that cannot connect sees no tokens.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", r.socket); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.stopLocked()
			r.t.Fatalf("p11-kit server does not listen on %s after 10s; its output:\n%s", r.socket, p.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop kills the server and the processes it forked for connections: the
// client's calls fail from then on.
func (r *Remote) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked()
}

func (r *Remote) stopLocked() {
	if r.proc == nil {
		return
	}
	r.proc.Signal(syscall.SIGKILL)
	<-r.proc.Exited()
	r.proc = nil
	os.Remove(r.socket)
}

// Pause stops (SIGSTOP) the server and its connection processes: the
// client's calls wait for an answer that does not come until Resume.
func (r *Remote) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues (SIGCONT) a paused server.
func (r *Remote) Resume() { r.signal(syscall.SIGCONT) }

func (r *Remote) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.Signal(sig)
	}
}
