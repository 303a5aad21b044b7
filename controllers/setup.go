package controllers

import (
	"fmt"
	"slices"
	"strings"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// NewScheme knows the built-in kinds, trustee.dev's, cert-manager's and
// the Prometheus operator's (PodMonitor).
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(trusteev1.AddToScheme(s))
	utilruntime.Must(cmv1.AddToScheme(s))
	utilruntime.Must(monitoringv1.AddToScheme(s))
	return s
}

// Setup registers the three reconcilers with the manager, and the
// operator's own metrics with controller-runtime's registry (served with
// the manager's).
func Setup(mgr ctrl.Manager, opts Options) error {
	c, s := mgr.GetClient(), mgr.GetScheme()
	if err := metrics.Registry.Register(backupCollector{reader: c}); err != nil {
		return fmt.Errorf("registering the backup metrics: %w", err)
	}
	if err := (&ServerReconciler{Client: c, APIReader: mgr.GetAPIReader(), Scheme: s, Recorder: mgr.GetEventRecorder("keytrusteeserver"), Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&OrganizationReconciler{Client: c, Scheme: s, Recorder: mgr.GetEventRecorder("organization"), Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&BackupReconciler{Client: c, Scheme: s, Recorder: mgr.GetEventRecorder("backupschedule"), Options: opts}).SetupWithManager(mgr)
}

// ManagerOptions are the operator's scheme, cache and client, the same for
// `kts operator` and the tests. watchNamespaces are the namespaces it
// reconciles; none means every namespace.
func ManagerOptions(watchNamespaces []string) ctrl.Options {
	return ctrl.Options{Scheme: NewScheme(), Cache: CacheOptions(watchNamespaces), Client: ClientOptions()}
}

// CacheOptions keep the operator's cache small whatever else the cluster
// holds: only the pods, claims and Jobs it made (by their labels) rather
// than every pod, claim and Job of the cluster; no Secret's data
// (ClientOptions) and, of the Secrets it watches for changes, only their
// names; no object's managed fields. With watchNamespaces, only those
// namespaces.
func CacheOptions(watchNamespaces []string) cache.Options {
	has := func(key string) labels.Selector {
		r, err := labels.NewRequirement(key, selection.Exists, nil)
		utilruntime.Must(err)
		return labels.NewSelector().Add(*r)
	}
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                   {Label: has(labelServer)},
			&corev1.PersistentVolumeClaim{}: {Label: has(labelServer)},
			&batchv1.Job{}:                  {Label: has(labelBackup)},
			&corev1.Secret{}:                {Transform: secretNameOnly},
		},
	}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts
}

// ClientOptions read Secrets from the API server at each use, never from
// the cache: a cache of Secrets would hold every Secret of the cluster
// (Helm's releases, other applications' credentials), which the operator
// has no business keeping in memory.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}

// secretNameOnly keeps of a watched Secret what tells which resource names
// it: its namespace and name (the watch is metadata-only; annotations, such
// as kubectl's last-applied-configuration, may hold its data).
func secretNameOnly(in any) (any, error) {
	m, ok := in.(*metav1.PartialObjectMetadata)
	if !ok {
		return in, nil
	}
	return &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}}, nil
}

// ParseWatchNamespaces reads --watch-namespaces: namespace names separated
// by commas; empty means every namespace.
func ParseWatchNamespaces(list string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var out []string
	for _, ns := range strings.Split(list, ",") {
		ns = strings.TrimSpace(ns)
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("--watch-namespaces: %q is not a namespace name (%s): give names separated by commas, e.g. keys,keys-staging", ns, strings.Join(errs, "; "))
		}
		if !slices.Contains(out, ns) {
			out = append(out, ns)
		}
	}
	return out, nil
}
