package envtestenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"trustee.dev/trustee/test/clusterbase"
	"trustee.dev/trustee/test/harness"
)

// CertManagerNamespace is the ClusterResourceNamespace of the cert-manager
// controller that Options.CertManager runs: the namespace of the Secrets
// that ClusterIssuers refer to. StartShared creates it.
const CertManagerNamespace = clusterbase.CertManagerNamespace

// certManagerUser is the user the controller connects as (group
// system:masters).
const certManagerUser = "cert-manager"

// How long the controller may take to sync its caches, and to stop.
const (
	certManagerReadyTimeout = time.Minute
	certManagerStopTimeout  = 10 * time.Second
)

// certManager is a running cert-manager controller process.
type certManager struct {
	proc *harness.Process
	out  *harness.Buffer // the end of its output
}

// startCertManager creates CertManagerNamespace and runs the controller bin
// against e's API server, with a kubeconfig of its own, until it says it is
// ready. When it is not, nothing of it is left running.
func startCertManager(e *Env, bin string) (*certManager, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: CertManagerNamespace}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", CertManagerNamespace, err)
	}
	user, err := e.Environment.AddUser(envtest.User{Name: certManagerUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding user %s: %w", certManagerUser, err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig of user %s: %w", certManagerUser, err)
	}
	kubeconfig := filepath.Join(e.dir, "cert-manager.kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}

	c := &certManager{out: &harness.Buffer{Max: 16 << 10}}
	var out io.Writer = c.out
	if os.Getenv("KUBEBUILDER_ATTACH_CONTROL_PLANE_OUTPUT") == "true" {
		out = io.MultiWriter(c.out, os.Stderr)
	}
	ready := harness.NewLineWatch(out, func(line string) bool { return line == "ready" })
	cmd := exec.Command(bin, "--kubeconfig="+kubeconfig, "--cluster-resource-namespace="+CertManagerNamespace, "-v=2")
	cmd.Stdout, cmd.Stderr = ready, out
	// A process group of its own, as envtest's processes have; stop ends
	// the whole group, and Wait does not wait for output from what is
	// left of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = certManagerStopTimeout
	if c.proc, err = harness.StartProcess("the cert-manager controller", cmd); err != nil {
		return nil, err
	}

	select {
	case <-ready.Seen():
		return c, nil
	case <-c.proc.Exited():
		err = fmt.Errorf("it exited: %v", c.proc.Err())
	case <-time.After(certManagerReadyTimeout):
		err = fmt.Errorf("not ready after %v", certManagerReadyTimeout)
	}
	_ = c.stop()
	return nil, fmt.Errorf("cert-manager controller %s: %w%s", bin, err, c.log())
}

// stop ends the controller's process group: SIGTERM, then SIGKILL when it
// has not ended after a while. It returns an error when the controller had
// ended before, by itself.
func (c *certManager) stop() error {
	var ended *harness.EndedError
	if err := c.proc.End(syscall.SIGTERM, certManagerStopTimeout); errors.As(err, &ended) {
		return fmt.Errorf("%w%s", err, c.log())
	}
	return nil
}

// log returns the last lines the controller wrote, under a heading.
func (c *certManager) log() string {
	return outputTail("the cert-manager controller", c.out, 40)
}

// CertManagerLog returns the last lines that the cert-manager controller
// (Options.CertManager) wrote, for a failing test to show; "" without one.
func (e *Env) CertManagerLog() string {
	if e.certManager == nil {
		return ""
	}
	return e.certManager.log()
}
