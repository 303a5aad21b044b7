package controllers

import (
	"context"
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// Labels the PodMonitor gives the servers' series, from the pods' labels,
// so that alerts and dashboards can name the server and the member.
const (
	metricLabelServer = "keytrusteeserver"
	metricLabelMember = "member"
)

// podMonitor is the PodMonitor that scrapes both members' /metrics on the
// API port over HTTPS. Prometheus verifies each member's certificate with
// the ca.crt of the server certificate's Secret, by a name every member's
// certificate holds (member a's pod name: the certificate covers both
// pods, and a certificate given in spec.tls.secretName must name them).
func (in serverInputs) podMonitor() *monitoringv1.PodMonitor {
	n := in.names()
	m := &monitoringv1.PodMonitor{
		TypeMeta:   metav1.TypeMeta{APIVersion: monitoringv1.SchemeGroupVersion.String(), Kind: monitoringv1.PodMonitorsKind},
		ObjectMeta: in.meta(n.server),
	}
	// The server's own labels win over those asked for.
	m.Labels = mergeLabels(in.KTS.Spec.Monitoring.PodMonitorLabels, m.Labels)
	fromPodLabel := func(label, target string) monitoringv1.RelabelConfig {
		return monitoringv1.RelabelConfig{
			SourceLabels: []monitoringv1.LabelName{monitoringv1.LabelName("__meta_kubernetes_pod_label_" + sanitizeLabel(label))},
			TargetLabel:  target,
			Action:       "replace",
		}
	}
	m.Spec = monitoringv1.PodMonitorSpec{
		Selector:          metav1.LabelSelector{MatchLabels: n.serverSelector()},
		NamespaceSelector: monitoringv1.NamespaceSelector{MatchNames: []string{n.namespace}},
		PodMetricsEndpoints: []monitoringv1.PodMetricsEndpoint{{
			Port:   ptr.To("api"),
			Path:   "/metrics",
			Scheme: ptr.To(monitoringv1.SchemeHTTPS),
			HTTPConfigWithProxy: monitoringv1.HTTPConfigWithProxy{HTTPConfig: monitoringv1.HTTPConfig{
				TLSConfig: &monitoringv1.SafeTLSConfig{
					CA: monitoringv1.SecretOrConfigMap{Secret: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: in.tlsSecretName()}, Key: "ca.crt"}},
					ServerName: ptr.To(n.PodHost(memberA)),
				},
			}},
			RelabelConfigs: []monitoringv1.RelabelConfig{
				fromPodLabel(labelServer, metricLabelServer),
				fromPodLabel(labelMember, metricLabelMember),
			},
		}},
	}
	return m
}

// sanitizeLabel is a pod label's name as Prometheus' Kubernetes discovery
// spells it in __meta_kubernetes_pod_label_<name>: every character that is
// not a letter, a digit or _ becomes _.
func sanitizeLabel(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// podMonitorCondition says how the PodMonitor step went: nil when none is
// asked for (the condition is then removed), else PodMonitorReady.
func podMonitorCondition(kts *trusteev1.KeyTrusteeServer, err error) *metav1.Condition {
	if !kts.Spec.Monitoring.EnablePodMonitor {
		return nil
	}
	c := metav1.Condition{Type: trusteev1.ConditionPodMonitorReady, ObservedGeneration: kts.Generation,
		Status: metav1.ConditionTrue, Reason: trusteev1.ReasonPodMonitorApplied,
		Message: fmt.Sprintf("PodMonitor %s scrapes the members' /metrics", kts.Name)}
	switch {
	case err == nil:
	case meta.IsNoMatchError(err):
		c.Status, c.Reason = metav1.ConditionFalse, trusteev1.ReasonPodMonitorCRDMissing
		c.Message = "spec.monitoring.enablePodMonitor asks for a PodMonitor, but the cluster has no PodMonitor kind (monitoring.coreos.com/v1): install the Prometheus operator (its CRDs), or set enablePodMonitor to false"
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, trusteev1.ReasonPodMonitorFailed, err.Error()
	}
	return &c
}

// reconcileMonitoring applies the PodMonitor when spec.monitoring asks for
// one and deletes it when it no longer does, and returns the PodMonitorReady condition
// (nil: none asked for). A cluster without the PodMonitor kind is not an
// error: the condition says so and the rest of the server is reconciled as
// ever.
func (r *ServerReconciler) reconcileMonitoring(ctx context.Context, in serverInputs) (*metav1.Condition, error) {
	kts := in.KTS
	if !kts.Spec.Monitoring.EnablePodMonitor {
		// Only a server that had asked for one (its condition says so)
		// may have a PodMonitor to delete.
		if meta.FindStatusCondition(kts.Status.Conditions, trusteev1.ConditionPodMonitorReady) == nil {
			return nil, nil
		}
		pm := &monitoringv1.PodMonitor{ObjectMeta: in.meta(in.names().server)}
		if err := r.Delete(ctx, pm); err != nil && !apierrors.IsNotFound(err) && !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("delete PodMonitor %s: %w", pm.Name, err)
		}
		return nil, nil
	}
	err := apply(ctx, r.Client, r.Scheme, kts, in.podMonitor())
	if err != nil && !meta.IsNoMatchError(err) {
		return nil, err
	}
	return podMonitorCondition(kts, err), nil
}
