package controllers

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// claimTemplate is the name of the members' volume claim template (and of
// their data volume).
const claimTemplate = "data"

// memberVolume is what a growth of the volumes needs to know of one
// member: its claim and its StatefulSet's claim template.
type memberVolume struct {
	Role, Claim, StatefulSet string
	ClaimExists              bool
	// Bound: the claim is bound to its volume (only a bound claim grows).
	Bound bool
	// Request is the size the claim asks for, Capacity what its volume
	// has; Class its StorageClass.
	Request, Capacity resource.Quantity
	Class             string
	// FileSystemPending: the volume has grown and the kubelet grows its
	// file system (condition FileSystemResizePending); Resizing: the
	// driver is growing the volume (condition Resizing).
	FileSystemPending, Resizing bool
	// ResizeError is what the storage driver or the kubelet reports of a
	// failed resize ("" when none).
	ResizeError string
	SetExists   bool
	SetDeleting bool // the StatefulSet is being deleted
	// Rolling: the StatefulSet has not got the pod template the spec
	// gives yet, or its pod does not run it (a restart of the members,
	// decideRoll, is under way).
	Rolling bool
	// Template is the size of the StatefulSet's claim template.
	Template resource.Quantity
}

// growObservation is what decideGrowth decides from.
type growObservation struct {
	Want resource.Quantity
	// Members, the passive first (without high availability, the active
	// only).
	Members []memberVolume
	// Fencing: a switchover has stopped the active (decideSwitchover).
	Fencing bool
	// The StorageClass of the claim to grow, once asked for (NeedClass);
	// ClassError says why it could not be read (the operator may not).
	ClassAsked, ClassFound, ClassExpands bool
	ClassName, ClassError                string
}

// growState is the next step of a growth of the members' volumes.
type growState struct {
	Reason, Message string
	// Patch is the member (role) whose claim to grow to the spec's size
	// now ("" for none).
	Patch string
	// Recreate are the members whose StatefulSet to delete now, leaving
	// its pods, to make it again with the new claim template.
	Recreate []string
	// Keep maps a member to the size its StatefulSet's claim template
	// keeps until its claim has grown (a template cannot change).
	Keep map[string]resource.Quantity
	// Hold are the members whose StatefulSet is being deleted: it is made
	// again once it is gone.
	Hold map[string]bool
	// NeedClass: the decision waits on the StorageClass of this name.
	NeedClass string
}

