// Package memberpods runs the members of a KeyTrusteeServer as local
// processes, the way their pods run them: `kts member setup`, `kts db run`
// and `kts server`, from the very Secrets and ConfigMap the operator made
// (written out as the kubelet mounts them), with the pods' paths moved
// under a directory of the test and their ports to 127.0.0.1.
package memberpods

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/pg"
	"trustee.dev/trustee/test/harness"
)

// Member is one member's pod, laid out on this machine.
type Member struct {
	Name           string // a or b
	Role           string // active or passive, as its configuration last said
	Dir            string // its root: etc/kts/..., var/lib/kts/state, run
	State          string // the state directory on its volume
	API, Admin, PG int    // its ports on 127.0.0.1
	Server, DB     *harness.Process
	bin            string
	c              client.Client
	k              *trusteev1.KeyTrusteeServer
}

// RootDir is a directory for the members that PostgreSQL's unprivileged
// account can reach, removed when t ends.
func RootDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kts-members-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// LayOut writes what member name's pod mounts (from the operator's
// Secrets and ConfigMap, read with c) under root, with the pod's paths and
// ports moved to this machine; bin is the kts binary. A passive is given
// its active, peer. The servers' certificate must hold the name localhost,
// by which the passive reaches its active here.
func LayOut(t *testing.T, ctx context.Context, c client.Client, bin, root string, k *trusteev1.KeyTrusteeServer, name string, peer *Member) *Member {
	t.Helper()
	m := &Member{Name: name, Dir: filepath.Join(root, k.Name+"-"+name), API: harness.FreePort(t), Admin: harness.FreePort(t), PG: harness.FreePort(t),
		bin: bin, c: c, k: k}
	m.State = filepath.Join(m.Dir, "var/lib/kts/state")
	if err := os.MkdirAll(filepath.Dir(m.State), 0o755); err != nil { // the volume
		t.Fatal(err)
	}
	m.Remount(t, ctx, peer)
	return m
}

// Remount writes the pod's mounts again from the Secrets and ConfigMap as
// they are now, as a new pod of the member gets them.
func (m *Member) Remount(t *testing.T, ctx context.Context, peer *Member) {
	t.Helper()
	c, k, name := m.c, m.k, m.Name
	tlsSecret := k.Spec.TLS.SecretName
	if tlsSecret == "" {
		tlsSecret = k.Name + "-server-tls"
	}
	for volume, secret := range map[string]string{"identity": k.Name + "-identity", "state": k.Name + "-state", "replication": k.Name + "-replication",
		"tls": tlsSecret, "admin-ca": k.Name + "-admin-ca"} {
		s := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: secret}, s); err != nil {
			t.Fatal(err)
		}
		m.Mount(t, volume, s.Data)
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: k.Namespace, Name: k.Name + "-config"}, cm); err != nil {
		t.Fatal(err)
	}
	var cfg config.Config
	if err := json.Unmarshal([]byte(cm.Data[name+".conf"]), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*string{&cfg.SSLCertificate, &cfg.SSLPrivateKey, &cfg.DBPasswordFile, &cfg.ServerKey, &cfg.Keyring, &cfg.SessionKey,
		&cfg.ReplicationPasswordFile, &cfg.ActiveCA, &cfg.AdminCAFile, &cfg.DBCAFile} {
		if strings.HasPrefix(*p, "/etc/kts/") {
			*p = filepath.Join(m.Dir, *p)
		}
	}
	cfg.DBSocketDir = filepath.Join(m.Dir, "run")
	cfg.ListenAddress, cfg.AdminListenAddress = fmt.Sprintf("127.0.0.1:%d", m.API), fmt.Sprintf("127.0.0.1:%d", m.Admin)
	cfg.DBPort, cfg.DBListenAddresses, cfg.ReplicationFrom = m.PG, "127.0.0.1", []string{"127.0.0.1/32"}
	if cfg.Role == config.RolePassive {
		if peer == nil {
			t.Fatalf("member %s is the passive: lay it out with its active", name)
		}
		// localhost: the name the certificate holds, which the passive's
		// PostgreSQL connections verify (DB_TLS).
		cfg.ActiveURL, cfg.ActiveDB = fmt.Sprintf("https://localhost:%d", peer.API), fmt.Sprintf("localhost:%d", peer.PG)
	}
	m.Role = cfg.Role
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	m.Mount(t, "config", map[string][]byte{name + ".conf": b})
}

