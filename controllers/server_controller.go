package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/server/openpgp"
)

// ServerReconciler turns a KeyTrusteeServer into its Secrets, certificates,
// StatefulSets, Services, PodDisruptionBudget and NetworkPolicy, and
// reports what it sees in the status.
type ServerReconciler struct {
	client.Client
	// APIReader reads what the operator does not cache (StorageClasses).
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Options
}

// Options are the operator's settings shared by the reconcilers.
type Options struct {
	// DefaultImage runs members whose spec.image is empty.
	DefaultImage string
	// OperatorNamespace and OperatorLabels find the operator's own pods
	// (for the NetworkPolicy of the admin port).
	OperatorNamespace string
	OperatorLabels    map[string]string
	// Address gives host:port of a member's port. By default it is the
	// member pod's IP address (so the operator needs no cluster DNS), the
	// TLS name being always the pod's stable DNS name.
	Address func(k *trusteev1.KeyTrusteeServer, member string, port int) string
	// HTTPTimeout bounds every call to a server.
	HTTPTimeout time.Duration
}

func (o Options) address(k *trusteev1.KeyTrusteeServer, member string, port int, podIP string) string {
	if o.Address != nil {
		return o.Address(k, member, port)
	}
	return net.JoinHostPort(podIP, strconv.Itoa(port))
}

func (o Options) timeout() time.Duration { return orDefault(o.HTTPTimeout, 5*time.Second) }

// How often a server's status is looked at again while it is not ready.
const notReadyRecheck = 10 * time.Second

// Reconcile brings one KeyTrusteeServer's objects to what its spec asks.
func (r *ServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	kts := &trusteev1.KeyTrusteeServer{}
	if err := r.Get(ctx, req.NamespacedName, kts); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !kts.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector removes what it owns
	}
	in := serverInputs{KTS: kts, DefaultImage: r.DefaultImage, OperatorNamespace: r.OperatorNamespace, OperatorLabels: r.OperatorLabels}
	n := in.names()

	identity, err := r.ensureGenerated(ctx, kts, n.Identity(), confdir.IdentityKeys, func() (map[string][]byte, error) {
		if kts.Spec.Bootstrap != nil {
			return r.identityFromArchive(ctx, kts)
		}
		return confdir.NewIdentity(confdir.IdentityOptions{Hostname: n.ServiceHost(n.ReadWrite())})
	})
	if err == nil { // also without high availability, so that it can be turned on
		_, err = r.ensureGenerated(ctx, kts, n.Replication(), []string{confdir.ReplicationPassword}, func() (map[string][]byte, error) {
			return confdir.NewReplicationSecret(), nil
		})
	}
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	if kts.Spec.SMTP != nil && kts.Spec.SMTP.AuthSecretRef != nil {
		s := &corev1.Secret{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: kts.Spec.SMTP.AuthSecretRef.Name}, s); err != nil {
			return ctrl.Result{}, r.fail(ctx, kts, fmt.Errorf("smtp.authSecretRef: %w", err))
		}
		in.SMTPUser = string(s.Data[corev1.BasicAuthUsernameKey])
	}

	state, err := r.ensureState(ctx, kts, identity)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	in.Active = activeMemberOf(state)
	sw, err := r.switchover(ctx, &in)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	grow, claimed, err := r.growVolumes(ctx, &in)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	roll, err := r.applyAll(ctx, in)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	revert, err := r.replaceLeftBehind(ctx, kts, revertObservation{
		HA:        kts.HighAvailabilityEnabled(),
		Switching: in.FenceFor != "" || (sw.Reason != "" && sw.Reason != trusteev1.ReasonSwitchoverRefused) || roll.Reason == trusteev1.ReasonPromoting,
		Active:    roll.From.Active,
		Passive:   roll.From.Passive,
	})
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}
	monitoring, err := r.reconcileMonitoring(ctx, in)
	if err != nil {
		return ctrl.Result{}, r.fail(ctx, kts, err)
	}

	obs, err := r.observe(ctx, in)
	if err != nil {
		return ctrl.Result{}, err
	}
	if obs.Active.Ready && len(state[contract.KeyDatabaseCreated]) == 0 && r.answers(ctx, in, obs) {
		if err := r.markDatabaseCreated(ctx, kts, n.State()); err != nil {
			return ctrl.Result{}, err
		}
	}
	orig := kts.DeepCopy()
	kts.Status.ObservedGeneration = kts.Generation
	upgrading := rollCondition(roll)
	if revert.Reason != "" {
		upgrading = revertCondition(revert)
	}
	upgrading.ObservedGeneration = kts.Generation
	prev := meta.FindStatusCondition(kts.Status.Conditions, trusteev1.ConditionSwitchover)
	switching := switchCondition(sw, prev != nil && prev.Status == metav1.ConditionTrue, obs, in.active())
	switching.ObservedGeneration = kts.Generation
	resized := growCondition(grow)
	resized.ObservedGeneration = kts.Generation
	conds := append(serverConditions(obs), upgrading, switching, resized)
	if monitoring != nil {
		conds = append(conds, *monitoring)
	} else {
		meta.RemoveStatusCondition(&kts.Status.Conditions, trusteev1.ConditionPodMonitorReady)
	}
	r.announce(kts, conds)
	setConditions(&kts.Status.Conditions, conds)
	kts.Status.ActiveMember = in.active()
	kts.Status.Active = obs.Active.Name
	kts.Status.Passive = ""
	if obs.HA {
		kts.Status.Passive = obs.Passive.Name
	}
	kts.Status.Endpoints = in.endpoints()
	if claimed != nil {
		kts.Status.StorageSize = claimed
	}
	if key, err := openpgp.ReadPrivate(identity[confdir.IdentityServerKey]); err == nil {
		kts.Status.Fingerprint = key.Public().ID()
	}
	if err := r.Status().Patch(ctx, kts, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, err
	}
	r.tellRefusal(kts, meta.FindStatusCondition(orig.Status.Conditions, trusteev1.ConditionUpgrading), revert)
	if !ready(kts.Status.Conditions) || grow.Reason == trusteev1.ReasonGrowing || grow.Reason == trusteev1.ReasonRecreatingStatefulSets {
		return ctrl.Result{RequeueAfter: notReadyRecheck}, nil
	}
	return ctrl.Result{RequeueAfter: 5 * notReadyRecheck}, nil
}

