package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A pod's Ready condition is believed only while its node is there and
// ready.
func TestObservePodBelievesReadyOnlyOnAReadyNode(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kts-a-0"}, Spec: corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	node := func(status corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeReady, Status: status, Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}}}}
	}
	deleting := pod.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	for _, tc := range []struct {
		name  string
		pod   *corev1.Pod
		node  *corev1.Node
		ready bool
		why   string
	}{
		{"ready on a ready node", pod, node(corev1.ConditionTrue), true, ""},
		{"node gone", pod, nil, false, "was on node node-1, which is gone"},
		{"node not ready", pod, node(corev1.ConditionUnknown), false, "is on node node-1, which is not ready (NodeStatusUnknown: Kubelet stopped posting node status.)"},
		{"being deleted", deleting, node(corev1.ConditionTrue), false, "is being deleted on node node-1"},
		{"no pod", nil, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := observePod("kts-a-0", tc.pod, tc.node)
			if o.Ready != tc.ready || !strings.Contains(o.Why, tc.why) || o.Exists != (tc.pod != nil) {
				t.Fatalf("observePod = %+v, want ready %v, why %q", o, tc.ready, tc.why)
			}
		})
	}
}

// A passive the scheduler cannot place beside the active says what HA
// needs and what a one-node cluster does instead; other reasons do not.
func TestPassiveWithoutASecondNodeSaysWhy(t *testing.T) {
	pending := func(reason, message string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "kts-b-0"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: reason, Message: message}}}}
	}
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		advice bool
	}{
		{"one node: anti-affinity", pending(corev1.PodReasonUnschedulable,
			"0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."), true},
		{"not enough CPU", pending(corev1.PodReasonUnschedulable, "0/2 nodes are available: 2 Insufficient cpu."), false},
		{"scheduling gated", pending(corev1.PodReasonSchedulingGated, "waiting for scheduling gates"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := memberCondition("PassiveReady", "passive", observePod("kts-b-0", tc.pod, nil))
			if c.Status != metav1.ConditionFalse || !strings.HasPrefix(c.Message, "pod kts-b-0 of the passive cannot be scheduled: ") {
				t.Fatalf("condition %+v", c)
			}
			if got := strings.Contains(c.Message, "spec.highAvailability.enabled: false (config/one-node)"); got != tc.advice {
				t.Errorf("advice given %v, want %v: %s", got, tc.advice, c.Message)
			}
		})
	}
}
