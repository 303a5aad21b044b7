package controllers

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A member's pod stuck on a revision its StatefulSet no longer wants is
// deleted when it never became ready on it, is the member's own, and the
// pair can take it (the passive first, one at a time, the active only
// while the passive is ready or when nothing ever ran in it); otherwise
// the operator says why not, and does nothing.
func TestDecideRevert(t *testing.T) {
	settled := func(pod string) memberRollout {
		return memberRollout{Pod: pod, StatefulSet: strings.TrimSuffix(pod, "-0"), Exists: true, PodExists: true, Ours: true, Observed: true,
			Applied: "h1", Want: "h1", Revision: "r1", UpdateRevision: "r1", CurrentRevision: "r1", Current: true, Ready: true}
	}
	// stuck: on revision r2 after the StatefulSet went back to r1, its
	// image never pulled.
	stuck := func(pod string, change ...func(*memberRollout)) memberRollout {
		m := settled(pod)
		m.Revision, m.Current, m.Ready = "r2", false, false
		m.Failing, m.NeverStarted, m.NotReadyFor = "container setup: ErrImagePull", true, time.Minute
		for _, c := range change {
			c(&m)
		}
		return m
	}
	crashing := func(m *memberRollout) {
		m.Failing, m.NeverStarted = "container server: CrashLoopBackOff", false
	}
	pair := func(active, passive memberRollout) revertObservation {
		return revertObservation{HA: true, Active: active, Passive: passive}
	}
	const (
		none    = ""
		deleted = "deleted"
		waits   = "waits"
		refused = "refused"
	)
	for _, c := range []struct {
		name    string
		o       revertObservation
		outcome string // none, deleted, waits or refused
		pod     string // the pod deleted
		message string
	}{
		{"nothing left behind", pair(settled("kts-a-0"), settled("kts-b-0")), none, "", ""},
		{"the passive stuck after a revert: replaced",
			pair(settled("kts-a-0"), stuck("kts-b-0")), deleted, "kts-b-0",
			"deleted pod kts-b-0: it was stuck on revision r2, which StatefulSet kts-b no longer wants (container setup: ErrImagePull), and never became ready on it (none of its containers ever ran); the StatefulSet re-creates it on revision r1, with the same volume"},
		{"the passive crash-looping on a revision never rolled out to: replaced",
			pair(settled("kts-a-0"), stuck("kts-b-0", crashing)), deleted, "kts-b-0",
			"(container server: CrashLoopBackOff), and never became ready on it (the StatefulSet never completed a rollout to it)"},
		{"the passive not ready for long, for no named reason: replaced",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Failing, m.NotReadyFor = "", 11*time.Minute })), deleted, "kts-b-0",
			"(not ready for over 10m0s)"},
		{"a first template that never pulled, then fixed: replaced (nothing ran)",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.CurrentRevision = "r2" })), deleted, "kts-b-0",
			"none of its containers ever ran"},
		{"not ready for a short while, for no named reason: the StatefulSet replaces it once ready",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Failing = "" })), none, "", ""},
		{"ready on an unwanted revision: the StatefulSet's own roll",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Ready, m.Failing = true, "" })), none, "", ""},
		{"failing on the wanted revision: the roll stops, nothing to revert",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Revision, m.Current = "r1", true })), none, "", ""},
		{"the StatefulSet's controller has not seen the revert yet",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Observed = false })), none, "", ""},
		{"the StatefulSet's template changes in this reconcile",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Want = "h2" })), none, "", ""},
		{"no revision reported yet",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.UpdateRevision = "" })), none, "", ""},
		{"the pod already terminating",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Terminating = true })), none, "", ""},
		{"not the member's own pod: refused",
			pair(settled("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Ours = false })), refused, "",
			"pod kts-b-0 is stuck on revision r2, which StatefulSet kts-b no longer wants (it wants r1), and the StatefulSet does not replace a pod before it is ready; the operator does not delete it: it is not the member's own pod"},
		{"ready before on its revision, as far as can be told: refused",
			pair(settled("kts-a-0"), stuck("kts-b-0", crashing, func(m *memberRollout) { m.CurrentRevision = "r2" })), refused, "",
			"it may have been ready on that revision (the StatefulSet's current revision, and its containers have run), so something else stopped it. Find out what (kubectl describe pod kts-b-0; kubectl logs kts-b-0 --all-containers), then delete it yourself (kubectl delete pod kts-b-0): the StatefulSet re-creates it on revision r1"},
		{"the active's pod terminating: the passive waits its turn",
			pair(func() memberRollout { m := settled("kts-a-0"); m.Terminating, m.Ready = true, false; return m }(), stuck("kts-b-0")), waits, "",
			"it is replaced once the other member's pod kts-a-0 is back (one member at a time)"},
		{"the active's pod not made again yet: the passive waits its turn",
			pair(func() memberRollout { m := settled("kts-a-0"); m.PodExists, m.Ready = false, false; return m }(), stuck("kts-b-0")), waits, "",
			"once the other member's pod kts-a-0 is back"},
		{"the active stuck, the passive ready: replaced",
			pair(stuck("kts-a-0", crashing), settled("kts-b-0")), deleted, "kts-a-0", "deleted pod kts-a-0"},
		{"the active stuck with containers that ran, the passive not ready: refused",
			pair(stuck("kts-a-0", crashing), func() memberRollout { m := settled("kts-b-0"); m.Ready = false; return m }()), refused, "",
			"the operator replaces the active only while the passive kts-b-0 is ready, and it is not"},
		{"the active stuck with nothing ever run in it, the passive not ready: replaced",
			pair(stuck("kts-a-0"), func() memberRollout { m := settled("kts-b-0"); m.Ready = false; return m }()), deleted, "kts-a-0", "none of its containers ever ran"},
		{"both stuck: the passive first",
			pair(stuck("kts-a-0"), stuck("kts-b-0")), deleted, "kts-b-0", ""},
		{"the passive refused, the active with nothing ever run in it: the active replaced",
			pair(stuck("kts-a-0"), stuck("kts-b-0", func(m *memberRollout) { m.Ours = false })), deleted, "kts-a-0", ""},
		{"the passive refused, the active crash-looping: the passive's refusal is told",
			pair(stuck("kts-a-0", crashing), stuck("kts-b-0", func(m *memberRollout) { m.Ours = false })), refused, "", "pod kts-b-0 is stuck"},
		{"one member, stuck: replaced (no passive to wait for)",
			revertObservation{Active: stuck("kts-a-0", crashing)}, deleted, "kts-a-0", ""},
		{"one member: a passive StatefulSet left over is not looked at",
			revertObservation{Active: settled("kts-a-0"), Passive: stuck("kts-b-0")}, none, "", ""},
		{"a switchover under way owns the pods",
			revertObservation{HA: true, Switching: true, Active: settled("kts-a-0"), Passive: stuck("kts-b-0")}, none, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := decideRevert(c.o)
			var outcome, pod string
			switch {
			case s.Delete != nil:
				outcome, pod = deleted, s.Delete.Pod
			case s.Refused:
				outcome = refused
			case s.Reason != "":
				outcome = waits
			}
			if outcome != c.outcome || pod != c.pod || !strings.Contains(s.Message, c.message) {
				t.Errorf("got %s %q: %s %q; want %s %q, a message with %q", outcome, pod, s.Reason, s.Message, c.outcome, c.pod, c.message)
			}
			wantReason := map[string]string{none: "", deleted: trusteev1.ReasonReplacingPod, waits: trusteev1.ReasonReplacingPod, refused: trusteev1.ReasonReplaceRefused}[c.outcome]
			if s.Reason != wantReason {
				t.Errorf("reason %q, want %q", s.Reason, wantReason)
			}
		})
	}
}

