package kubeplugin

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
)

// serverContainer is the container of a member's pod that runs kts server.
const serverContainer = "server"

// statusView is what `kubectl trustee status` shows: the server, the pods
// its status names, and the BackupSchedules and Organizations pointing at
// it.
type statusView struct {
	Server    *trusteev1.KeyTrusteeServer
	Pods      map[string]*corev1.Pod
	Schedules []trusteev1.BackupSchedule
	Orgs      []trusteev1.Organization
	Now       time.Time
}

// Status prints the pair named name at a glance.
func (p *Plugin) Status(ctx context.Context, name string) error {
	kts, err := p.server(ctx, name)
	if err != nil {
		return err
	}
	v := statusView{Server: kts, Pods: map[string]*corev1.Pod{}, Now: p.now()}
	for _, pod := range []string{kts.Status.Active, kts.Status.Passive} {
		if pod == "" {
			continue
		}
		obj := &corev1.Pod{}
		switch err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: pod}, obj); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return err
		default:
			v.Pods[pod] = obj
		}
	}
	var schedules trusteev1.BackupScheduleList
	var orgs trusteev1.OrganizationList
	for _, list := range []client.ObjectList{&schedules, &orgs} {
		if err := p.Client.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
			return err
		}
	}
	v.Schedules = slices.DeleteFunc(schedules.Items, func(s trusteev1.BackupSchedule) bool { return s.Spec.ServerRef.Name != name })
	v.Orgs = slices.DeleteFunc(orgs.Items, func(o trusteev1.Organization) bool { return o.Spec.ServerRef.Name != name })
	_, err = p.Out.Write([]byte(statusReport(v)))
	return err
}

// server reads a KeyTrusteeServer; one that does not exist is an error
// naming those that do.
func (p *Plugin) server(ctx context.Context, name string) (*trusteev1.KeyTrusteeServer, error) {
	kts := &trusteev1.KeyTrusteeServer{}
	err := p.Client.Get(ctx, client.ObjectKey{Namespace: p.Namespace, Name: name}, kts)
	if !apierrors.IsNotFound(err) {
		return kts, err
	}
	var list trusteev1.KeyTrusteeServerList
	if err := p.Client.List(ctx, &list, client.InNamespace(p.Namespace)); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(list.Items))
	for _, k := range list.Items {
		names = append(names, k.Name)
	}
	return nil, notFound("KeyTrusteeServer", name, p.Namespace, names)
}

// notFound says that kind name is not in namespace ns, and which are.
func notFound(kind, name, ns string, there []string) error {
	if len(there) == 0 {
		return fmt.Errorf("%s %s not found in namespace %s, which has none", kind, name, ns)
	}
	slices.Sort(there)
	return fmt.Errorf("%s %s not found in namespace %s (it has: %s)", kind, name, ns, strings.Join(there, ", "))
}

// attention lists the conditions that call for a look: those that say
// something works when they are True and are not, and those that say
// something is under way or wrong when they are True and are.
func attention(conds []metav1.Condition, ha bool) []metav1.Condition {
	var out []metav1.Condition
	for _, c := range conds {
		switch c.Type {
		case trusteev1.ConditionReady, trusteev1.ConditionActiveReady, trusteev1.ConditionCertificateReady:
			if c.Status != metav1.ConditionTrue {
				out = append(out, c)
			}
		case trusteev1.ConditionPassiveReady, trusteev1.ConditionReplicating:
			if ha && c.Status != metav1.ConditionTrue {
				out = append(out, c)
			}
		case trusteev1.ConditionSwitchover:
			if c.Status == metav1.ConditionTrue || c.Reason == trusteev1.ReasonSwitchoverRefused {
				out = append(out, c)
			}
		default: // Degraded, Upgrading, Progressing
			if c.Status == metav1.ConditionTrue {
				out = append(out, c)
			}
		}
	}
	return out
}