// announce emits an event for each member, replication or certificate
// condition that changes status, and for the Degraded condition, so that
// `kubectl get events` tells what happened when.
func (r *ServerReconciler) announce(kts *trusteev1.KeyTrusteeServer, conds []metav1.Condition) {
	for _, c := range conds {
		switch c.Type {
		case trusteev1.ConditionActiveReady, trusteev1.ConditionPassiveReady, trusteev1.ConditionReplicating,
			trusteev1.ConditionCertificateReady, trusteev1.ConditionDegraded, trusteev1.ConditionUpgrading, trusteev1.ConditionSwitchover,
			trusteev1.ConditionStorageResized, trusteev1.ConditionPodMonitorReady:
		default:
			continue
		}
		old := meta.FindStatusCondition(kts.Status.Conditions, c.Type)
		if c.Type == trusteev1.ConditionStorageResized {
			// Each step of a growth is an event of its own, named by its
			// reason; a refusal is a warning.
			if (old == nil && c.Reason != trusteev1.ReasonResized) || (old != nil && old.Reason != c.Reason) {
				kind := corev1.EventTypeNormal
				if c.Reason == trusteev1.ReasonResizeRefused {
					kind = corev1.EventTypeWarning
				}
				r.Recorder.Eventf(kts, nil, kind, c.Reason, "GrowVolumes", "%s", c.Message)
			}
			continue
		}
		if c.Type == trusteev1.ConditionSwitchover {
			// Each step of a switchover is an event of its own, named by
			// its reason.
			if old != nil && old.Reason != c.Reason {
				kind := corev1.EventTypeNormal
				if c.Reason == trusteev1.ReasonSwitchoverRefused || c.Reason == trusteev1.ReasonActiveLost {
					kind = corev1.EventTypeWarning
				}
				r.Recorder.Eventf(kts, nil, kind, c.Reason, "Switchover", "%s", c.Message)
			}
			continue
		}
		if old == nil || old.Status == c.Status {
			continue // the first observation, or no change
		}
		kind := corev1.EventTypeNormal
		if (c.Status == metav1.ConditionTrue) == (c.Type == trusteev1.ConditionDegraded) {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(kts, nil, kind, c.Type+string(c.Status), "Observe", "%s is %s: %s", c.Type, c.Status, c.Message)
	}
}

// answers reports whether the active's server answered its /readyz: it
// runs, so its database exists (a pod's Ready condition alone is only what
// its node reports).
func (r *ServerReconciler) answers(ctx context.Context, in serverInputs, obs serverObservation) bool {
	rep := obs.Replication
	if rep == nil {
		rep = r.probeReplication(ctx, in, obs.Active.IP)
	}
	return rep.Err == ""
}

// markDatabaseCreated adds contract.KeyDatabaseCreated to the state
// Secret: from then on the active's setup refuses to create an empty
// database on an empty volume.
func (r *ServerReconciler) markDatabaseCreated(ctx context.Context, kts *trusteev1.KeyTrusteeServer, name string) error {
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, s); err != nil {
		return err
	}
	if len(s.Data[contract.KeyDatabaseCreated]) > 0 {
		return nil
	}
	orig := s.DeepCopy()
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	s.Data[contract.KeyDatabaseCreated] = []byte(time.Now().UTC().Format(time.RFC3339))
	if err := r.Patch(ctx, s, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return err
	}
	r.Recorder.Eventf(kts, nil, corev1.EventTypeNormal, "DatabaseCreated", "Observe",
		"the active serves its database: from now on an empty volume of the active is refused, not filled anew (key %s of Secret %s)", contract.KeyDatabaseCreated, name)
	return nil
}

