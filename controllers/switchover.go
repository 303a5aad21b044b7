package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
)

// promoteAnnotation is set on the active's StatefulSet while it is fenced
// (scaled to zero): the member to promote once its pod is gone. It keeps a
// promotion going when what started it can no longer be seen (the pod of
// an active whose volume was lost is gone once fenced).
const promoteAnnotation = "trustee.dev/promote"

// activeMemberOf is the active member the state Secret records
// (contract.KeyActiveMember, which the operator writes when it promotes the
// passive, after fencing the active).
func activeMemberOf(state map[string][]byte) string {
	return contract.RecordedActive(state[contract.KeyActiveMember])
}

// switchObservation is what decideSwitchover decides from.
type switchObservation struct {
	HA bool
	// Active is the member holding the active role; Want the one
	// spec.activeMember names ("" keeps Active).
	Active, Want string
	// PromoteTo is the fenced active's promoteAnnotation ("" when it is
	// not fenced).
	PromoteTo string
	// ActivePodGone: the active's pod does not exist.
	ActivePodGone bool
	// Lost: the active's setup found its volume empty although the
	// server's database existed (contract.ExitVolumeLost).
	Lost           bool
	ActiveRollout  memberRollout
	PassiveRollout memberRollout
	InSync         bool
	InSyncAsked    bool
	ActivePod      string
	PassivePod     string
}

// switchState is what the operator does about the roles.
type switchState struct {
	Reason, Message string
	// FenceFor scales the active to zero, to promote that member next.
	FenceFor string
	// Promote records FenceFor as the active member: the fenced active's
	// pod is gone.
	Promote bool
	// NeedSync: the decision waits on whether the passive is in sync.
	NeedSync bool
}

// target is the member that should hold the active role, and why.
func (o switchObservation) target() (member, reason string) {
	switch {
	case o.Lost && o.HA:
		return otherMember(o.Active), trusteev1.ReasonActiveLost
	case o.PromoteTo != "" && o.PromoteTo != o.Active && (o.Want == "" || o.Want == o.PromoteTo):
		if o.Want == o.PromoteTo {
			return o.PromoteTo, trusteev1.ReasonFencing
		}
		return o.PromoteTo, trusteev1.ReasonActiveLost
	case o.Want != "" && o.Want != o.Active:
		return o.Want, trusteev1.ReasonFencing
	}
	return o.Active, ""
}

// decideSwitchover moves the active role to the member spec.activeMember
// names, one safe step per call: refused unless both members are ready,
// on their current templates and in sync; then the active is fenced (its
// StatefulSet scaled to zero) and, only once its pod is gone, the passive
// is recorded as the active. The passive has every acknowledged write: the
// active acknowledges none its synchronous standby has not applied. An
// active whose volume was lost is fenced and replaced the same way without
// being asked, as soon as the passive is ready.
func decideSwitchover(o switchObservation) switchState {
	to, why := o.target()
	if to == o.Active {
		return switchState{}
	}
	if !o.HA {
		return switchState{Reason: trusteev1.ReasonSwitchoverRefused, Message: fmt.Sprintf(
			"spec.activeMember is %s, but high availability is off: there is no passive to promote; %s stays the active", to, o.ActivePod)}
	}
	if o.PromoteTo == to {
		if !o.ActivePodGone {
			msg := fmt.Sprintf("fencing: waiting for the active's pod %s to stop, so that it accepts no more writes, before the passive %s is promoted", o.ActivePod, o.PassivePod)
			if why == trusteev1.ReasonActiveLost {
				msg = "the active has lost its data; " + msg
			}
			return switchState{Reason: why, FenceFor: to, Message: msg}
		}
		return switchState{Reason: trusteev1.ReasonPromoting, FenceFor: to, Promote: true, Message: fmt.Sprintf(
			"the old active's pod %s is gone: promoting the passive %s", o.ActivePod, o.PassivePod)}
	}
	a, p := o.ActiveRollout, o.PassiveRollout
	if why == trusteev1.ReasonActiveLost {
		if !p.Ready {
			return switchState{Reason: why, Message: fmt.Sprintf(
				"the active %s has lost its data (its volume holds no database); waiting for the passive %s to be ready to promote it", o.ActivePod, o.PassivePod)}
		}
		return switchState{Reason: why, FenceFor: to, Message: fmt.Sprintf(
			"the active %s has lost its data (its volume holds no database): fencing it, then promoting the passive %s, which holds every acknowledged write", o.ActivePod, o.PassivePod)}
	}
	refuse := func(format string, args ...any) switchState {
		return switchState{Reason: trusteev1.ReasonSwitchoverRefused, Message: fmt.Sprintf(
			"spec.activeMember asks for %s as the active, refused: ", to) + fmt.Sprintf(format, args...) +
			fmt.Sprintf("; nothing was changed, and it goes ahead once that is no longer so (or set spec.activeMember back to %s)", o.Active)}
	}
	switch {
	case !a.Ready:
		return refuse("the active %s is not ready", o.ActivePod)
	case !p.Ready:
		return refuse("the passive %s is not ready", o.PassivePod)
	case a.Applied != a.Want || !a.Current || p.Applied != p.Want || !p.Current:
		return refuse("the members are restarting on a new pod template (see the Upgrading condition)")
	case !o.InSyncAsked:
		return switchState{NeedSync: true}
	case !o.InSync:
		return refuse("the passive %s is not the active's synchronous standby, so it may lack acknowledged writes", o.PassivePod)
	}
	return switchState{Reason: trusteev1.ReasonFencing, FenceFor: to, Message: fmt.Sprintf(
		"stopping the active %s so that it accepts no more writes; the passive %s is promoted once it is gone", o.ActivePod, o.PassivePod)}
}

