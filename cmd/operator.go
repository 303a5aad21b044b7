package cmd

import (
	"errors"
	"os"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"trustee.dev/trustee/controllers"
)

func newOperatorCommand() *cobra.Command {
	var (
		leaderElect              bool
		leaderElectionNamespace  string
		metricsAddr, probeAddr   string
		insecureMetrics          bool
		defaultImage, kubeconfig string
		watchNamespaces          string
	)
	cmd := &cobra.Command{
		Use:   "operator",
		Short: "Run the Kubernetes operator (the controller manager of KeyTrusteeServer, Organization and BackupSchedule)",
		Long: `operator reconciles the trustee.dev custom resources: KeyTrusteeServer into
the server pair's Secrets, certificates, StatefulSets and Services;
Organization into an organization on the server, through its admin API;
BackupSchedule into a CronJob running kts backup. See docs/OPERATOR.md.

It reads the cluster configuration from --kubeconfig, $KUBECONFIG or the
in-cluster service account.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctrl.SetLogger(zap.New(zap.UseDevMode(false)))
			if kubeconfig != "" {
				os.Setenv("KUBECONFIG", kubeconfig)
			}
			if defaultImage == "" {
				return errors.New("no server image: set --default-image or OPERATOR_IMAGE (the image the operator itself runs from)")
			}
			watch, err := controllers.ParseWatchNamespaces(watchNamespaces)
			if err != nil {
				return err
			}
			cfg, err := ctrl.GetConfig()
			if err != nil {
				return err
			}
			metrics := metricsserver.Options{BindAddress: metricsAddr, SecureServing: !insecureMetrics}
			if !insecureMetrics {
				metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
			}
			opts := controllers.ManagerOptions(watch)
			opts.Metrics = metrics
			opts.HealthProbeBindAddress = probeAddr
			opts.LeaderElection = leaderElect
			opts.LeaderElectionID = "trustee-operator.trustee.dev"
			opts.LeaderElectionNamespace = leaderElectionNamespace
			// The process ends when the manager stops, so handing the lease
			// over at once is safe, and a new operator takes over without
			// waiting for it to expire.
			opts.LeaderElectionReleaseOnCancel = true
			mgr, err := ctrl.NewManager(cfg, opts)
			if err != nil {
				return err
			}
			ropts := controllers.Options{DefaultImage: defaultImage, OperatorNamespace: os.Getenv("POD_NAMESPACE"), OperatorLabels: controllers.OperatorPodLabels}
			if err := controllers.Setup(mgr, ropts); err != nil {
				return err
			}
			if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
				return err
			}
			if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
				return err
			}
			return mgr.Start(cmd.Context())
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&leaderElect, "leader-elect", false, "elect one active operator among replicas (a Lease in the operator's namespace)")
	fl.StringVar(&leaderElectionNamespace, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the leader election Lease (default: $POD_NAMESPACE)")
	fl.StringVar(&metricsAddr, "metrics-bind-address", "0", `address of the Prometheus metrics endpoint, e.g. ":8443"; "0" turns it off`)
	fl.BoolVar(&insecureMetrics, "metrics-insecure", false, "serve metrics over plain HTTP without authentication (by default HTTPS, for callers the API server authorizes to GET /metrics)")
	fl.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fl.StringVar(&defaultImage, "default-image", os.Getenv("OPERATOR_IMAGE"), "image of servers whose spec.image is empty (default: $OPERATOR_IMAGE)")
	fl.StringVar(&watchNamespaces, "watch-namespaces", os.Getenv("WATCH_NAMESPACES"), "reconcile only the resources of these namespaces, separated by commas (default: $WATCH_NAMESPACES; empty: every namespace)")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then the in-cluster service account)")
	return cmd
}