// ensureState returns the data of the server's state Secret, made once
// (stateSecret).
func (r *ServerReconciler) ensureState(ctx context.Context, kts *trusteev1.KeyTrusteeServer, identity map[string][]byte) (map[string][]byte, error) {
	n := namesOf(kts)
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: n.State()}, s)
	if err == nil {
		return s.Data, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	s = stateSecret(n, identity)
	if err := r.Create(ctx, s); err != nil {
		return nil, fmt.Errorf("creating the state Secret %s: %w", s.Name, err)
	}
	return s.Data, nil
}

// ensureGenerated returns the data of a Secret the operator generates once:
// an existing Secret of that name is used as it is (adopted) when it holds
// every key, and never replaced.
func (r *ServerReconciler) ensureGenerated(ctx context.Context, kts *trusteev1.KeyTrusteeServer, name string, keys []string, generate func() (map[string][]byte, error)) (map[string][]byte, error) {
	s := &corev1.Secret{}
	err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, s)
	if err == nil {
		for _, k := range keys {
			if len(s.Data[k]) == 0 {
				return nil, fmt.Errorf("Secret %s exists but has no key %q: it is not a server identity this operator can use; move it away or add the key", name, k)
			}
		}
		return s.Data, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	data, err := generate()
	if err != nil {
		return nil, err
	}
	s = identitySecret(namesOf(kts), data)
	s.Name = name
	if err := r.Create(ctx, s); err != nil {
		// Another reconcile may have created it first: use that one.
		if apierrors.IsAlreadyExists(err) {
			return r.ensureGenerated(ctx, kts, name, keys, generate)
		}
		return nil, err
	}
	r.Recorder.Eventf(kts, nil, corev1.EventTypeNormal, "Generated", "Generate", "generated Secret %s; it is kept when the KeyTrusteeServer is deleted", name)
	return data, nil
}

