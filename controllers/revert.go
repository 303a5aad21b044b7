package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A member's StatefulSet (rolling update, pods managed in order) replaces
// its pod with one of a newer revision only once the pod is running and
// ready. So after a change of the template whose pod cannot start (an image
// that cannot be pulled, a crash loop), reverting the change leaves the
// broken pod where it is: the StatefulSet waits for it to become ready,
// which it never does. The operator deletes such a pod itself, under the
// rules of decideRevert, and the StatefulSet re-creates it on the revision
// it wants.
//
// Why such a delete cannot lose an acknowledged write:
//   - a pod's delete is not its volume's: the claims are kept (the
//     StatefulSets retain them), and the re-created pod mounts the same
//     claim, so whatever its PostgreSQL committed is still there;
//   - a pod that never became ready was in none of the clients' Services
//     (NAME-rw, NAME-ro, NAME-a, NAME-b route to ready pods only), so no
//     client was sent to it; and whatever its PostgreSQL held, if it ran
//     at all, the pair has too: a passive's database is a copy of the
//     active's, and the active acknowledges a write only once the passive
//     has applied it (synchronous replication), so the active holds every
//     write the passive holds, and the passive every write the active
//     acknowledged.
//
// What the operator leaves to a human is a pod that may have been ready on
// its revision (it was stopped by something other than the change), a pod
// that is not its own, and the active while the passive is not ready
// (unless nothing ever ran in the active's pod): see decideRevert.

// revertObservation is what decideRevert decides from: the members as
// planRoll observed them.
type revertObservation struct {
	HA bool
	// Switching: a change of the roles is under way (fencing, promotion,
	// the members restarting in their new roles); its steps own the pods.
	Switching       bool
	Active, Passive memberRollout
}

// revertState is what the operator does about a member's pod left behind
// on a revision its StatefulSet no longer wants.
type revertState struct {
	Reason, Message string // "" reason: no pod is left behind
	// Delete is the member whose pod the operator deletes (nil: none).
	Delete *memberRollout
	// Refused: a pod is left behind that the operator does not delete;
	// Message says why and what to do.
	Refused bool
}

// leftBehind reports whether a member's pod is stuck on a revision its
// StatefulSet no longer wants: the StatefulSet has the template the spec
// gives and its controller has seen it, the pod runs another revision, and
// it is not ready, for a reason that does not go away by waiting or for
// rollStallAfter. Such a pod, its StatefulSet does not replace.
func leftBehind(m memberRollout) bool {
	return m.Exists && m.PodExists && !m.Terminating && m.Applied == m.Want && m.Observed &&
		m.UpdateRevision != "" && m.Revision != m.UpdateRevision &&
		!m.Ready && (m.Failing != "" || m.NotReadyFor >= rollStallAfter)
}

// decideRevert picks the member's pod left behind (leftBehind) that the
// operator deletes, the passive's first, one at a time; or says why it
// does not. A pod left behind is deleted only when
//   - it is the member's own: controlled by the member's StatefulSet, with
//     the member's labels;
//   - it never became ready on its revision: the StatefulSet never
//     completed a rollout to that revision (its controller moves the
//     current revision to one only once the pod is ready on it), or none of
//     the pod's containers ever ran (an image that cannot be pulled); a pod
//     that may have been ready on it was stopped by something the change
//     did not do, which a human looks at first;
//   - the other member's pod is not itself being replaced (terminating, or
//     not yet made again): one member at a time;
//   - it is the passive; or it is the active and either the passive is
//     ready or nothing ever ran in the active's pod. While the passive is
//     not ready, the active's running PostgreSQL may be what the passive
//     copies or follows: a restart would set the passive back too, and
//     writes would not come back anyway until the passive is in sync, so
//     the operator leaves that call (and the pod's logs) to a human.
//
// Without high availability the one member is the active, and there is no
// passive to wait for.
func decideRevert(o revertObservation) revertState {
	if o.Switching {
		return revertState{}
	}
	order := []memberRollout{o.Active}
	if o.HA {
		order = []memberRollout{o.Passive, o.Active}
	}
	var first revertState
	for _, m := range order {
		if !leftBehind(m) {
			continue
		}
		s := decideLeftBehind(o, m)
		if s.Delete != nil {
			return s
		}
		if first.Reason == "" {
			first = s
		}
	}
	return first
}

