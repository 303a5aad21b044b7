package controllers

import (
	"strings"
	"testing"
	"time"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A change of the pod template rolls the passive first, then the active
// once the passive is ready and in sync; a passive that cannot start stops
// the roll with the active untouched.
func TestDecideRoll(t *testing.T) {
	member := func(pod, applied, want string, current, ready bool) memberRollout {
		return memberRollout{Pod: pod, Exists: true, Applied: applied, Want: want, Current: current, Ready: ready}
	}
	settled := func(pod string) memberRollout { return member(pod, "old", "old", true, true) }
	for _, c := range []struct {
		name       string
		o          rollObservation
		reason     string
		holdActive bool
		message    string
	}{
		{"nothing changes", rollObservation{HA: true, Active: settled("a"), Passive: settled("p"), InSync: true}, "", false, ""},
		{"one member restarts as it must", rollObservation{Active: member("a", "old", "new", true, true)}, "", false, ""},
		{"a pair being made", rollObservation{HA: true, Active: member("a", "old", "new", true, true)}, "", false, ""},
		{"a new template: the passive first",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true), Passive: member("p", "old", "new", true, true), InSync: true},
			trusteev1.ReasonUpdatingPassive, true, "restarting the passive p on the new template first; the active a keeps serving"},
		{"the passive restarting",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true), Passive: member("p", "new", "new", false, false), InSync: true},
			trusteev1.ReasonUpdatingPassive, true, "restarting the passive p"},
		{"the passive up but not yet in sync",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true), Passive: member("p", "new", "new", true, true)},
			trusteev1.ReasonWaitingForSync, true, "waiting for it to be the synchronous standby again"},
		{"the passive ready and in sync: the active's turn",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true), Passive: member("p", "new", "new", true, true), InSync: true},
			trusteev1.ReasonUpdatingActive, false, "restarting the active a: writes pause until it is back"},
		{"the active restarting",
			rollObservation{HA: true, Active: member("a", "new", "new", false, false), Passive: member("p", "new", "new", true, true)},
			trusteev1.ReasonUpdatingActive, false, "restarting the active a on the new template"},
		{"the passive cannot pull the new image",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true), InSync: true,
				Passive: memberRollout{Pod: "p", Exists: true, Applied: "new", Want: "new", Current: true, Failing: "container server: ImagePullBackOff"}},
			trusteev1.ReasonRollStopped, true, "stopped: the passive p does not start on the new template (container server: ImagePullBackOff); the active a is untouched"},
		{"the passive never gets ready",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true),
				Passive: memberRollout{Pod: "p", Exists: true, Applied: "new", Want: "new", Current: true, NotReadyFor: 11 * time.Minute}},
			trusteev1.ReasonRollStopped, true, "has not become ready on the new template in 11m0s"},
		{"the passive slow to get ready",
			rollObservation{HA: true, Active: member("a", "old", "new", true, true),
				Passive: memberRollout{Pod: "p", Exists: true, Applied: "new", Want: "new", Current: true, NotReadyFor: time.Minute}},
			trusteev1.ReasonUpdatingPassive, true, ""},
		{"a promotion: the members restart in their new roles at once",
			rollObservation{HA: true, Active: memberRollout{Pod: "a", Exists: true, Role: "passive", Applied: "old", Want: "new", Current: true, Ready: true},
				Passive: memberRollout{Pod: "p", Exists: true, Role: "active", Applied: "old", Want: "new", Current: true}},
			trusteev1.ReasonPromoting, false, "new roles"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := decideRoll(c.o)
			if s.Reason != c.reason || s.HoldActive != c.holdActive || !strings.Contains(s.Message, c.message) {
				t.Errorf("got %+v; want reason %q, hold %v, a message with %q", s, c.reason, c.holdActive, c.message)
			}
		})
	}
}