// applyAll applies every owned object the spec asks for and removes the
// passive's when high availability is off. A change of the active's pod
// template waits for the passive's (decideRoll); it returns where that
// roll stands.
func (r *ServerReconciler) applyAll(ctx context.Context, in serverInputs) (rollState, error) {
	kts := in.KTS
	cm, err := in.configMap()
	if err != nil {
		return rollState{}, err
	}
	objs := []client.Object{cm}
	if c := in.serverCertificate(); c != nil {
		objs = append(objs, c)
	}
	selfSigned, ca, caIssuer, operator := in.adminPKI()
	objs = append(objs, selfSigned, ca, caIssuer, operator)
	for _, s := range in.services() {
		objs = append(objs, s)
	}
	objs = append(objs, in.podDisruptionBudget(), in.networkPolicy())
	active, passive := in.statefulSet(in.active(), cm), in.statefulSet(in.passive(), cm)
	roll, err := r.planRoll(ctx, in, active, passive)
	if err != nil {
		return roll, err
	}
	if (!roll.HoldActive || in.FenceFor != "") && !in.HoldStatefulSets[in.active()] {
		objs = append(objs, active)
	}
	if kts.HighAvailabilityEnabled() && !in.HoldStatefulSets[in.passive()] {
		first, err := r.passiveWaitsForActive(ctx, in)
		if err != nil {
			return roll, err
		}
		if !first {
			objs = append(objs, passive)
		}
	}
	for _, o := range objs {
		if err := apply(ctx, r.Client, r.Scheme, kts, o); err != nil {
			return roll, err
		}
	}
	if !kts.HighAvailabilityEnabled() {
		n := in.names()
		for _, o := range []client.Object{
			&appsv1.StatefulSet{ObjectMeta: in.meta(n.StatefulSet(in.passive()))},
			&corev1.Service{ObjectMeta: in.meta(n.StatefulSet(in.passive()))},
		} {
			if err := r.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
				return roll, err
			}
		}
	}
	return roll, nil
}

// planRoll observes both members for decideRoll; it asks the active about
// its standby only when that decides whether the active may restart.
func (r *ServerReconciler) planRoll(ctx context.Context, in serverInputs, active, passive *appsv1.StatefulSet) (rollState, error) {
	o := rollObservation{HA: in.KTS.HighAvailabilityEnabled()}
	var err error
	if o.Active, err = r.observeRollout(ctx, in, in.active(), active); err != nil {
		return rollState{}, err
	}
	if o.Passive, err = r.observeRollout(ctx, in, in.passive(), passive); err != nil {
		return rollState{}, err
	}
	s := decideRoll(o)
	if s.Reason != trusteev1.ReasonWaitingForSync {
		s.From = o
		return s, nil
	}
	pod := &corev1.Pod{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: in.KTS.Namespace, Name: o.Active.Pod}, pod); err != nil {
		return rollState{}, err
	}
	if rep := r.probeReplication(ctx, in, pod.Status.PodIP); rep != nil && rep.Err == "" {
		o.InSync = contract.InSync(rep.Attached, rep.SyncState)
	}
	s = decideRoll(o)
	s.From = o
	return s, nil
}

// passiveWaitsForActive reports whether the passive's StatefulSet must not
// be made yet: until the active's pod is placed on a node. The two repel
// each other, so were the passive placed first where there is room for
// one only, the active could not be placed at all (and a passive without
// its active has nothing to copy).
func (r *ServerReconciler) passiveWaitsForActive(ctx context.Context, in serverInputs) (bool, error) {
	n := in.names()
	err := r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: n.StatefulSet(in.passive())}, &appsv1.StatefulSet{})
	if err == nil {
		return false, nil // made already: keep it as the spec says
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	pod := &corev1.Pod{}
	err = r.Get(ctx, types.NamespacedName{Namespace: n.namespace, Name: n.Pod(in.active())}, pod)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return err == nil && pod.Spec.NodeName == "", err
}

