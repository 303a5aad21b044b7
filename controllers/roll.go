package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/config"
)

// templateHashAnnotation is set on each member's StatefulSet: the hash of
// the pod template the operator last gave it. A change of it is a restart
// of the member, which the operator orders (see decideRoll).
const templateHashAnnotation = "trustee.dev/template-hash"

// rollStallAfter is how long the passive may stay not ready on a new
// template before the roll counts as stopped.
const rollStallAfter = 10 * time.Minute

// withTemplateHash sets the template hash annotation of sts.
func withTemplateHash(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	b, err := json.Marshal(sts.Spec.Template)
	if err != nil {
		panic(err) // a pod template always encodes
	}
	sum := sha256.Sum256(b)
	if sts.Annotations == nil {
		sts.Annotations = map[string]string{}
	}
	sts.Annotations[templateHashAnnotation] = hex.EncodeToString(sum[:8])
	return sts
}

// memberRollout is what the roll needs to know of one member.
type memberRollout struct {
	Pod     string
	Exists  bool   // its StatefulSet exists
	Role    string // the role its StatefulSet was last given ("" before roles were recorded)
	Applied string // the template hash its StatefulSet has
	Want    string // the template hash the spec gives it
	// Current: its pod runs the StatefulSet's newest revision.
	Current bool
	Ready   bool
	// Failing is why its pod cannot start, when a container waits for a
	// reason that does not go away by waiting (an image that cannot be
	// pulled, a crash loop).
	Failing string
	// NotReadyFor is how long its pod has not been ready.
	NotReadyFor time.Duration

	// What decideRevert needs besides.
	//
	// StatefulSet is the name of the member's StatefulSet.
	StatefulSet string
	// PodExists: the member's pod exists; Terminating: it is being deleted.
	PodExists, Terminating bool
	// Ours: the pod is controlled by the member's StatefulSet and carries
	// the member's labels.
	Ours bool
	// Observed: the StatefulSet's controller has seen the StatefulSet's
	// latest spec, so that UpdateRevision is the template it wants.
	Observed bool
	// Revision is the pod's controller-revision-hash; UpdateRevision and
	// CurrentRevision the StatefulSet's (the StatefulSet's controller moves
	// CurrentRevision to a revision once its pods are updated and ready, or
	// sets it to the StatefulSet's first revision).
	Revision, UpdateRevision, CurrentRevision string
	// NeverStarted: no container of the pod has ever run (containersNeverRan).
	NeverStarted bool
	// UID and ResourceVersion are the pod's as observed: a delete is made
	// on that pod as it was seen, or not at all.
	UID             types.UID
	ResourceVersion string
}

// rollObservation is what decideRoll decides from.
type rollObservation struct {
	HA      bool
	Active  memberRollout
	Passive memberRollout
	// InSync: the active reports its standby attached and synchronous.
	InSync bool
}

// rollState is where a change of the members' templates stands.
type rollState struct {
	Reason, Message string // "" reason: nothing to roll
	// HoldActive keeps the active's StatefulSet as it is: the passive goes
	// first.
	HoldActive bool
	// From is what it was decided from, as planRoll observed it before the
	// StatefulSets were applied (decideRevert decides from it too).
	From rollObservation
}

// decideRoll orders a restart of the pair: the passive first, until it
// runs the new template, is ready and is the synchronous standby again;
// then the active, whose restart is the only time writes pause (reads are
// served by the passive throughout). A passive that cannot start on the new
// template stops the roll with the active untouched.
func decideRoll(o rollObservation) rollState {
	a, p := o.Active, o.Passive
	if !o.HA || !a.Exists || !p.Exists {
		return rollState{} // one member, or a pair being made: nothing to keep serving
	}
	if (a.Role != "" && a.Role != config.RoleActive) || (p.Role != "" && p.Role != config.RolePassive) {
		// A promotion: the old active is fenced, and the members restart
		// in their new roles at once.
		return rollState{Reason: trusteev1.ReasonPromoting, Message: "the members restart in their new roles (see the Switchover condition)"}
	}
	passiveDone := p.Applied == p.Want && p.Current && p.Ready
	if a.Applied == a.Want {
		switch {
		case !a.Current:
			return rollState{Reason: trusteev1.ReasonUpdatingActive, Message: fmt.Sprintf(
				"restarting the active %s on the new template: writes pause until it is back; reads are served by the passive %s", a.Pod, p.Pod)}
		case p.Applied != p.Want || !p.Current:
			return rollState{Reason: trusteev1.ReasonUpdatingPassive, Message: fmt.Sprintf("restarting the passive %s on the new template", p.Pod)}
		}
		return rollState{}
	}
	hold := func(reason, format string, args ...any) rollState {
		return rollState{Reason: reason, Message: fmt.Sprintf(format, args...), HoldActive: true}
	}
	if p.Applied == p.Want && p.Current && !p.Ready {
		if p.Failing != "" {
			return hold(trusteev1.ReasonRollStopped, "stopped: the passive %s does not start on the new template (%s); the active %s is untouched and keeps serving. Fix or revert the change to go on",
				p.Pod, p.Failing, a.Pod)
		}
		if p.NotReadyFor >= rollStallAfter {
			return hold(trusteev1.ReasonRollStopped, "stopped: the passive %s has not become ready on the new template in %s; the active %s is untouched and keeps serving. Fix or revert the change to go on",
				p.Pod, p.NotReadyFor.Round(time.Second), a.Pod)
		}
	}
	if !passiveDone {
		return hold(trusteev1.ReasonUpdatingPassive, "restarting the passive %s on the new template first; the active %s keeps serving reads and writes", p.Pod, a.Pod)
	}
	if !o.InSync {
		return hold(trusteev1.ReasonWaitingForSync, "the passive %s runs the new template; waiting for it to be the synchronous standby again before the active %s restarts", p.Pod, a.Pod)
	}
	return rollState{Reason: trusteev1.ReasonUpdatingActive, Message: fmt.Sprintf(
		"the passive %s runs the new template and is in sync; restarting the active %s: writes pause until it is back, reads are served by the passive", p.Pod, a.Pod)}
}