// decideGrowth grows the members' volumes to spec.storage.size, one safe
// step per call: the passive's claim first, then, once its volume has
// grown, the active's; once both have, each StatefulSet is deleted without
// its pods and made again with the new claim template (a StatefulSet's
// claim templates cannot change), and adopts its running pod. Until then
// the StatefulSets keep their claim template, so that the rest of the
// reconcile goes on. A growth the claims' StorageClass cannot make is
// refused before any claim changes, as is a size below what a claim has.
func decideGrowth(o growObservation) growState {
	want := o.Want.String()
	s := growState{Keep: map[string]resource.Quantity{}, Hold: map[string]bool{}}
	for _, m := range o.Members {
		switch {
		case m.SetDeleting:
			s.Hold[m.Role] = true
		case m.SetExists && m.Template.Cmp(o.Want) != 0:
			s.Keep[m.Role] = m.Template
		}
	}
	refuse := func(format string, args ...any) growState {
		s.Reason, s.Message = trusteev1.ReasonResizeRefused, fmt.Sprintf("spec.storage.size %s refused: ", want)+fmt.Sprintf(format, args...)
		return s
	}
	for _, m := range o.Members {
		if m.ClaimExists && m.Request.Cmp(o.Want) > 0 {
			return refuse("the %s's claim %s already asks for %s, and a volume cannot shrink; nothing was changed. Set spec.storage.size back to at least %s",
				m.Role, m.Claim, m.Request.String(), m.Request.String())
		}
	}
	for i, m := range o.Members {
		if !m.ClaimExists {
			continue // its StatefulSet makes it, of the template's size
		}
		after := ""
		if i > 0 && o.Members[0].ClaimExists {
			after = fmt.Sprintf("the %s's volume has grown; ", o.Members[0].Role)
		}
		if !m.Bound {
			if m.Request.Cmp(o.Want) >= 0 {
				continue // its volume is made of that size
			}
			s.Reason = trusteev1.ReasonGrowing
			s.Message = fmt.Sprintf("%swaiting for the %s's claim %s to be bound to a volume before it can grow to %s", after, m.Role, m.Claim, want)
			return s
		}
		if m.Request.Cmp(o.Want) < 0 {
			has := m.Request.String()
			switch {
			case m.Class == "":
				return refuse("the %s's claim %s has no StorageClass, so it cannot be expanded; the claims stay at %s. Set spec.storage.size back to %s",
					m.Role, m.Claim, has, has)
			case !o.ClassAsked || o.ClassName != m.Class:
				s.NeedClass = m.Class
				return s
			case o.ClassError != "":
				return refuse("the operator cannot read StorageClass %s of the claims (%s), so it cannot tell whether it allows volume expansion; nothing was changed and the claims stay at %s. "+
					"Give the operator get on storageclasses, or set spec.storage.size back to %s", m.Class, o.ClassError, has, has)
			case !o.ClassFound:
				return refuse("StorageClass %s of the %s's claim %s does not exist, so the claim cannot be expanded; the claims stay at %s. Set spec.storage.size back to %s",
					m.Class, m.Role, m.Claim, has, has)
			case !o.ClassExpands:
				return refuse("StorageClass %s of the claims does not allow volume expansion (its allowVolumeExpansion is not true); nothing was changed and the claims stay at %s. "+
					"Set spec.storage.size back to %s, or have the class allow expansion if its driver can", m.Class, has, has)
			}
			s.Reason, s.Patch = trusteev1.ReasonGrowing, m.Role
			s.Message = fmt.Sprintf("%sgrowing the %s's claim %s from %s to %s", after, m.Role, m.Claim, has, want)
			return s
		}
		if m.Capacity.Cmp(o.Want) < 0 && !m.FileSystemPending {
			s.Reason = trusteev1.ReasonGrowing
			s.Message = fmt.Sprintf("%swaiting for the storage driver to grow the %s's volume (claim %s) to %s; it has %s",
				after, m.Role, m.Claim, want, m.Capacity.String())
			if m.Resizing {
				s.Message += ", and the driver is resizing it"
			}
			if m.ResizeError != "" {
				s.Message += "; the resize failed: " + m.ResizeError
			}
			return s
		}
	}
	var sets []string
	for _, m := range o.Members {
		if _, ok := s.Keep[m.Role]; ok && (m.Rolling || o.Fencing) {
			// Made again now, it would restart its pod on the new
			// template at once, out of the order the roll keeps.
			s.Reason = trusteev1.ReasonRecreatingStatefulSets
			s.Message = fmt.Sprintf("the volumes have grown to %s; StatefulSet %s is made again with the new claim template once the members' restart "+
				"(see the Upgrading and Switchover conditions) is done", want, m.StatefulSet)
			return s
		}
	}
	for _, m := range o.Members {
		if _, ok := s.Keep[m.Role]; ok {
			s.Recreate = append(s.Recreate, m.Role)
			s.Hold[m.Role] = true
			delete(s.Keep, m.Role)
		}
		if s.Hold[m.Role] {
			sets = append(sets, m.StatefulSet)
		}
	}
	if len(sets) > 0 {
		s.Reason = trusteev1.ReasonRecreatingStatefulSets
		s.Message = fmt.Sprintf("the volumes have grown to %s; StatefulSet %s is made again with the new claim template, its pod left running and adopted",
			want, sets[0])
		if len(sets) > 1 {
			s.Message = fmt.Sprintf("the volumes have grown to %s; StatefulSets %s are made again with the new claim template, their pods left running and adopted",
				want, strings.Join(sets, " and "))
		}
		return s
	}
	s.Reason, s.Message = trusteev1.ReasonResized, fmt.Sprintf("the members' volumes have the %s spec.storage.size asks for", want)
	for _, m := range o.Members {
		if m.FileSystemPending {
			s.Message += fmt.Sprintf("; the kubelet grows the file system of the %s's volume (claim %s)", m.Role, m.Claim)
		}
	}
	return s
}

// growCondition is the StorageResized condition of s.
func growCondition(s growState) metav1.Condition {
	c := metav1.Condition{Type: trusteev1.ConditionStorageResized, Status: metav1.ConditionFalse, Reason: s.Reason, Message: s.Message}
	if s.Reason == trusteev1.ReasonResized {
		c.Status = metav1.ConditionTrue
	}
	return c
}