// fail records a reconcile error in the status and events, and returns it
// (so the request is retried with back-off).
func (r *ServerReconciler) fail(ctx context.Context, kts *trusteev1.KeyTrusteeServer, err error) error {
	r.Recorder.Eventf(kts, nil, corev1.EventTypeWarning, "ReconcileFailed", "Reconcile", "%v", err)
	orig := kts.DeepCopy()
	setConditions(&kts.Status.Conditions, []metav1.Condition{{
		Type: trusteev1.ConditionReady, Status: metav1.ConditionFalse, Reason: "ReconcileFailed", Message: err.Error(), ObservedGeneration: kts.Generation,
	}})
	if perr := r.Status().Patch(ctx, kts, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); perr != nil {
		log.FromContext(ctx).Error(perr, "recording the failure in the status")
	}
	return err
}

// observe reads the certificate, the pods and the active's replication.
func (r *ServerReconciler) observe(ctx context.Context, in serverInputs) (serverObservation, error) {
	kts, n := in.KTS, in.names()
	o := serverObservation{Generation: kts.Generation, HA: kts.HighAvailabilityEnabled()}
	var err error
	if o.Certificate, err = r.observeCertificate(ctx, in); err != nil {
		return o, err
	}
	for _, m := range []struct {
		member string
		into   *podObservation
	}{{in.active(), &o.Active}, {in.passive(), &o.Passive}} {
		pod := &corev1.Pod{}
		name := n.Pod(m.member)
		switch err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, pod); {
		case apierrors.IsNotFound(err):
			*m.into = observePod(name, nil, nil)
		case err != nil:
			return o, err
		default:
			var node *corev1.Node
			if pod.Spec.NodeName != "" {
				node = &corev1.Node{}
				if err := r.Get(ctx, types.NamespacedName{Name: pod.Spec.NodeName}, node); apierrors.IsNotFound(err) {
					node = nil
				} else if err != nil {
					return o, err
				}
			}
			*m.into = observePod(name, pod, node)
		}
	}
	if o.HA && o.Active.Ready {
		o.Replication = r.probeReplication(ctx, in, o.Active.IP)
	}
	return o, nil
}

func (r *ServerReconciler) observeCertificate(ctx context.Context, in serverInputs) (condition, error) {
	kts := in.KTS
	if kts.Spec.TLS.IssuerRef == nil {
		s := &corev1.Secret{}
		err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: kts.Spec.TLS.SecretName}, s)
		switch {
		case apierrors.IsNotFound(err):
			return condition{Reason: trusteev1.ReasonSecretNotFound, Message: fmt.Sprintf("Secret %s named in tls.secretName does not exist", kts.Spec.TLS.SecretName)}, nil
		case err != nil:
			return condition{}, err
		}
		if _, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]); err != nil {
			return condition{Reason: trusteev1.ReasonSecretInvalid, Message: fmt.Sprintf("Secret %s holds no usable tls.crt and tls.key: %v", s.Name, err)}, nil
		}
		return condition{OK: true, Reason: trusteev1.ReasonCertificateIssued, Message: fmt.Sprintf("the certificate in Secret %s is in use", s.Name)}, nil
	}
	c := &cmv1.Certificate{}
	name := in.names().ServerCertificate()
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: name}, c); err != nil {
		if apierrors.IsNotFound(err) {
			return condition{Reason: trusteev1.ReasonCertificatePending, Message: fmt.Sprintf("Certificate %s is not created yet", name)}, nil
		}
		return condition{}, err
	}
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmv1.CertificateConditionReady {
			if cond.Status == cmmeta.ConditionTrue {
				return condition{OK: true, Reason: trusteev1.ReasonCertificateIssued, Message: fmt.Sprintf("Certificate %s is issued: %s", name, cond.Message)}, nil
			}
			return condition{Reason: trusteev1.ReasonCertificatePending, Message: fmt.Sprintf("Certificate %s is not ready: %s", name, cond.Message)}, nil
		}
	}
	return condition{Reason: trusteev1.ReasonCertificatePending, Message: fmt.Sprintf("Certificate %s is waiting for cert-manager (is it installed, and does issuer %s exist?)", name, c.Spec.IssuerRef.Name)}, nil
}

