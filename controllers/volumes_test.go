package controllers

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// A growth of the volumes patches the passive's claim first, waits for its
// volume, then the active's, then makes the StatefulSets again; a growth
// the class cannot make, or a shrink, is refused with nothing changed.
func TestDecideGrowth(t *testing.T) {
	q := resource.MustParse
	vol := func(role, request, capacity, template string) memberVolume {
		m := memberVolume{Role: role, Claim: "data-kts-" + role + "-0", StatefulSet: "kts-" + role, Class: "fast"}
		if request != "" {
			m.ClaimExists, m.Bound, m.Request, m.Capacity = true, true, q(request), q(capacity)
		}
		if template != "" {
			m.SetExists, m.Template = true, q(template)
		}
		return m
	}
	pair := func(passive, active memberVolume) []memberVolume { return []memberVolume{passive, active} }
	expandable := func(o growObservation) growObservation {
		o.ClassAsked, o.ClassName, o.ClassFound, o.ClassExpands = true, "fast", true, true
		return o
	}
	fsPending := func(m memberVolume) memberVolume { m.FileSystemPending = true; return m }
	deleting := func(m memberVolume) memberVolume { m.SetDeleting = true; return m }
	for _, c := range []struct {
		name      string
		o         growObservation
		reason    string
		message   string
		exact     bool // the message is all of it
		patch     string
		recreate  []string
		keep      map[string]string
		hold      []string
		needClass string
	}{
		{name: "a server being made", o: growObservation{Want: q("1Gi"), Members: pair(vol("passive", "", "", ""), vol("active", "", "", ""))},
			reason: trusteev1.ReasonResized, message: "have the 1Gi spec.storage.size asks for"},
		{name: "nothing to grow", o: growObservation{Want: q("1Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResized},
		{name: "the same size in other units", o: growObservation{Want: q("1024Mi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResized},
		{name: "a larger size asks for the class first",
			o:      growObservation{Want: q("2Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: "", needClass: "fast", keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "the passive's claim grows first",
			o:      expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "growing the passive's claim data-kts-passive-0 from 1Gi to 2Gi", patch: "passive",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "the active waits for the passive's volume",
			o:      expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "waiting for the storage driver to grow the passive's volume (claim data-kts-passive-0) to 2Gi; it has 1Gi",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a failed resize is told",
			o: expandable(growObservation{Want: q("2Gi"), Members: pair(func() memberVolume {
				m := vol("passive", "2Gi", "1Gi", "1Gi")
				m.ResizeError = "ControllerResizeError quota exceeded"
				return m
			}(), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "the resize failed: ControllerResizeError quota exceeded",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "the driver resizing the passive's volume",
			o: expandable(growObservation{Want: q("2Gi"), Members: pair(func() memberVolume {
				m := vol("passive", "2Gi", "1Gi", "1Gi")
				m.Resizing = true
				return m
			}(), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "it has 1Gi, and the driver is resizing it",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "the passive's volume grown: the active's claim",
			o:      expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "the passive's volume has grown; growing the active's claim data-kts-active-0 from 1Gi to 2Gi", patch: "active",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a file system the kubelet grows counts as grown",
			o:      expandable(growObservation{Want: q("2Gi"), Members: pair(fsPending(vol("passive", "2Gi", "1Gi", "1Gi")), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, patch: "active", keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "the active's volume growing",
			o:      growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "1Gi"), vol("active", "2Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonGrowing, message: "waiting for the storage driver to grow the active's volume",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "both grown: the StatefulSets are made again",
			o:      growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "1Gi"), vol("active", "2Gi", "2Gi", "1Gi"))},
			reason: trusteev1.ReasonRecreatingStatefulSets, message: "StatefulSets kts-passive and kts-active are made again with the new claim template, their pods left running",
			recreate: []string{"passive", "active"}, hold: []string{"passive", "active"}},
		{name: "both grown, but a member restarts on a new template: the StatefulSets wait",
			o: growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "1Gi"), func() memberVolume {
				m := vol("active", "2Gi", "2Gi", "1Gi")
				m.Rolling = true
				return m
			}())},
			reason: trusteev1.ReasonRecreatingStatefulSets, message: "StatefulSet kts-active is made again with the new claim template once the members' restart",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "both grown, but the active is fenced: the StatefulSets wait",
			o: growObservation{Want: q("2Gi"), Fencing: true,
				Members: pair(vol("passive", "2Gi", "2Gi", "1Gi"), vol("active", "2Gi", "2Gi", "1Gi"))},
			reason: trusteev1.ReasonRecreatingStatefulSets, message: "once the members' restart",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "one StatefulSet being deleted, the other made again already",
			o:      growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "2Gi"), deleting(vol("active", "2Gi", "2Gi", "1Gi")))},
			reason: trusteev1.ReasonRecreatingStatefulSets, message: "StatefulSet kts-active is made again", hold: []string{"active"}},
		{name: "done, a file system still growing",
			o:      growObservation{Want: q("2Gi"), Members: pair(vol("passive", "2Gi", "2Gi", "2Gi"), fsPending(vol("active", "2Gi", "1Gi", "2Gi")))},
			reason: trusteev1.ReasonResized, message: "the kubelet grows the file system of the active's volume (claim data-kts-active-0)"},
		{name: "one member: its claim grows",
			o:      expandable(growObservation{Want: q("2Gi"), Members: []memberVolume{vol("active", "1Gi", "1Gi", "1Gi")}}),
			reason: trusteev1.ReasonGrowing, message: "growing the active's claim", patch: "active", keep: map[string]string{"active": "1Gi"}},
		{name: "a passive without its claim yet: the active's grows",
			o:      expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "", "", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "growing the active's claim data-kts-active-0 from 1Gi to 2Gi", exact: true, patch: "active",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a claim not bound yet, of the size",
			o:      growObservation{Want: q("1Gi"), Members: pair(func() memberVolume { m := vol("passive", "1Gi", "0", "1Gi"); m.Bound = false; return m }(), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResized},
		{name: "a claim not bound yet cannot grow",
			o: expandable(growObservation{Want: q("2Gi"), Members: pair(func() memberVolume {
				m := vol("passive", "1Gi", "0", "1Gi")
				m.Bound = false
				return m
			}(), vol("active", "1Gi", "1Gi", "1Gi"))}),
			reason: trusteev1.ReasonGrowing, message: "waiting for the passive's claim data-kts-passive-0 to be bound to a volume before it can grow to 2Gi",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a class that does not allow expansion",
			o: func() growObservation {
				o := expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))})
				o.ClassExpands = false
				return o
			}(),
			reason: trusteev1.ReasonResizeRefused, message: "StorageClass fast of the claims does not allow volume expansion (its allowVolumeExpansion is not true); nothing was changed and the claims stay at 1Gi. Set spec.storage.size back to 1Gi",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a class the operator may not read",
			o: func() growObservation {
				o := expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))})
				o.ClassFound, o.ClassExpands, o.ClassError = false, false, "storageclasses.storage.k8s.io \"fast\" is forbidden"
				return o
			}(),
			reason: trusteev1.ReasonResizeRefused, message: "the operator cannot read StorageClass fast of the claims (storageclasses.storage.k8s.io \"fast\" is forbidden)",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a class that does not exist",
			o: func() growObservation {
				o := expandable(growObservation{Want: q("2Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))})
				o.ClassFound, o.ClassExpands = false, false
				return o
			}(),
			reason: trusteev1.ReasonResizeRefused, message: "StorageClass fast of the passive's claim data-kts-passive-0 does not exist",
			keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "a claim without a class",
			o: growObservation{Want: q("2Gi"), Members: pair(func() memberVolume {
				m := vol("passive", "1Gi", "1Gi", "1Gi")
				m.Class = ""
				return m
			}(), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResizeRefused, message: "has no StorageClass", keep: map[string]string{"passive": "1Gi", "active": "1Gi"}},
		{name: "below what a claim asks for",
			o:      growObservation{Want: q("1Gi"), Members: pair(vol("passive", "2Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResizeRefused, message: "the passive's claim data-kts-passive-0 already asks for 2Gi, and a volume cannot shrink; nothing was changed. Set spec.storage.size back to at least 2Gi"},
		{name: "a refused growth reverted: nothing to do",
			o:      growObservation{Want: q("1Gi"), Members: pair(vol("passive", "1Gi", "1Gi", "1Gi"), vol("active", "1Gi", "1Gi", "1Gi"))},
			reason: trusteev1.ReasonResized},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := decideGrowth(c.o)
			if s.Reason != c.reason || !strings.Contains(s.Message, c.message) || (c.exact && s.Message != c.message) || s.Patch != c.patch || s.NeedClass != c.needClass ||
				!slices.Equal(s.Recreate, c.recreate) {
				t.Errorf("got %+v\nwant reason %q, a message with %q, patch %q, recreate %v, needClass %q", s, c.reason, c.message, c.patch, c.recreate, c.needClass)
			}
			keep := map[string]string{}
			for role, size := range s.Keep {
				keep[role] = size.String()
			}
			if len(keep) != len(c.keep) {
				t.Errorf("keep %v, want %v", keep, c.keep)
			}
			for role, size := range c.keep {
				if keep[role] != size {
					t.Errorf("keep %v, want %v", keep, c.keep)
				}
			}
			var hold []string
			for _, m := range c.o.Members {
				if s.Hold[m.Role] {
					hold = append(hold, m.Role)
				}
			}
			if !slices.Equal(hold, c.hold) {
				t.Errorf("hold %v, want %v", hold, c.hold)
			}
		})
	}
}

// The StorageResized condition is True only once the volumes have the size.
func TestGrowCondition(t *testing.T) {
	for reason, want := range map[string]metav1.ConditionStatus{
		trusteev1.ReasonResized: metav1.ConditionTrue, trusteev1.ReasonGrowing: metav1.ConditionFalse,
		trusteev1.ReasonRecreatingStatefulSets: metav1.ConditionFalse, trusteev1.ReasonResizeRefused: metav1.ConditionFalse,
	} {
		if c := growCondition(growState{Reason: reason, Message: "m"}); c.Status != want || c.Type != trusteev1.ConditionStorageResized || c.Reason != reason {
			t.Errorf("%s: %+v, want status %s", reason, c, want)
		}
	}
}