// decideLeftBehind is decideRevert's decision for one member's pod left
// behind. Refusals name only what does not change while the pod stays as
// it is, so that each is told once (replaceLeftBehind).
func decideLeftBehind(o revertObservation, m memberRollout) revertState {
	active := m.Pod == o.Active.Pod
	other := o.Active
	if active {
		other = o.Passive
	}
	stuck := fmt.Sprintf("pod %s is stuck on revision %s, which StatefulSet %s no longer wants (it wants %s), and the StatefulSet does not replace a pod before it is ready",
		m.Pod, m.Revision, m.StatefulSet, m.UpdateRevision)
	yourself := fmt.Sprintf("delete it yourself (kubectl delete pod %s): the StatefulSet re-creates it on revision %s, with the same volume", m.Pod, m.UpdateRevision)
	refuse := func(format string, args ...any) revertState {
		return revertState{Reason: trusteev1.ReasonReplaceRefused, Refused: true, Message: stuck + "; " + fmt.Sprintf(format, args...)}
	}
	var never string
	switch {
	case !m.Ours:
		return refuse("the operator does not delete it: it is not the member's own pod (controlled by StatefulSet %s, with the member's labels)", m.StatefulSet)
	case m.NeverStarted:
		never = "none of its containers ever ran"
	case m.Revision != m.CurrentRevision:
		never = "the StatefulSet never completed a rollout to it"
	default:
		return refuse("the operator does not delete it: it may have been ready on that revision (the StatefulSet's current revision, and its containers have run), so something else stopped it. "+
			"Find out what (kubectl describe pod %s; kubectl logs %s --all-containers), then %s", m.Pod, m.Pod, yourself)
	}
	if o.HA && other.Exists && (!other.PodExists || other.Terminating) {
		return revertState{Reason: trusteev1.ReasonReplacingPod, Message: stuck + fmt.Sprintf(
			"; it is replaced once the other member's pod %s is back (one member at a time)", other.Pod)}
	}
	if active && o.HA && !other.Ready && !m.NeverStarted {
		return refuse("the operator replaces the active only while the passive %s is ready, and it is not: the active's PostgreSQL may be what the passive copies or follows, "+
			"and writes need the passive in sync anyway. Bring the passive back, or look at the pod (kubectl logs %s --all-containers) and %s", other.Pod, m.Pod, yourself)
	}
	why := m.Failing
	if why == "" {
		why = fmt.Sprintf("not ready for over %s", rollStallAfter)
	}
	return revertState{Reason: trusteev1.ReasonReplacingPod, Delete: &m, Message: fmt.Sprintf(
		"deleted pod %s: it was stuck on revision %s, which StatefulSet %s no longer wants (%s), and never became ready on it (%s); the StatefulSet re-creates it on revision %s, with the same volume",
		m.Pod, m.Revision, m.StatefulSet, why, never, m.UpdateRevision)}
}

// revertCondition is the Upgrading condition while a pod is left behind.
func revertCondition(s revertState) metav1.Condition {
	return metav1.Condition{Type: trusteev1.ConditionUpgrading, Status: metav1.ConditionTrue, Reason: s.Reason, Message: s.Message}
}

// containersNeverRan reports whether no container of the pod, init
// containers included, has ever run: each has only waited (its image not
// pulled, its configuration refused) or has not been reported yet.
func containersNeverRan(pod *corev1.Pod) bool {
	for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Running != nil ||
			cs.LastTerminationState.Terminated != nil || cs.RestartCount > 0 || (cs.Started != nil && *cs.Started) {
			return false
		}
	}
	return true
}

// replaceLeftBehind decides about the members' pods left behind (from what
// planRoll observed before the StatefulSets were applied: decideRevert acts
// only on a StatefulSet whose template did not change since) and acts: it
// deletes the pod decided on, exactly as it was observed, and says so in
// an event. A refusal the Upgrading condition carries; tellRefusal makes it
// an event once that condition is recorded.
func (r *ServerReconciler) replaceLeftBehind(ctx context.Context, kts *trusteev1.KeyTrusteeServer, o revertObservation) (revertState, error) {
	s := decideRevert(o)
	if s.Delete != nil {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: kts.Namespace, Name: s.Delete.Pod}}
		err := r.Delete(ctx, pod, client.Preconditions{UID: &s.Delete.UID, ResourceVersion: &s.Delete.ResourceVersion})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			// Gone, or changed since it was seen: decided again on the
			// next reconcile, from what it is then.
			return revertState{}, nil
		}
		if err != nil {
			return revertState{}, fmt.Errorf("deleting pod %s, left behind on a revision no longer wanted: %w", s.Delete.Pod, err)
		}
		r.Recorder.Eventf(kts, pod, corev1.EventTypeNormal, s.Reason, "DeletePod", "%s", s.Message)
	}
	return s, nil
}

// tellRefusal makes a refusal a Warning event once: after the status that
// carries it has been recorded, and only when the recorded status before
// (prev, the Upgrading condition) did not carry it already. Told before
// the status is recorded, a status write that loses to another writer
// would have it told again.
func (r *ServerReconciler) tellRefusal(kts *trusteev1.KeyTrusteeServer, prev *metav1.Condition, s revertState) {
	if s.Refused && (prev == nil || prev.Reason != s.Reason || prev.Message != s.Message) {
		r.Recorder.Eventf(kts, nil, corev1.EventTypeWarning, s.Reason, "DeletePod", "%s", s.Message)
	}
}
