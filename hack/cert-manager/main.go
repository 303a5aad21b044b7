// Command cert-manager-controller runs cert-manager's controller for the
// operator's tests (test/envtestenv), built from the cert-manager module:
// its own cmd/controller is a module of its own that the Go module proxy
// does not serve. It runs the controllers that Certificates from SelfSigned
// and CA issuers need, and nothing of ACME, Vault, Venafi or the ingress and
// Gateway shims.
//
// It talks to the API server of --kubeconfig and to nothing else: there is
// no in-cluster fallback, no leader election (one instance per API server)
// and no metrics, health or profiling listener. Once its informers' caches
// are synced it prints "ready" on standard output; it logs to standard error
// (-v sets the verbosity) and stops on SIGTERM or SIGINT.
//
// Built by hack/build-cert-manager.sh, which reads the version to build from
// the github.com/cert-manager/cert-manager require line of go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// The issuer types the issuers and clusterissuers controllers set up.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllers are the names (in controller.Known()) of the controllers run.
var controllers = []string{
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	issuers.ControllerName,
	clusterissuers.ControllerName,
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server to run against (required)")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "kube-system",
		"namespace of the Secrets that ClusterIssuers refer to")
	workers := flag.Int("concurrent-workers", 5, "workers of each controller")
	var klogFlags flag.FlagSet
	klog.InitFlags(&klogFlags)
	flag.Var(klogFlags.Lookup("v").Value, "v", "log verbosity (2: what each controller does)")
	flag.Parse()
	if *kubeconfig == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: cert-manager-controller --kubeconfig FILE [--cluster-resource-namespace NS] [-v N]")
		os.Exit(2)
	}

	logf.InitLogs()
	defer logf.FlushLogs()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log, "controller")

	if err := run(ctx, *kubeconfig, *clusterResourceNamespace, *workers); err != nil {
		logf.Log.Error(err, "cert-manager controller failed")
		logf.FlushLogs()
		os.Exit(1)
	}
}

// run runs the controllers until ctx ends or one of them fails. The
// options not set here are cert-manager's defaults; ACME's do not matter, as
// no ACME controller runs.
func run(ctx context.Context, kubeconfig, clusterResourceNamespace string, workers int) error {
	factory, err := controller.NewContextFactory(ctx, controller.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions: controller.IssuerOptions{
			ClusterResourceNamespace: clusterResourceNamespace,
		},
		CertificateOptions: controller.CertificateOptions{
			CopiedAnnotationPrefixes: []string{
				"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/",
			},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}
	// The context whose informer factories the controllers share.
	shared, err := factory.Build()
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range controllers {
		construct, ok := controller.Known()[name]
		if !ok {
			return fmt.Errorf("controller %s is not registered", name)
		}
		c, err := construct(factory)
		if err != nil {
			cancel()
			return errors.Join(fmt.Errorf("controller %s: %w", name, err), g.Wait())
		}
		g.Go(func() error {
			if err := c.Run(workers, ctx); err != nil {
				return fmt.Errorf("controller %s: %w", name, err)
			}
			return nil
		})
	}

	// The constructors asked the factories for their informers; starting
	// the factories starts those.
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	synced := true
	for _, ok := range shared.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		synced = synced && ok
	}
	for _, ok := range shared.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
		synced = synced && ok
	}
	if synced {
		fmt.Println("ready")
	}

	err = g.Wait()
	shared.HTTP01ResourceMetadataInformersFactory.Shutdown()
	shared.KubeSharedInformerFactory.Shutdown()
	shared.SharedInformerFactory.Shutdown()
	return err
}
