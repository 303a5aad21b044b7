package controllers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/member/contract"
)

// serverObservation is what the reconciler saw of a server's parts; the
// status is a pure function of it.
type serverObservation struct {
	Generation  int64
	HA          bool
	Certificate condition // CertificateReady as observed
	Active      podObservation
	Passive     podObservation
	// Replication is the active's report of its synchronous standby; nil
	// when it could not be asked (the active is not ready).
	Replication *replicationObservation
}

// condition is an observed status, reason and message.
type condition struct {
	OK              bool
	Reason, Message string
}

// podObservation is a member's pod as seen.
type podObservation struct {
	Name   string
	IP     string
	Exists bool
	Ready  bool
	// Why is the pod's own explanation when it is not ready, e.g. the
	// scheduler's reason for Pending.
	Why string
	// AntiAffinity: the scheduler placed it nowhere because no node is
	// free of the other member (the pair's anti-affinity).
	AntiAffinity bool
}

// replicationObservation is the replication part of the active's /readyz.
type replicationObservation struct {
	Attached  bool
	SyncState string
	Err       string
}

// observePod reads readiness and the reason it is missing from a pod and
// the node it was put on (nil when that node is gone). A pod's Ready
// condition is only as fresh as its node's last report: on a node that is
// gone or not ready, the pod is not counted ready.
func observePod(name string, pod *corev1.Pod, node *corev1.Node) podObservation {
	o := podObservation{Name: name}
	if pod == nil {
		return o
	}
	o.Exists, o.IP = true, pod.Status.PodIP
	if !pod.DeletionTimestamp.IsZero() {
		o.Why = "is being deleted"
		if pod.Spec.NodeName != "" {
			o.Why += fmt.Sprintf(" on node %s", pod.Spec.NodeName)
		}
		return o
	}
	if pod.Spec.NodeName != "" {
		if node == nil {
			o.Why = fmt.Sprintf("was on node %s, which is gone: waiting for the pod to be removed and made again on another node", pod.Spec.NodeName)
			return o
		}
		if ready := nodeReady(node); ready != nil && ready.Status != corev1.ConditionTrue {
			o.Why = fmt.Sprintf("is on node %s, which is not ready (%s: %s)", node.Name, ready.Reason, ready.Message)
			return o
		}
	}
	for _, c := range pod.Status.Conditions {
		switch {
		case c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue:
			o.Ready = true
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse:
			o.Why = fmt.Sprintf("cannot be scheduled: %s", c.Message)
			o.AntiAffinity = c.Reason == corev1.PodReasonUnschedulable && strings.Contains(c.Message, "anti-affinity")
		}
	}
	if o.Why == "" && !o.Ready {
		o.Why = fmt.Sprintf("is %s", pod.Status.Phase)
		for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil && w.Reason != "" {
				o.Why = fmt.Sprintf("container %s is waiting: %s", cs.Name, w.Reason)
				break
			}
			if !cs.Ready && cs.State.Running != nil {
				o.Why = fmt.Sprintf("container %s is running but not ready", cs.Name)
				break
			}
		}
	}
	return o
}

func memberCondition(typ, role string, p podObservation) metav1.Condition {
	c := metav1.Condition{Type: typ}
	switch {
	case p.Ready:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, trusteev1.ReasonPodReady, fmt.Sprintf("pod %s is ready", p.Name)
	case !p.Exists && role == config.RolePassive:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, trusteev1.ReasonPodMissing,
			fmt.Sprintf("pod %s of the passive does not exist yet: it is made once the active's pod is placed on a node", p.Name)
	case !p.Exists:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, trusteev1.ReasonPodMissing, fmt.Sprintf("pod %s of the %s does not exist yet", p.Name, role)
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, trusteev1.ReasonPodNotReady, fmt.Sprintf("pod %s of the %s %s", p.Name, role, p.Why)
		if p.AntiAffinity {
			c.Message += "; " + oneNodeAdvice
		}
	}
	return c
}

// oneNodeAdvice is what status says when a member cannot be placed for
// want of a second node.
const oneNodeAdvice = "high availability runs the active and the passive on separate nodes " +
	"(spec.scheduling.topologyKey): add a node, or on a one-node cluster set " +
	"spec.highAvailability.enabled: false (config/one-node)"

