package controllers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/adminclient"
)

// organizationFinalizer retires the organization on the server before an
// Organization goes away.
const organizationFinalizer = "trustee.dev/retire-organization"

// OrganizationReconciler keeps an organization on the active server as its
// Organization says, through the server's admin API.
type OrganizationReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Options
}

// How often an organization's client counts are read again.
const organizationResync = 5 * time.Minute

// Reconcile applies one Organization to its server.
func (r *OrganizationReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	org := &trusteev1.Organization{}
	if err := r.Get(ctx, req.NamespacedName, org); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	orig := org.DeepCopy()
	name := orDefault(org.Spec.OrganizationName, org.Name)

	kts := &trusteev1.KeyTrusteeServer{}
	err := r.Get(ctx, types.NamespacedName{Namespace: org.Namespace, Name: org.Spec.ServerRef.Name}, kts)
	if apierrors.IsNotFound(err) {
		if !org.DeletionTimestamp.IsZero() {
			// The server is gone: nothing is left to retire.
			return ctrl.Result{}, r.removeFinalizer(ctx, org)
		}
		return r.notSynced(ctx, orig, org, trusteev1.ReasonServerNotFound,
			fmt.Sprintf("KeyTrusteeServer %s does not exist in namespace %s", org.Spec.ServerRef.Name, org.Namespace))
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if c := meta.FindStatusCondition(kts.Status.Conditions, trusteev1.ConditionActiveReady); c == nil || c.Status != metav1.ConditionTrue {
		why := "its status does not say yet"
		if c != nil {
			why = c.Message
		}
		return r.notSynced(ctx, orig, org, trusteev1.ReasonServerNotReady, fmt.Sprintf("waiting for the active server of %s: %s", kts.Name, why))
	}
	admin, err := r.adminClient(ctx, kts)
	if err != nil {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonServerNotReady, err.Error())
	}

	if !org.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(org, organizationFinalizer) {
			return ctrl.Result{}, nil
		}
		if err := admin.Retire(ctx, name); err != nil && !adminclient.IsNotFound(err) {
			return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, "retiring the organization on the server: "+err.Error())
		}
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "Retired", "Delete", "organization %s is expired on the server; its clients and deposits are kept", name)
		return ctrl.Result{}, r.removeFinalizer(ctx, org)
	}
	if controllerutil.AddFinalizer(org, organizationFinalizer) {
		if err := r.Update(ctx, org); err != nil {
			return ctrl.Result{}, err
		}
		orig = org.DeepCopy()
	}

	secret := &corev1.Secret{}
	ref := org.Spec.AuthCodeSecretRef
	if err := r.Get(ctx, types.NamespacedName{Namespace: org.Namespace, Name: ref.Name}, secret); err != nil {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSecretNotFound, fmt.Sprintf("the auth code Secret %s: %v", ref.Name, err))
	}
	code, ok := secret.Data[ref.Key]
	if !ok {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSecretInvalid, fmt.Sprintf("Secret %s has no key %q for the auth code", ref.Name, ref.Key))
	}

	_, err = admin.Organization(ctx, name)
	existed := err == nil
	if err != nil && !adminclient.IsNotFound(err) {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, err.Error())
	}
	state, err := admin.ApplyOrganization(ctx, name, org.Spec.Contacts)
	if err != nil {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, err.Error())
	}
	if !existed {
		r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "Created", "Apply", "created organization %s on the server", name)
	}
	if !existed || org.Status.AuthCodeSecretVersion != secret.ResourceVersion {
		if err := admin.SetAuthCode(ctx, name, string(code)); err != nil {
			return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, "setting the auth code: "+err.Error())
		}
		if existed {
			r.Recorder.Eventf(org, nil, corev1.EventTypeNormal, "AuthCodeChanged", "Apply", "set the auth code of %s from Secret %s", name, ref.Name)
		}
		org.Status.AuthCodeSecretVersion = secret.ResourceVersion
	}
	var problems []error
	for _, c := range []struct {
		fingerprints []string
		state        string
	}{{org.Spec.Clients.Enable, adminclient.ClientActive}, {org.Spec.Clients.Disable, adminclient.ClientDisabled}} {
		for _, fp := range c.fingerprints {
			if err := admin.SetClientState(ctx, name, fp, c.state); err != nil {
				problems = append(problems, fmt.Errorf("client %s: %w", fp, err))
			}
		}
	}
	if len(problems) > 0 {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, errors.Join(problems...).Error())
	}
	if state, err = admin.Organization(ctx, name); err != nil {
		return r.notSynced(ctx, orig, org, trusteev1.ReasonSyncFailed, err.Error())
	}
	org.Status.UUID = state.UUID
	org.Status.Clients = trusteev1.ClientCounts{Active: int32(state.Clients.Active), Pending: int32(state.Clients.Pending), Disabled: int32(state.Clients.Disabled)}
	org.Status.ObservedGeneration = org.Generation
	setConditions(&org.Status.Conditions, []metav1.Condition{{Type: trusteev1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: trusteev1.ReasonSynced, Message: fmt.Sprintf("organization %s is on the server as specified", name), ObservedGeneration: org.Generation}})
	if err := r.Status().Patch(ctx, org, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: organizationResync}, nil
}

