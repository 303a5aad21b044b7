package kubeplugin

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// pair is a KeyTrusteeServer "kts" whose status has member active as the
// active, generation 2 observed, with the conditions given over a healthy
// pair's.
func pair(active string, conds ...metav1.Condition) *trusteev1.KeyTrusteeServer {
	other := "b"
	if active == "b" {
		other = "a"
	}
	k := &trusteev1.KeyTrusteeServer{ObjectMeta: metav1.ObjectMeta{Name: "kts", Namespace: "ns", Generation: 2}}
	k.Status = trusteev1.KeyTrusteeServerStatus{ObservedGeneration: 2, ActiveMember: active, Active: "kts-" + active + "-0", Passive: "kts-" + other + "-0"}
	healthy := []metav1.Condition{
		{Type: trusteev1.ConditionReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonReconciled, Message: "both members answer and the passive is the active's synchronous standby"},
		{Type: trusteev1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonReconciled, Message: "nothing is degraded"},
		{Type: trusteev1.ConditionCertificateReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonCertificateIssued},
		{Type: trusteev1.ConditionActiveReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonPodReady, Message: "pod kts-" + active + "-0 is ready"},
		{Type: trusteev1.ConditionPassiveReady, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonPodReady, Message: "pod kts-" + other + "-0 is ready"},
		{Type: trusteev1.ConditionReplicating, Status: metav1.ConditionTrue, Reason: trusteev1.ReasonStreaming, Message: "the passive is the active's synchronous standby"},
		{Type: trusteev1.ConditionUpgrading, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonUpToDate},
		{Type: trusteev1.ConditionSwitchover, Status: metav1.ConditionFalse, Reason: trusteev1.ReasonActiveAsSpecified, Message: "member " + active + " (kts-" + active + "-0) is the active"},
	}
	for _, c := range conds {
		for i := range healthy {
			if healthy[i].Type == c.Type {
				healthy[i] = c
			}
		}
	}
	for i := range healthy {
		// As the API server requires; statusReport shows none.
		healthy[i].LastTransitionTime = metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	}
	k.Status.Conditions = healthy
	return k
}

func cond(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
}

func TestDecideSwitchover(t *testing.T) {
	withSpec := func(k *trusteev1.KeyTrusteeServer, want string) *trusteev1.KeyTrusteeServer {
		k.Spec.ActiveMember = want
		return k
	}
	haOff := pair("a")
	haOff.Spec.HighAvailability.Enabled = ptr.To(false)
	unreported := pair("a")
	unreported.Status = trusteev1.KeyTrusteeServerStatus{}
	for _, tc := range []struct {
		name    string
		k       *trusteev1.KeyTrusteeServer
		to      string
		want    switchPlan
		wantErr string
	}{
		{name: "to the passive", k: pair("a"), want: switchPlan{To: "b", Patch: true}},
		{name: "to the passive, named", k: pair("b"), to: "a", want: switchPlan{To: "a", Patch: true}},
		{name: "spec names the active already", k: withSpec(pair("a"), "a"), to: "b", want: switchPlan{To: "b", Patch: true}},
		{name: "asked before: follow it", k: withSpec(pair("a", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonFencing, "stopping")), "b"),
			want: switchPlan{To: "b"}},
		{name: "taking a refused request back", k: withSpec(pair("a", cond(trusteev1.ConditionReplicating, metav1.ConditionFalse, trusteev1.ReasonNotStreaming, "not streaming")), "b"),
			to: "a", want: switchPlan{To: "a", Patch: true}},
		{name: "not a member", k: pair("a"), to: "c", wantErr: `--to "c": a member is a or b`},
		{name: "a pod name is not a member", k: pair("a"), to: "kts-b-0", wantErr: `--to "kts-b-0": a member is a or b`},
		{name: "high availability off", k: haOff, wantErr: "high availability is off for kts (spec.highAvailability.enabled): there is no passive to switch to"},
		{name: "already the active", k: pair("b"), to: "b", wantErr: "member b (kts-b-0) is already the active of kts: nothing changed"},
		{name: "not reported yet", k: unreported, wantErr: "the operator has not reported the active member of kts yet"},
		{name: "passive not in sync", k: pair("a", cond(trusteev1.ConditionReplicating, metav1.ConditionFalse, trusteev1.ReasonNotStreaming, "the passive is not streaming from the active")),
			wantErr: "a switchover needs both members ready and the passive in sync, and Replicating is False (NotStreaming): the passive is not streaming from the active; nothing changed"},
		{name: "passive not ready", k: pair("a", cond(trusteev1.ConditionPassiveReady, metav1.ConditionFalse, trusteev1.ReasonPodNotReady, "pod kts-b-0 of the passive is Pending")),
			wantErr: "PassiveReady is False (PodNotReady): pod kts-b-0 of the passive is Pending"},
		{name: "active not ready", k: pair("a", cond(trusteev1.ConditionActiveReady, metav1.ConditionFalse, trusteev1.ReasonPodMissing, "pod kts-a-0 of the active does not exist yet")),
			wantErr: "ActiveReady is False (PodMissing)"},
		{name: "rolling", k: pair("a", cond(trusteev1.ConditionUpgrading, metav1.ConditionTrue, trusteev1.ReasonWaitingForSync, "waiting")),
			wantErr: "restarting on a new pod template (Upgrading WaitingForSync: waiting)"},
		{name: "a loss under way", k: pair("a", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonActiveLost, "the active has lost its data")),
			wantErr: "is under way (ActiveLost: the active has lost its data): nothing changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decideSwitchover(tc.k, tc.to)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want the error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSwitchProgress(t *testing.T) {
	observed := func(gen int64, k *trusteev1.KeyTrusteeServer) *trusteev1.KeyTrusteeServer {
		k.Status.ObservedGeneration = gen
		return k
	}
	for _, tc := range []struct {
		name     string
		k        *trusteev1.KeyTrusteeServer
		done     bool
		line     string
		errorHas string
	}{
		{name: "not seen yet", k: observed(2, pair("a")), line: "waiting for the operator to act on generation 3 of kts"},
		{name: "fencing", k: observed(3, pair("a", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonFencing, "stopping the active kts-a-0"))),
			line: "Fencing: stopping the active kts-a-0"},
		{name: "promoted, rejoining", k: observed(3, pair("b", cond(trusteev1.ConditionSwitchover, metav1.ConditionTrue, trusteev1.ReasonRejoining, "the new active kts-b-0 serves reads"))),
			line: "Rejoining: the new active kts-b-0 serves reads"},
		{name: "done", k: observed(3, pair("b")), done: true,
			line: "member b (kts-b-0) is the active of kts; Ready True: both members answer and the passive is the active's synchronous standby"},
		{name: "as specified, but still the old active", k: observed(3, pair("a")), line: "ActiveAsSpecified: member a (kts-a-0) is the active"},
		{name: "refused", k: observed(3, pair("a", cond(trusteev1.ConditionSwitchover, metav1.ConditionFalse, trusteev1.ReasonSwitchoverRefused, "the passive kts-b-0 is not ready"))),
			errorHas: "the operator refused the switchover: the passive kts-b-0 is not ready"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done, line, err := switchProgress(tc.k, "b", 3)
			if tc.errorHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errorHas) || done {
					t.Fatalf("got %v %q %v; want the error %q", done, line, err, tc.errorHas)
				}
				return
			}
			if err != nil || done != tc.done || line != tc.line {
				t.Fatalf("got %v %q %v; want %v %q", done, line, err, tc.done, tc.line)
			}
		})
	}
}
