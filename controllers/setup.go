package controllers

import (
	"fmt"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
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
	if err := (&ServerReconciler{Client: c, Scheme: s, Recorder: mgr.GetEventRecorder("keytrusteeserver"), Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&OrganizationReconciler{Client: c, Scheme: s, Recorder: mgr.GetEventRecorder("organization"), Options: opts}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&BackupReconciler{Client: c, Scheme: s, Recorder: mgr.GetEventRecorder("backupschedule"), Options: opts}).SetupWithManager(mgr)
}

// CacheOptions keep the operator's cache to the pods and Jobs it made
// (by their labels) rather than every pod and Job of the cluster.
func CacheOptions() cache.Options {
	has := func(key string) labels.Selector {
		r, err := labels.NewRequirement(key, selection.Exists, nil)
		utilruntime.Must(err)
		return labels.NewSelector().Add(*r)
	}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:  {Label: has(labelServer)},
		&batchv1.Job{}: {Label: has(labelBackup)},
	}}
}