// notSynced records why the organization is not (yet) as specified and
// retries later.
func (r *OrganizationReconciler) notSynced(ctx context.Context, orig, org *trusteev1.Organization, reason, msg string) (ctrl.Result, error) {
	if reason == trusteev1.ReasonSyncFailed {
		r.Recorder.Eventf(org, nil, corev1.EventTypeWarning, reason, "Apply", "%s", msg)
	}
	org.Status.ObservedGeneration = org.Generation
	setConditions(&org.Status.Conditions, []metav1.Condition{{Type: trusteev1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: reason, Message: msg, ObservedGeneration: org.Generation}})
	if err := r.Status().Patch(ctx, org, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: notReadyRecheck}, nil
}

func (r *OrganizationReconciler) removeFinalizer(ctx context.Context, org *trusteev1.Organization) error {
	if controllerutil.RemoveFinalizer(org, organizationFinalizer) {
		return r.Update(ctx, org)
	}
	return nil
}

// adminClient talks to the active's admin API with the operator's client
// certificate, verifying the server by the CA of its certificate.
func (r *OrganizationReconciler) adminClient(ctx context.Context, kts *trusteev1.KeyTrusteeServer) (*adminclient.Client, error) {
	n := namesOf(kts)
	cert := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: n.OperatorAdmin()}, cert); err != nil {
		return nil, fmt.Errorf("waiting for the operator's admin certificate (Secret %s, issued by cert-manager): %v", n.OperatorAdmin(), err)
	}
	pair, err := tls.X509KeyPair(cert.Data[corev1.TLSCertKey], cert.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("Secret %s holds no usable admin certificate: %v", n.OperatorAdmin(), err)
	}
	serverTLS := &corev1.Secret{}
	in := serverInputs{KTS: kts, Active: kts.Status.ActiveMember}
	name := in.tlsSecretName()
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, serverTLS); err != nil {
		return nil, fmt.Errorf("waiting for the servers' certificate (Secret %s): %v", name, err)
	}
	hc, err := httpsClient(serverTLS.Data["ca.crt"], &pair, n.PodHost(in.active()), r.timeout())
	if err != nil {
		return nil, err
	}
	pod := &corev1.Pod{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: n.Pod(in.active())}, pod); err != nil {
		return nil, fmt.Errorf("waiting for the active's pod %s: %v", n.Pod(in.active()), err)
	}
	if pod.Status.PodIP == "" && r.Address == nil {
		return nil, fmt.Errorf("waiting for the active's pod %s to have an address", pod.Name)
	}
	return adminclient.NewWithHTTPClient("https://"+r.address(kts, in.active(), portAdmin, pod.Status.PodIP), hc), nil
}

// SetupWithManager watches Organizations, their auth code Secrets and
// their servers.
func (r *OrganizationReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &trusteev1.Organization{}, indexOrgSecret, func(o client.Object) []string {
		return []string{o.(*trusteev1.Organization).Spec.AuthCodeSecretRef.Name}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &trusteev1.Organization{}, indexOrgServer, func(o client.Object) []string {
		return []string{o.(*trusteev1.Organization).Spec.ServerRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&trusteev1.Organization{}).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.orgsBy(indexOrgSecret))).
		Watches(&trusteev1.KeyTrusteeServer{}, handler.EnqueueRequestsFromMapFunc(r.orgsBy(indexOrgServer))).
		Complete(r)
}

const (
	indexOrgSecret = "trustee.dev/auth-code-secret"
	indexOrgServer = "trustee.dev/server"
)

func (r *OrganizationReconciler) orgsBy(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		var list trusteev1.OrganizationList
		if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			log.FromContext(ctx).Error(err, "listing organizations", "index", index)
			return nil
		}
		out := make([]ctrl.Request, 0, len(list.Items))
		for _, org := range list.Items {
			out = append(out, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: org.Namespace, Name: org.Name}})
		}
		return out
	}
}
