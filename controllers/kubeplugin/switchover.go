package kubeplugin

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
)

// switchPlan is what `kubectl trustee switchover` does.
type switchPlan struct {
	// To is the member to make the active.
	To string
	// Patch: spec.activeMember is to be set to To; false when it names To
	// already (a switchover asked for before, which is only followed).
	Patch bool
}

// podOf is the pod of member m of k as its status names it.
func podOf(k *trusteev1.KeyTrusteeServer, m string) string {
	switch {
	case m == k.Status.ActiveMember && k.Status.Active != "":
		return k.Status.Active
	case m != k.Status.ActiveMember && k.Status.Passive != "":
		return k.Status.Passive
	}
	return fmt.Sprintf("%s-%s-0", k.Name, m)
}

// decideSwitchover says which member `switchover --to to` makes the active
// ("": the passive), or why it is refused: the operator's switchover
// (docs/OPERATOR.md) needs high availability and both members ready, on
// their current template and in sync; asking for it otherwise would only
// leave a request behind that the operator carries out later, unasked.
func decideSwitchover(k *trusteev1.KeyTrusteeServer, to string) (switchPlan, error) {
	if to != "" && to != contract.MemberA && to != contract.MemberB {
		return switchPlan{}, fmt.Errorf("--to %q: a member is %s or %s", to, contract.MemberA, contract.MemberB)
	}
	if !k.HighAvailabilityEnabled() {
		return switchPlan{}, fmt.Errorf("high availability is off for %s (spec.highAvailability.enabled): there is no passive to switch to", k.Name)
	}
	active := k.Status.ActiveMember
	if active == "" {
		return switchPlan{}, fmt.Errorf("the operator has not reported the active member of %s yet: nothing to switch", k.Name)
	}
	if to == "" {
		to = contract.MemberB
		if active == contract.MemberB {
			to = contract.MemberA
		}
	}
	want := k.Spec.ActiveMember
	switch {
	case to == active && (want == "" || want == to):
		return switchPlan{}, fmt.Errorf("member %s (%s) is already the active of %s: nothing changed", to, podOf(k, to), k.Name)
	case to == active:
		// spec.activeMember names the passive (a switchover refused or
		// not begun): asking for the active takes that request back.
		return switchPlan{To: to, Patch: true}, nil
	case want == to:
		return switchPlan{To: to}, nil
	}
	sw := meta.FindStatusCondition(k.Status.Conditions, trusteev1.ConditionSwitchover)
	if sw != nil && sw.Status == metav1.ConditionTrue {
		return switchPlan{}, fmt.Errorf("a change of the active member of %s is under way (%s: %s): nothing changed; wait for it to finish", k.Name, sw.Reason, sw.Message)
	}
	if up := meta.FindStatusCondition(k.Status.Conditions, trusteev1.ConditionUpgrading); up != nil && up.Status == metav1.ConditionTrue {
		return switchPlan{}, fmt.Errorf("the members of %s are restarting on a new pod template (Upgrading %s: %s): nothing changed; switch over once the roll is done", k.Name, up.Reason, up.Message)
	}
	for _, typ := range []string{trusteev1.ConditionActiveReady, trusteev1.ConditionPassiveReady, trusteev1.ConditionReplicating} {
		c := meta.FindStatusCondition(k.Status.Conditions, typ)
		if c == nil {
			return switchPlan{}, fmt.Errorf("the status of %s has no %s condition yet: nothing changed", k.Name, typ)
		}
		if c.Status != metav1.ConditionTrue {
			return switchPlan{}, fmt.Errorf("a switchover needs both members ready and the passive in sync, and %s is %s (%s): %s; nothing changed",
				typ, c.Status, c.Reason, c.Message)
		}
	}
	return switchPlan{To: to, Patch: true}, nil
}

// switchProgress reads where a switchover to member to stands, the spec at
// generation gen: done once the operator has acted on gen and reports to
// as the active as specified; an error when it refused.
func switchProgress(k *trusteev1.KeyTrusteeServer, to string, gen int64) (done bool, line string, err error) {
	if k.Status.ObservedGeneration < gen {
		return false, fmt.Sprintf("waiting for the operator to act on generation %d of %s", gen, k.Name), nil
	}
	sw := meta.FindStatusCondition(k.Status.Conditions, trusteev1.ConditionSwitchover)
	if sw == nil {
		return false, "waiting for the operator's Switchover condition", nil
	}
	switch {
	case sw.Reason == trusteev1.ReasonSwitchoverRefused:
		return false, "", fmt.Errorf("the operator refused the switchover: %s", sw.Message)
	case sw.Status == metav1.ConditionFalse && sw.Reason == trusteev1.ReasonActiveAsSpecified && k.Status.ActiveMember == to:
		line = fmt.Sprintf("member %s (%s) is the active of %s", to, podOf(k, to), k.Name)
		if ready := meta.FindStatusCondition(k.Status.Conditions, trusteev1.ConditionReady); ready != nil {
			line += fmt.Sprintf("; Ready %s: %s", ready.Status, ready.Message)
		}
		return true, line, nil
	}
	return false, fmt.Sprintf("%s: %s", sw.Reason, sw.Message), nil
}

// Switchover makes member to ("": the passive) the active of server name:
// it sets spec.activeMember and, with wait, prints the operator's progress
// until the new active serves, the operator refuses, or timeout passes.
func (p *Plugin) Switchover(ctx context.Context, name, to string, wait bool, timeout time.Duration) error {
	if wait && timeout <= 0 {
		return fmt.Errorf("--timeout %s: give a positive duration", timeout)
	}
	k, err := p.server(ctx, name)
	if err != nil {
		return err
	}
	plan, err := decideSwitchover(k, to)
	if err != nil {
		return err
	}
	if plan.Patch {
		orig := k.DeepCopy()
		k.Spec.ActiveMember = plan.To
		if err := p.Client.Patch(ctx, k, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("%s changed while the switchover was being asked for: nothing changed; run it again", name)
			}
			return err
		}
		fmt.Fprintf(p.Out, "spec.activeMember of %s is %s: asked the operator to make %s the active\n", name, plan.To, podOf(k, plan.To))
	} else {
		fmt.Fprintf(p.Out, "spec.activeMember of %s already asks for %s: following the switchover\n", name, plan.To)
	}
	if !wait {
		return nil
	}
	return p.follow(ctx, name, plan.To, k.Generation, timeout)
}

// follow prints each new step of the switchover until it is done.
func (p *Plugin) follow(ctx context.Context, name, to string, gen int64, timeout time.Duration) error {
	last := ""
	timedOut, err := p.every(ctx, timeout, func() (bool, error) {
		k := &trusteev1.KeyTrusteeServer{}
		if err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, k); err != nil {
			return false, err
		}
		done, line, err := switchProgress(k, to, gen)
		if err != nil {
			return false, fmt.Errorf("%w; spec.activeMember still asks for %s: the switchover goes ahead by itself once that is no longer so, or set it back", err, to)
		}
		if line != last {
			fmt.Fprintf(p.Out, "%s  %s\n", p.now().UTC().Format(time.TimeOnly), line)
			last = line
		}
		return done, nil
	})
	if timedOut {
		return fmt.Errorf("the switchover of %s is not done after %s (last: %s); the operator goes on: follow it with kubectl trustee status %s", name, timeout, last, name)
	}
	return err
}