// Mount writes a volume's files as the kubelet does: each replaced whole,
// mode 0440, in the group of the pod's fsGroup, here the group of the
// account PostgreSQL runs as (which reads the certificate and key).
func (m *Member) Mount(t *testing.T, volume string, files map[string][]byte) {
	t.Helper()
	dir := filepath.Join(m.Dir, "etc/kts", volume)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		tmp := filepath.Join(dir, ".."+name+".new")
		if err := os.WriteFile(tmp, data, 0o440); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tmp, os.Geteuid(), fsGroup(t)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// fsGroup is the group the pods' volumes belong to: the group of the
// account PostgreSQL runs as when the tests run as root, else the tests'.
func fsGroup(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		return os.Getegid()
	}
	u, err := user.Lookup(pg.DefaultRunAs)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return gid
}

// RunDB runs the pod's setup to its end, then its PostgreSQL. Start both
// members' databases before their servers: the active's first commit
// waits for its synchronous standby, whose copy needs the active's
// PostgreSQL.
func (m *Member) RunDB(t *testing.T) {
	t.Helper()
	if out, err := m.Setup(t); err != nil {
		t.Fatalf("%s setup: %v\n%s", m.Name, err, out)
	}
	m.DB = harness.Start(t, m.bin, m.Name+" db run", "db", "run", "--confdir", m.State)
	t.Cleanup(m.DB.Stop) // after the server's (cleanups run last first)
	waitFor(t, m.Name+"'s PostgreSQL listening", func() error {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.PG))
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// Setup runs the pod's init container to its end and returns its output
// and how it exited.
func (m *Member) Setup(t *testing.T) (string, error) {
	t.Helper()
	setup := harness.Start(t, m.bin, m.Name+" setup", m.setupArgs(t)...)
	err := setup.Wait(2 * time.Minute)
	return setup.Output(), err
}

// setupArgs are the arguments of the setup init container of the member's
// StatefulSet, with the pod's paths moved under Dir.
func (m *Member) setupArgs(t *testing.T) []string {
	t.Helper()
	sts := &appsv1.StatefulSet{}
	waitFor(t, "StatefulSet of member "+m.Name, func() error {
		return m.c.Get(context.Background(), client.ObjectKey{Namespace: m.k.Namespace, Name: m.k.Name + "-" + m.Name}, sts)
	})
	// The Secrets only setup mounts (spec.bootstrap's), as the kubelet
	// does: an optional one that does not exist is left out.
	secrets := map[string]string{}
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	for _, vm := range sts.Spec.Template.Spec.InitContainers[0].VolumeMounts {
		name, ok := secrets[vm.Name]
		rel, under := strings.CutPrefix(vm.MountPath, "/etc/kts/bootstrap/")
		if !ok || !under {
			continue
		}
		s := &corev1.Secret{}
		if err := m.c.Get(context.Background(), client.ObjectKey{Namespace: m.k.Namespace, Name: name}, s); err == nil {
			m.Mount(t, "bootstrap/"+rel, s.Data)
		}
	}
	var args []string
	for _, a := range sts.Spec.Template.Spec.InitContainers[0].Args {
		switch {
		case a == "/var/lib/kts/state":
			a = m.State
		case strings.HasPrefix(a, "/etc/kts/"):
			a = filepath.Join(m.Dir, a)
		}
		args = append(args, a)
	}
	return args
}

// RunServer starts the pod's server and waits until it serves.
func (m *Member) RunServer(t *testing.T) {
	t.Helper()
	m.Server = harness.Start(t, m.bin, m.Name+" server", "server", "--confdir", m.State)
	waitFor(t, m.Name+" serving", func() error {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", m.API), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// URL is the member's API as clients here reach it.
func (m *Member) URL() string { return fmt.Sprintf("https://localhost:%d", m.API) }

// CAFile is the CA certificate of the servers' certificate.
func (m *Member) CAFile() string { return filepath.Join(m.Dir, "etc/kts/tls/ca.crt") }

// waitFor waits a minute at most for try to succeed.
func waitFor(t *testing.T, what string, try func() error) {
	t.Helper()
	harness.Eventually(t, time.Minute, what, func() (bool, string) {
		err := try()
		return err == nil, fmt.Sprint(err)
	})
}