// statusReport is what `kubectl trustee status` prints.
func statusReport(v statusView) string {
	k := v.Server
	var b bytes.Buffer
	fmt.Fprintf(&b, "KeyTrusteeServer %s/%s\n", k.Namespace, k.Name)
	if k.Status.ObservedGeneration != k.Generation {
		fmt.Fprintf(&b, "  the status is for generation %d of the spec; the operator has not acted on generation %d yet\n",
			k.Status.ObservedGeneration, k.Generation)
	}
	if k.Status.Fingerprint != "" {
		fmt.Fprintf(&b, "Fingerprint:        %s\n", k.Status.Fingerprint)
	}
	if e := k.Status.Endpoints; e != nil {
		fmt.Fprintf(&b, "Endpoints:          read-write %s, read %s\n", e.ReadWrite, e.Read)
	}
	ha := k.HighAvailabilityEnabled()
	if ha {
		b.WriteString("High availability:  on\n")
	} else {
		b.WriteString("High availability:  off (the active serves alone)\n")
	}
	if ready := meta.FindStatusCondition(k.Status.Conditions, trusteev1.ConditionReady); ready != nil {
		fmt.Fprintf(&b, "Ready:              %s (%s): %s\n", ready.Status, ready.Reason, ready.Message)
	}

	b.WriteString("\nMembers:\n")
	if k.Status.ActiveMember == "" {
		b.WriteString("  the operator has not reported the members yet\n")
	} else {
		other := contract.MemberA
		if k.Status.ActiveMember == contract.MemberA {
			other = contract.MemberB
		}
		rows := [][]string{append([]string{k.Status.ActiveMember, "active"}, memberColumns(v, k.Status.Active, trusteev1.ConditionActiveReady, "-")...)}
		if ha {
			rows = append(rows, append([]string{other, "passive"},
				memberColumns(v, k.Status.Passive, trusteev1.ConditionPassiveReady, conditionWord(k.Status.Conditions, trusteev1.ConditionReplicating))...))
		}
		table(&b, []string{"MEMBER", "ROLE", "POD", "NODE", "READY", "IN SYNC", "IMAGE"}, rows)
	}

	if conds := attention(k.Status.Conditions, ha); len(conds) > 0 {
		b.WriteString("\nConditions to look at:\n")
		for _, c := range conds {
			fmt.Fprintf(&b, "  %s %s (%s): %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}

	b.WriteString("\nBackups:\n")
	if len(v.Schedules) == 0 {
		fmt.Fprintf(&b, "  no BackupSchedule in namespace %s backs up %s\n", k.Namespace, k.Name)
	} else {
		var rows [][]string
		for _, s := range v.Schedules {
			rows = append(rows, []string{s.Name, conditionWord(s.Status.Conditions, trusteev1.ConditionLastBackupSucceeded),
				when(s.Status.LastSuccessfulTime, v.Now), cmp.Or(s.Status.LastArchive, "-")})
		}
		table(&b, []string{"SCHEDULE", "LAST BACKUP", "LAST SUCCESS", "ARCHIVE"}, rows)
		for _, s := range v.Schedules {
			if f := s.Status.LastFailureTime; f != nil && (s.Status.LastSuccessfulTime == nil || f.After(s.Status.LastSuccessfulTime.Time)) {
				fmt.Fprintf(&b, "  %s failed %s: %s\n", s.Name, when(f, v.Now), s.Status.LastFailureReason)
			}
			if s.Status.LastVerification != "" {
				fmt.Fprintf(&b, "  %s: %s\n", s.Name, s.Status.LastVerification)
			}
		}
	}

	b.WriteString("\nOrganizations:\n")
	if len(v.Orgs) == 0 {
		fmt.Fprintf(&b, "  no Organization in namespace %s is on %s\n", k.Namespace, k.Name)
	} else {
		var rows [][]string
		for _, o := range v.Orgs {
			c := o.Status.Clients
			rows = append(rows, []string{o.Name, cmp.Or(o.Spec.OrganizationName, o.Name), conditionWord(o.Status.Conditions, trusteev1.ConditionReady),
				fmt.Sprintf("%d/%d/%d", c.Active, c.Pending, c.Disabled)})
		}
		table(&b, []string{"NAME", "ORGANIZATION", "READY", "CLIENTS (ACTIVE/PENDING/DISABLED)"}, rows)
	}
	return b.String()
}

// table writes rows under header, in aligned columns, indented.
func table(b *bytes.Buffer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, r := range append([][]string{header}, rows...) {
		fmt.Fprintf(tw, "  %s\n", strings.Join(r, "\t"))
	}
	tw.Flush()
}

// memberColumns are a member's POD, NODE, READY, IN SYNC and IMAGE.
func memberColumns(v statusView, pod, readyType, inSync string) []string {
	node, image := "-", "-"
	if p := v.Pods[pod]; p != nil {
		if p.Spec.NodeName != "" {
			node = p.Spec.NodeName
		} else {
			node = "(not placed)"
		}
		for _, c := range p.Spec.Containers {
			if c.Name == serverContainer {
				image = c.Image
			}
		}
	} else if pod != "" {
		node = "(no pod)"
	}
	if pod == "" {
		pod = "-"
	}
	return []string{pod, node, conditionWord(v.Server.Status.Conditions, readyType), inSync, image}
}

// conditionWord is a condition in a table cell: True, or its status and
// reason; "-" when it is not there.
func conditionWord(conds []metav1.Condition, typ string) string {
	c := meta.FindStatusCondition(conds, typ)
	switch {
	case c == nil:
		return "-"
	case c.Status == metav1.ConditionTrue:
		return "True"
	}
	return fmt.Sprintf("%s (%s)", c.Status, c.Reason)
}

// when is a time and how long ago it was.
func when(t *metav1.Time, now time.Time) string {
	if t == nil {
		return "never"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), duration.HumanDuration(now.Sub(t.Time)))
}
