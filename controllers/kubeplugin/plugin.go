// Package kubeplugin is `kubectl trustee`: a kubectl plugin (the kts binary
// called as kubectl-trustee, or `kts kubectl`) for the people who run a
// Trustee pair. It reads what the operator writes into the status of
// KeyTrusteeServers, BackupSchedules and Organizations, and asks for what the
// operator already does:
//
//   - status NAME: the pair at a glance (statusReport);
//   - switchover NAME [--to a|b]: sets spec.activeMember and follows the
//     operator's Switchover condition (decideSwitchover, switchProgress);
//   - backup SCHEDULE: a Job from the BackupSchedule's CronJob, as
//     `kubectl create job --from=cronjob/...` makes it (backupJob);
//   - drill SCHEDULE [ARCHIVE]: a Job on the CronJob's pod template that
//     runs `kts backup verify` on an archive (drillJob).
//
// Each command observes, decides in a pure function (table tests) and acts
// through a controller-runtime client. What is refused changes nothing.
package kubeplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// Plugin runs the commands in one namespace of one cluster.
type Plugin struct {
	Client    client.Client
	Namespace string
	// Out is where a command prints.
	Out io.Writer
	// Now is the clock (ages, names); time.Now when nil.
	Now func() time.Time
	// Poll is how often a wait reads the status again (default 2s).
	Poll time.Duration
}

// Connection is where to connect, as kubectl's flags say it.
type Connection struct {
	// Kubeconfig is --kubeconfig ("": $KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// Context is --context ("": the current context).
	Context string
	// Namespace is -n/--namespace ("": the context's namespace, else
	// "default").
	Namespace string
}

// Connect makes a Plugin for the cluster and namespace c names, reading
// the kubeconfig as kubectl does.
func Connect(c Connection, out io.Writer) (*Plugin, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: c.Context}
	overrides.Context.Namespace = c.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no cluster to talk to: give --kubeconfig, set KUBECONFIG, or write ~/.kube/config")
		}
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return New(cfg, ns, out)
}

// New makes a Plugin on a REST configuration, in namespace ns.
func New(cfg *rest.Config, ns string, out io.Writer) (*Plugin, error) {
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, err
	}
	return &Plugin{Client: c, Namespace: ns, Out: out}, nil
}

// Scheme holds the kinds the plugin reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(trusteev1.AddToScheme(s))
	return s
}

func (p *Plugin) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Plugin) poll() time.Duration {
	if p.Poll > 0 {
		return p.Poll
	}
	return 2 * time.Second
}

// every runs step now and then every poll interval until it is done or
// fails, or timeout has passed (timedOut).
func (p *Plugin) every(ctx context.Context, timeout time.Duration, step func() (done bool, err error)) (timedOut bool, err error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(p.poll())
	defer tick.Stop()
	for {
		if done, err := step(); done || err != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-deadline.C:
			return true, nil
		case <-tick.C:
		}
	}
}