// rollCondition is the Upgrading condition of a roll.
func rollCondition(s rollState) metav1.Condition {
	if s.Reason == "" {
		return metav1.Condition{Type: trusteev1.ConditionUpgrading, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonUpToDate,
			Message: "every member runs the pod template the spec gives"}
	}
	return metav1.Condition{Type: trusteev1.ConditionUpgrading, Status: metav1.ConditionTrue, Reason: s.Reason, Message: s.Message}
}

// observeRollout reads a member's StatefulSet and pod for the roll.
func (r *ServerReconciler) observeRollout(ctx context.Context, in serverInputs, member string, want *appsv1.StatefulSet) (memberRollout, error) {
	n := in.names()
	m := memberRollout{Pod: n.Pod(member), StatefulSet: n.StatefulSet(member), Want: want.Annotations[templateHashAnnotation]}
	sts := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: n.StatefulSet(member)}, sts); {
	case apierrors.IsNotFound(err):
		return m, nil
	case err != nil:
		return m, err
	}
	m.Exists, m.Applied, m.Role = true, sts.Annotations[templateHashAnnotation], sts.Labels[labelRole]
	pod := &corev1.Pod{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: m.Pod}, pod); {
	case apierrors.IsNotFound(err):
		return m, nil
	case err != nil:
		return m, err
	}
	m.PodExists, m.Terminating, m.UID, m.ResourceVersion = true, !pod.DeletionTimestamp.IsZero(), pod.UID, pod.ResourceVersion
	m.Ours = metav1.IsControlledBy(pod, sts) && labels.SelectorFromSet(in.names().memberLabels(member)).Matches(labels.Set(pod.Labels))
	// Deleting a StatefulSet raises its generation, which its controller
	// no longer observes; its pod's revision still tells.
	m.Observed = sts.Status.ObservedGeneration >= sts.Generation || !sts.DeletionTimestamp.IsZero()
	m.Revision, m.UpdateRevision, m.CurrentRevision = pod.Labels[appsv1.ControllerRevisionHashLabelKey], sts.Status.UpdateRevision, sts.Status.CurrentRevision
	m.NeverStarted = containersNeverRan(pod)
	m.Current = m.Observed && m.UpdateRevision != "" && m.Revision == m.UpdateRevision && !m.Terminating
	// A StatefulSet made again around its running pod (growVolumes, which
	// does so only when the pod runs the template it is given) before its
	// controller has looked at it: the pod is older than it, and runs its
	// template.
	m.Current = m.Current || (sts.Generation == 1 && sts.Status.ObservedGeneration == 0 &&
		pod.CreationTimestamp.Before(&sts.CreationTimestamp) && !m.Terminating)
	since := pod.CreationTimestamp.Time
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			m.Ready = c.Status == corev1.ConditionTrue
			if !c.LastTransitionTime.IsZero() {
				since = c.LastTransitionTime.Time
			}
		}
	}
	if !m.Ready {
		m.NotReadyFor = time.Since(since)
	}
	for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && failingReasons[w.Reason] {
			m.Failing = fmt.Sprintf("container %s: %s", cs.Name, w.Reason)
			if w.Message != "" {
				m.Failing += ": " + w.Message
			}
			break
		}
	}
	return m, nil
}

// failingReasons are the waiting reasons of a container that will not start
// by itself.
var failingReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "CrashLoopBackOff": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}
