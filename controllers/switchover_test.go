package controllers

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A change of spec.activeMember fences the active, then, once its pod is
// gone, promotes the passive; it is refused, changing nothing, unless both
// members are ready, settled and in sync. An active whose data is lost is
// replaced the same way without being asked.
func TestDecideSwitchover(t *testing.T) {
	settled := memberRollout{Exists: true, Applied: "h", Want: "h", Current: true, Ready: true}
	restarting := memberRollout{Exists: true, Applied: "h", Want: "h2", Current: true, Ready: true}
	down := memberRollout{Exists: true, Applied: "h", Want: "h", Current: true}
	pair := func(edit func(*switchObservation)) switchObservation {
		o := switchObservation{HA: true, Active: memberA, ActivePod: "kts-a-0", PassivePod: "kts-b-0",
			ActiveRollout: settled, PassiveRollout: settled, InSync: true, InSyncAsked: true}
		edit(&o)
		return o
	}
	for _, c := range []struct {
		name     string
		o        switchObservation
		reason   string
		fenceFor string
		promote  bool
		message  string
	}{
		{"nothing asked", pair(func(o *switchObservation) {}), "", "", false, ""},
		{"the active asked for", pair(func(o *switchObservation) { o.Want = memberA }), "", "", false, ""},
		{"a healthy pair in sync: fence the active first", pair(func(o *switchObservation) { o.Want = memberB }),
			trusteev1.ReasonFencing, memberB, false, "stopping the active kts-a-0 so that it accepts no more writes"},
		{"in sync not yet known: ask before deciding", pair(func(o *switchObservation) { o.Want, o.InSyncAsked, o.InSync = memberB, false, false }),
			"", "", false, ""},
		{"not in sync: refused", pair(func(o *switchObservation) { o.Want, o.InSync = memberB, false }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the passive kts-b-0 is not the active's synchronous standby"},
		{"the passive not ready: refused", pair(func(o *switchObservation) { o.Want, o.PassiveRollout = memberB, down }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the passive kts-b-0 is not ready; nothing was changed"},
		{"the active not ready: refused", pair(func(o *switchObservation) { o.Want, o.ActiveRollout = memberB, down }),
			trusteev1.ReasonSwitchoverRefused, "", false, "the active kts-a-0 is not ready"},
		{"during a roll: refused", pair(func(o *switchObservation) { o.Want, o.ActiveRollout = memberB, restarting }),
			trusteev1.ReasonSwitchoverRefused, "", false, "restarting on a new pod template"},
		{"without high availability: refused", pair(func(o *switchObservation) { o.Want, o.HA = memberB, false }),
			trusteev1.ReasonSwitchoverRefused, "", false, "high availability is off"},
		{"fenced, its pod still there: wait", pair(func(o *switchObservation) { o.Want, o.PromoteTo, o.InSync = memberB, memberB, false }),
			trusteev1.ReasonFencing, memberB, false, "waiting for the active's pod kts-a-0 to stop"},
		{"fenced and gone: promote", pair(func(o *switchObservation) {
			o.Want, o.PromoteTo, o.ActivePodGone, o.ActiveRollout = memberB, memberB, true, memberRollout{}
		}), trusteev1.ReasonPromoting, memberB, true, "promoting the passive kts-b-0"},
		{"called off while fenced: the active comes back", pair(func(o *switchObservation) { o.Want, o.PromoteTo = memberA, memberB }),
			"", "", false, ""},
		{"the active's data lost: fence it", pair(func(o *switchObservation) { o.Lost, o.ActiveRollout, o.InSync = true, down, false }),
			trusteev1.ReasonActiveLost, memberB, false, "fencing it, then promoting the passive kts-b-0"},
		{"the active's data lost, the passive not ready: wait", pair(func(o *switchObservation) { o.Lost, o.ActiveRollout, o.PassiveRollout = true, down, down }),
			trusteev1.ReasonActiveLost, "", false, "waiting for the passive kts-b-0 to be ready"},
		{"the lost active fenced and gone: promote", pair(func(o *switchObservation) { o.PromoteTo, o.ActivePodGone = memberB, true }),
			trusteev1.ReasonPromoting, memberB, true, ""},
		{"the active's data lost without a passive: nothing to do", pair(func(o *switchObservation) { o.Lost, o.HA = true, false }),
			"", "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := decideSwitchover(c.o)
			if s.Reason != c.reason || s.FenceFor != c.fenceFor || s.Promote != c.promote || !strings.Contains(s.Message, c.message) {
				t.Errorf("got %+v;\nwant reason %q, fence for %q, promote %v, a message with %q", s, c.reason, c.fenceFor, c.promote, c.message)
			}
		})
	}
}

// The Switchover condition follows the new pair until the old active is
// its synchronous standby again.
func TestSwitchCondition(t *testing.T) {
	ready := podObservation{Name: "kts-b-0", Ready: true}
	synced := &replicationObservation{Attached: true, SyncState: "sync"}
	for _, c := range []struct {
		name   string
		s      switchState
		was    bool
		o      serverObservation
		status metav1.ConditionStatus
		reason string
	}{
		{"settled", switchState{}, false, serverObservation{Active: ready}, metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified},
		{"refused", switchState{Reason: trusteev1.ReasonSwitchoverRefused}, false, serverObservation{}, metav1.ConditionFalse, trusteev1.ReasonSwitchoverRefused},
		{"fencing", switchState{Reason: trusteev1.ReasonFencing}, false, serverObservation{}, metav1.ConditionTrue, trusteev1.ReasonFencing},
		{"the new active restarting", switchState{}, true, serverObservation{}, metav1.ConditionTrue, trusteev1.ReasonPromoting},
		{"the old active rejoining", switchState{}, true, serverObservation{Active: ready}, metav1.ConditionTrue, trusteev1.ReasonRejoining},
		{"done", switchState{}, true, serverObservation{Active: ready, Passive: podObservation{Name: "kts-a-0", Ready: true}, Replication: synced},
			metav1.ConditionFalse, trusteev1.ReasonActiveAsSpecified},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := switchCondition(c.s, c.was, c.o, memberB)
			if got.Status != c.status || got.Reason != c.reason {
				t.Errorf("got %s/%s (%s); want %s/%s", got.Status, got.Reason, got.Message, c.status, c.reason)
			}
		})
	}
}