// switchover observes the pair, decides the next step of a change of the
// active member, and takes it: fencing sets in.FenceFor (applied with the
// StatefulSets); promotion writes the identity Secret and moves in.Active.
func (r *ServerReconciler) switchover(ctx context.Context, in *serverInputs) (switchState, error) {
	kts, n := in.KTS, in.names()
	o := switchObservation{HA: kts.HighAvailabilityEnabled(), Active: in.active(), Want: kts.Spec.ActiveMember,
		ActivePod: n.Pod(in.active()), PassivePod: n.Pod(in.passive())}
	sts := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: n.StatefulSet(in.active())}, sts); {
	case apierrors.IsNotFound(err):
		return switchState{}, nil // a server being made
	case err != nil:
		return switchState{}, err
	}
	if sts.Spec.Replicas != nil && *sts.Spec.Replicas == 0 {
		o.PromoteTo = sts.Annotations[promoteAnnotation]
	}
	pod := &corev1.Pod{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: o.ActivePod}, pod); {
	case apierrors.IsNotFound(err):
		o.ActivePodGone = true
	case err != nil:
		return switchState{}, err
	default:
		o.Lost = volumeLost(pod)
	}
	if (o.Want == "" || o.Want == o.Active) && !o.Lost && o.PromoteTo == "" {
		return switchState{}, nil
	}
	cm, err := in.configMap()
	if err != nil {
		return switchState{}, err
	}
	if o.ActiveRollout, err = r.observeRollout(ctx, *in, in.active(), in.statefulSet(in.active(), cm)); err != nil {
		return switchState{}, err
	}
	if o.PassiveRollout, err = r.observeRollout(ctx, *in, in.passive(), in.statefulSet(in.passive(), cm)); err != nil {
		return switchState{}, err
	}
	s := decideSwitchover(o)
	if s.NeedSync {
		if rep := r.probeReplication(ctx, *in, pod.Status.PodIP); rep != nil && rep.Err == "" {
			o.InSync = contract.InSync(rep.Attached, rep.SyncState)
		}
		o.InSyncAsked = true
		s = decideSwitchover(o)
	}
	in.FenceFor = s.FenceFor
	if s.Promote {
		if err := r.recordActive(ctx, kts, n.State(), s.FenceFor); err != nil {
			return s, err
		}
		in.Active, in.FenceFor = s.FenceFor, ""
		r.Recorder.Eventf(kts, nil, corev1.EventTypeNormal, "Promoted", "Switchover",
			"the old active's pod %s is gone (fenced): member %s is the active now; %s rejoins as its passive", o.ActivePod, in.active(), n.Pod(in.passive()))
	}
	return s, nil
}

// volumeLost reports whether a member's setup refused to start because its
// volume holds no database although the server's database existed: it
// exited so, and has not run through since (it is waiting to be restarted
// after that exit, or that exit is its state).
func volumeLost(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.InitContainerStatuses {
		if cs.Name != contract.ContainerSetup {
			continue
		}
		if t := cs.State.Terminated; t != nil {
			return t.ExitCode == contract.ExitVolumeLost
		}
		t := cs.LastTerminationState.Terminated
		return cs.State.Waiting != nil && t != nil && t.ExitCode == contract.ExitVolumeLost
	}
	return false
}

// recordActive writes the active member into the state Secret.
func (r *ServerReconciler) recordActive(ctx context.Context, kts *trusteev1.KeyTrusteeServer, name, member string) error {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, s); err != nil {
		return err
	}
	orig := s.DeepCopy()
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[contract.KeyActiveMember] = []byte(member)
	return r.Patch(ctx, s, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}

// switchCondition is the Switchover condition: the step s took, or, once
// the roles are recorded, where the new pair stands (wasSwitching: the
// condition was True before).
func switchCondition(s switchState, wasSwitching bool, o serverObservation, active string) metav1.Condition {
	c := metav1.Condition{Type: trusteev1.ConditionSwitchover, Status: metav1.ConditionTrue, Reason: s.Reason, Message: s.Message}
	switch {
	case s.Reason == trusteev1.ReasonSwitchoverRefused:
		c.Status = metav1.ConditionFalse
	case s.Reason != "":
	case wasSwitching && !o.Active.Ready:
		c.Reason, c.Message = trusteev1.ReasonPromoting, fmt.Sprintf("member %s restarts as the active (%s)", active, o.Active.Name)
	case wasSwitching && (!o.Passive.Ready || o.Replication == nil || !contract.InSync(o.Replication.Attached, o.Replication.SyncState)):
		c.Reason, c.Message = trusteev1.ReasonRejoining, fmt.Sprintf(
			"the new active %s serves reads; the old active rejoins as the passive %s, and writes wait until it is the synchronous standby", o.Active.Name, o.Passive.Name)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified
		c.Message = fmt.Sprintf("member %s (%s) is the active", active, o.Active.Name)
	}
	return c
}