// growVolumes observes the members' claims and StatefulSets, decides the
// next step of a growth, and takes it: it patches a claim or deletes
// StatefulSets (orphaning their pods), and tells applyAll, through in,
// which claim templates to keep and which StatefulSets to leave alone. It
// returns the step and the largest size the claims ask for (nil without
// claims).
func (r *ServerReconciler) growVolumes(ctx context.Context, in *serverInputs) (growState, *resource.Quantity, error) {
	kts, n := in.KTS, in.names()
	o := growObservation{Want: in.storageSize(), Fencing: in.FenceFor != ""}
	cm, err := in.configMap()
	if err != nil {
		return growState{}, nil, err
	}
	members := in.members()
	in.ClaimLabels = map[string]map[string]string{}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	sets := map[string]*appsv1.StatefulSet{}
	var largest *resource.Quantity
	for i := len(members) - 1; i >= 0; i-- { // the passive first
		member := members[i]
		m := memberVolume{Role: in.role(member), Claim: n.Claim(member), StatefulSet: n.StatefulSet(member)}
		pvc := &corev1.PersistentVolumeClaim{}
		switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: m.Claim}, pvc); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return growState{}, nil, err
		default:
			if err := r.dropInstanceLabel(ctx, pvc); err != nil {
				return growState{}, nil, err
			}
			observeClaim(&m, pvc)
			claims[m.Role] = pvc
			if largest == nil || m.Request.Cmp(*largest) > 0 {
				largest = ptr.To(m.Request.DeepCopy())
			}
		}
		sts := &appsv1.StatefulSet{}
		switch err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: m.StatefulSet}, sts); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return growState{}, nil, err
		default:
			m.SetExists, m.SetDeleting = true, !sts.DeletionTimestamp.IsZero()
			roll, err := r.observeRollout(ctx, *in, member, in.statefulSet(member, cm))
			if err != nil {
				return growState{}, nil, err
			}
			m.Rolling = roll.Applied != roll.Want || !roll.Current
			for _, t := range sts.Spec.VolumeClaimTemplates {
				if t.Name == claimTemplate {
					m.Template = t.Spec.Resources.Requests.Storage().DeepCopy()
					in.ClaimLabels[member] = t.Labels
				}
			}
			sets[m.Role] = sts
		}
		o.Members = append(o.Members, m)
	}
	s := decideGrowth(o)
	if s.NeedClass != "" {
		o.ClassAsked, o.ClassName = true, s.NeedClass
		sc := &storagev1.StorageClass{}
		// Read from the API server, not a cache: a cluster-scoped object
		// the operator only gets, and only while a growth is pending.
		switch err := r.APIReader.Get(ctx, types.NamespacedName{Name: s.NeedClass}, sc); {
		case apierrors.IsNotFound(err):
		case apierrors.IsForbidden(err):
			o.ClassError = err.Error()
		case err != nil:
			return growState{}, nil, err
		default:
			o.ClassFound = true
			o.ClassExpands = sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
		}
		s = decideGrowth(o)
	}
	in.ClaimTemplates, in.HoldStatefulSets = map[string]resource.Quantity{}, map[string]bool{}
	for _, member := range members {
		role := in.role(member)
		if q, ok := s.Keep[role]; ok {
			in.ClaimTemplates[member] = q
		}
		in.HoldStatefulSets[member] = s.Hold[role]
	}
	if s.Patch != "" {
		pvc := claims[s.Patch]
		orig := pvc.DeepCopy()
		pvc.Spec.Resources.Requests[corev1.ResourceStorage] = o.Want
		if err := r.Patch(ctx, pvc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
				return growState{}, nil, err
			}
			// The API server's own refusal (its PVC resize admission):
			// said in the status, the rest of the reconcile goes on.
			s.Reason, s.Patch = trusteev1.ReasonResizeRefused, ""
			s.Message = fmt.Sprintf("spec.storage.size %s refused: the API server does not let claim %s grow: %v; nothing was changed. Set spec.storage.size back to %s",
				o.Want.String(), orig.Name, err, orig.Spec.Resources.Requests.Storage().String())
			return s, largest, nil
		}
		largest = ptr.To(o.Want.DeepCopy())
	}
	for _, role := range s.Recreate {
		sts := sets[role]
		if err := r.Delete(ctx, sts, client.PropagationPolicy(metav1.DeletePropagationOrphan),
			client.Preconditions{UID: &sts.UID, ResourceVersion: &sts.ResourceVersion}); err != nil && !apierrors.IsNotFound(err) {
			return growState{}, nil, err
		}
		r.Recorder.Eventf(kts, sts, corev1.EventTypeNormal, "RecreatingStatefulSet", "GrowVolumes",
			"deleted StatefulSet %s without its pod, to make it again with a claim template of %s", sts.Name, o.Want.String())
	}
	return s, largest, nil
}

// observeClaim fills m from its claim.
func observeClaim(m *memberVolume, pvc *corev1.PersistentVolumeClaim) {
	m.ClaimExists, m.Bound = true, pvc.Status.Phase == corev1.ClaimBound
	m.Request = pvc.Spec.Resources.Requests.Storage().DeepCopy()
	m.Capacity = pvc.Status.Capacity.Storage().DeepCopy()
	if pvc.Spec.StorageClassName != nil {
		m.Class = *pvc.Spec.StorageClassName
	}
	var errs []string
	for _, c := range pvc.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case corev1.PersistentVolumeClaimFileSystemResizePending:
			m.FileSystemPending = true
		case corev1.PersistentVolumeClaimResizing:
			m.Resizing = true
		case corev1.PersistentVolumeClaimControllerResizeError, corev1.PersistentVolumeClaimNodeResizeError:
			errs = append(errs, strings.TrimSpace(string(c.Type)+" "+c.Message))
		}
	}
	m.ResizeError = strings.Join(errs, "; ")
}

// dropInstanceLabel takes app.kubernetes.io/instance off a member's claim,
// which an older operator's claim template gave it: Argo CD's label tracking
// would count the claim as part of an Application of the server's name, and
// prune it.
func (r *ServerReconciler) dropInstanceLabel(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if _, ok := pvc.Labels[labelInstance]; !ok {
		return nil
	}
	orig := pvc.DeepCopy()
	delete(pvc.Labels, labelInstance)
	return r.Patch(ctx, pvc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
}