// A refusal is told once (an event when the Upgrading condition did not
// already carry it), so its message holds nothing that changes while the
// pod stays stuck: not how long, not the container's waiting reason, which
// alternates between ErrImagePull and ImagePullBackOff.
func TestRevertRefusalIsStable(t *testing.T) {
	member := func(failing string, notReadyFor time.Duration) memberRollout {
		return memberRollout{Pod: "kts-b-0", StatefulSet: "kts-b", Exists: true, PodExists: true, Observed: true, Applied: "h", Want: "h",
			Revision: "r2", UpdateRevision: "r1", CurrentRevision: "r1", Failing: failing, NotReadyFor: notReadyFor}
	}
	active := memberRollout{Pod: "kts-a-0", Exists: true, PodExists: true, Ready: true}
	first := decideRevert(revertObservation{HA: true, Active: active, Passive: member("container setup: ErrImagePull", time.Minute)})
	later := decideRevert(revertObservation{HA: true, Active: active, Passive: member("container setup: ImagePullBackOff", 20*time.Minute)})
	if !first.Refused || first.Message != later.Message {
		t.Errorf("refusals differ:\n%s\n%s", first.Message, later.Message)
	}
}

// Whether any container of a pod has ever run, from its status alone.
func TestContainersNeverRan(t *testing.T) {
	waiting := func(reason string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}
	}
	for _, c := range []struct {
		name string
		init []corev1.ContainerStatus
		main []corev1.ContainerStatus
		want bool
	}{
		{"no status reported yet", nil, nil, true},
		{"the image never pulled",
			[]corev1.ContainerStatus{{Name: "setup", State: waiting("ErrImagePull")}},
			[]corev1.ContainerStatus{{Name: "server", State: waiting("PodInitializing")}}, true},
		{"its configuration refused", nil, []corev1.ContainerStatus{{Name: "server", State: waiting("CreateContainerConfigError")}}, true},
		{"the setup ran",
			[]corev1.ContainerStatus{{Name: "setup", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}}},
			[]corev1.ContainerStatus{{Name: "server", State: waiting("ErrImagePull")}}, false},
		{"a container runs", nil, []corev1.ContainerStatus{{Name: "server", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}, false},
		{"a crash loop between two runs", nil, []corev1.ContainerStatus{{Name: "server", State: waiting("CrashLoopBackOff"), RestartCount: 3,
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}}, false},
		{"restarted, its last run forgotten", nil, []corev1.ContainerStatus{{Name: "server", State: waiting("CrashLoopBackOff"), RestartCount: 1}}, false},
		{"started", nil, []corev1.ContainerStatus{{Name: "server", State: waiting(""), Started: ptr.To(true)}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			pod := &corev1.Pod{Status: corev1.PodStatus{InitContainerStatuses: c.init, ContainerStatuses: c.main}}
			if got := containersNeverRan(pod); got != c.want {
				t.Errorf("containersNeverRan: %v, want %v", got, c.want)
			}
		})
	}
}