// serverConditions derives every condition of a KeyTrusteeServer from what
// was observed.
func serverConditions(o serverObservation) []metav1.Condition {
	cert := metav1.Condition{Type: trusteev1.ConditionCertificateReady, Status: metav1.ConditionFalse, Reason: o.Certificate.Reason, Message: o.Certificate.Message}
	if o.Certificate.OK {
		cert.Status = metav1.ConditionTrue
	}
	active := memberCondition(trusteev1.ConditionActiveReady, config.RoleActive, o.Active)
	passive := memberCondition(trusteev1.ConditionPassiveReady, config.RolePassive, o.Passive)
	repl := metav1.Condition{Type: trusteev1.ConditionReplicating, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonNotStreaming}
	switch {
	case !o.HA:
		passive = metav1.Condition{Type: trusteev1.ConditionPassiveReady, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonHighAvailabilityDisabled,
			Message: "high availability is off: the server runs without a passive"}
		repl.Reason, repl.Message = trusteev1.ReasonHighAvailabilityDisabled, "high availability is off: nothing replicates"
	case o.Replication == nil:
		repl.Message = "the active cannot be asked about its standby: " + active.Message
	case o.Replication.Err != "":
		repl.Message = "the active did not report on its standby: " + o.Replication.Err
	case contract.InSync(o.Replication.Attached, o.Replication.SyncState):
		repl.Status, repl.Reason, repl.Message = metav1.ConditionTrue, trusteev1.ReasonStreaming, "the passive is the active's synchronous standby"
	case o.Replication.Attached:
		repl.Message = fmt.Sprintf("the passive is attached but not synchronous (sync_state %q): writes are refused until it catches up", o.Replication.SyncState)
	default:
		repl.Message = "the passive is not streaming from the active: writes are refused, reads go on"
	}

	parts := []metav1.Condition{cert, active}
	if o.HA {
		parts = append(parts, passive, repl)
	}
	ready := metav1.Condition{Type: trusteev1.ConditionReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonReconciled, Message: "the server answers"}
	if o.HA {
		ready.Message = "both members answer and the passive is the active's synchronous standby"
	}
	var notReady []string
	for _, c := range parts {
		if c.Status != metav1.ConditionTrue {
			notReady = append(notReady, c.Type)
			if ready.Status == metav1.ConditionTrue {
				ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, c.Reason, c.Message
			}
		}
	}
	degraded := metav1.Condition{Type: trusteev1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonReconciled, Message: "nothing is degraded"}
	if len(notReady) > 0 {
		degraded.Status, degraded.Reason = metav1.ConditionTrue, ready.Reason
		degraded.Message = fmt.Sprintf("not ready: %v; %s", notReady, service(o, active, passive, repl))
	}
	out := []metav1.Condition{ready, degraded, cert, active, passive, repl}
	for i := range out {
		out[i].ObservedGeneration = o.Generation
	}
	return out
}

// service says what clients get from the pair while it is not ready.
func service(o serverObservation, active, passive, repl metav1.Condition) string {
	aUp, pUp := active.Status == metav1.ConditionTrue, passive.Status == metav1.ConditionTrue
	switch {
	case !o.HA && aUp:
		return "the server answers"
	case !o.HA:
		return "no server answers: reads and writes wait for the active"
	case aUp && pUp && repl.Status == metav1.ConditionTrue:
		return "reads and writes are served"
	case aUp && pUp:
		return "reads are served by both members; writes are refused until the passive is in sync"
	case aUp:
		return "reads are served by the active; writes are refused until the passive is back and in sync"
	case pUp:
		return "reads only, served by the passive; writes wait for the active"
	default:
		return "neither member answers: no reads, no writes"
	}
}

// setConditions puts the conditions into a status list, keeping each
// condition's lastTransitionTime while its status stays the same.
func setConditions(list *[]metav1.Condition, conds []metav1.Condition) {
	for _, c := range conds {
		meta.SetStatusCondition(list, c)
	}
}

func nodeReady(n *corev1.Node) *corev1.NodeCondition {
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