// probeReplication asks the active's /readyz about its standby, verifying
// the active with the CA of the servers' certificate.
func (r *ServerReconciler) probeReplication(ctx context.Context, in serverInputs, podIP string) *replicationObservation {
	kts := in.KTS
	failed := func(err error) *replicationObservation { return &replicationObservation{Err: err.Error()} }
	s := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: kts.Namespace, Name: in.tlsSecretName()}, s); err != nil {
		return failed(err)
	}
	hc, err := httpsClient(s.Data["ca.crt"], nil, in.names().PodHost(in.active()), r.timeout())
	if err != nil {
		return failed(err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.address(kts, in.active(), portAPI, podIP)+contract.ReadyzPath, nil)
	if err != nil {
		return failed(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	var body contract.Readyz
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&body); err != nil {
		return failed(fmt.Errorf("GET /readyz of the active answered %s: %w", resp.Status, err))
	}
	return &replicationObservation{Attached: body.Replication.Attached, SyncState: body.Replication.SyncState}
}

// httpsClient verifies the server by the CA certificates in caPEM and the
// name serverName, and presents cert when it is not nil.
func httpsClient(caPEM []byte, cert *tls.Certificate, serverName string, timeout time.Duration) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the certificate Secret has no ca.crt to verify the servers with")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}, nil
}

func ready(conds []metav1.Condition) bool {
	for _, c := range conds {
		if c.Type == trusteev1.ConditionReady {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}

// SetupWithManager watches KeyTrusteeServers, what they own, their pods and
// claims, and the Secrets they name.
func (r *ServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &trusteev1.KeyTrusteeServer{}, indexServerSecrets, serverSecretNames); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&trusteev1.KeyTrusteeServer{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&cmv1.Certificate{}).
		Owns(&cmv1.Issuer{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(serverOfLabeled)).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(serverOfLabeled)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.serversOnNode)).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.serversNamingSecret)).
		Complete(r)
}

// serverOfLabeled maps a member's pod or claim to its server.
func serverOfLabeled(_ context.Context, o client.Object) []ctrl.Request {
	name := o.GetLabels()[labelServer]
	if name == "" || o.GetLabels()[labelComponent] != componentServer {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// serversOnNode maps a node to the servers with a member on it, so that a
// node going away or not ready shows in their status at once.
func (r *ServerReconciler) serversOnNode(ctx context.Context, node client.Object) []ctrl.Request {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.MatchingLabels{labelComponent: componentServer}); err != nil {
		log.FromContext(ctx).Error(err, "listing the members' pods", "node", node.GetName())
		return nil
	}
	var out []ctrl.Request
	for _, p := range pods.Items {
		if p.Spec.NodeName == node.GetName() {
			out = append(out, serverOfLabeled(ctx, &p)...)
		}
	}
	return out
}

const indexServerSecrets = "trustee.dev/secrets"

// serverSecretNames are the Secrets a server reads: its identity and state, the TLS
// Secret, SMTP and HSM Secrets.
func serverSecretNames(o client.Object) []string {
	k := o.(*trusteev1.KeyTrusteeServer)
	n := namesOf(k)
	out := []string{n.Identity(), n.State(), n.Replication(), serverInputs{KTS: k}.tlsSecretName()}
	if m := k.Spec.SMTP; m != nil && m.AuthSecretRef != nil {
		out = append(out, m.AuthSecretRef.Name)
	}
	if b := k.Spec.Bootstrap; b != nil {
		out = append(out, b.Backup.ArchiveSecretRef.Name)
	}
	return out
}

func (r *ServerReconciler) serversNamingSecret(ctx context.Context, o client.Object) []ctrl.Request {
	var list trusteev1.KeyTrusteeServerList
	if err := r.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexServerSecrets: o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "listing the servers that use a Secret", "secret", o.GetName())
		return nil
	}
	out := make([]ctrl.Request, 0, len(list.Items))
	for _, k := range list.Items {
		out = append(out, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: k.Namespace, Name: k.Name}})
	}
	return out
}
