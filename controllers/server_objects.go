package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/confdir"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/server/member/contract"
)

// serverInputs is everything the objects of a KeyTrusteeServer are built
// from: the resource and what the operator knows about itself.
type serverInputs struct {
	KTS *trusteev1.KeyTrusteeServer
	// DefaultImage runs the members when spec.image is empty: the
	// operator's own image.
	DefaultImage string
	// OperatorNamespace and OperatorLabels find the operator's pods, the
	// only ones the NetworkPolicy lets reach the admin port. Empty
	// OperatorNamespace lets any pod try (the port still needs an admin
	// certificate).
	OperatorNamespace string
	OperatorLabels    map[string]string
	// SMTPUser is the username in spec.smtp.authSecretRef's Secret.
	SMTPUser string
	// Active is the member that holds the active role (memberA when
	// empty), as the identity Secret records it.
	Active string
	// FenceFor stops the active's pod (its StatefulSet scaled to zero), so
	// that it accepts no more writes before this member is promoted.
	FenceFor string
	// ClaimTemplates maps a member to the size of its StatefulSet's claim
	// template when it is not the spec's: the StatefulSet keeps the one it
	// has until the member's claim has grown (decideGrowth).
	ClaimTemplates map[string]resource.Quantity
	// ClaimLabels maps a member to the labels of its StatefulSet's claim
	// template, which cannot change while the StatefulSet exists: one made
	// by an older operator keeps its labels until it is made again.
	ClaimLabels map[string]map[string]string
	// HoldStatefulSets are the members whose StatefulSet is being deleted,
	// to be made again with a new claim template: it is not applied.
	HoldStatefulSets map[string]bool
}

// Identifiers in the generated objects.
const (
	standbyName    = "kts_passive"
	imageUID       = 10001
	defaultStorage = "10Gi"
	configHashKey  = "trustee.dev/config-hash"
	adminCommon    = "trustee-operator"
)

func (in serverInputs) names() serverNames { return namesOf(in.KTS) }

func (in serverInputs) image() string {
	if in.KTS.Spec.Image != "" {
		return in.KTS.Spec.Image
	}
	return in.DefaultImage
}

// active and passive are the members holding each role.
func (in serverInputs) active() string  { return orDefault(in.Active, memberA) }
func (in serverInputs) passive() string { return otherMember(in.active()) }

// role is the role member holds.
func (in serverInputs) role(member string) string {
	if member == in.active() {
		return config.RoleActive
	}
	return config.RolePassive
}

// members are the members the spec asks for, the active first.
func (in serverInputs) members() []string {
	if in.KTS.HighAvailabilityEnabled() {
		return []string{in.active(), in.passive()}
	}
	return []string{in.active()}
}

func (in serverInputs) meta(name string) metav1.ObjectMeta {
	n := in.names()
	return metav1.ObjectMeta{Name: name, Namespace: n.namespace, Labels: n.labels()}
}

// identitySecret is the server's identity: its OpenPGP key, deposit keyring
// and secrets, as confdir.NewIdentity made them.
func identitySecret(n serverNames, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: n.Identity(), Namespace: n.namespace, Labels: n.labels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// stateSecret is where the operator records what the members' setup
// obeys (contract.KeyActiveMember, contract.KeyDatabaseCreated), apart from
// the identity, which an external secret manager may own and sync back. It
// is made once, with no owner, so that it outlives the KeyTrusteeServer as
// the identity does; markers a server made before it kept in its identity
// Secret are carried over.
func stateSecret(n serverNames, identity map[string][]byte) *corev1.Secret {
	data := map[string][]byte{}
	for _, k := range []string{contract.KeyActiveMember, contract.KeyDatabaseCreated} {
		if v := identity[k]; len(v) > 0 {
			data[k] = v
		}
	}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: n.State(), Namespace: n.namespace, Labels: n.labels()},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// replicationSecret holds the pair's replication password.
func replicationSecret(n serverNames, data map[string][]byte) *corev1.Secret {
	s := identitySecret(n, data)
	s.Name = n.Replication()
	return s
}

// memberConfig renders a member's keytrustee.conf: every file it names is
// on one of the pod's mounts.
func (in serverInputs) memberConfig(member string) config.Config {
	n, spec := in.names(), in.KTS.Spec
	c := config.Default(n.PodHost(member))
	c.ListenAddress = fmt.Sprintf(":%d", portAPI)
	c.SSLCertificate = path.Join(mountTLS, corev1.TLSCertKey)
	c.SSLPrivateKey = path.Join(mountTLS, corev1.TLSPrivateKeyKey)
	c.TLSMinVersion = orDefault(spec.TLS.MinVersion, config.DefaultTLSMinVersion)
	c.SSLCipherList = spec.TLS.CipherList
	c.DBHost, c.DBPort = "127.0.0.1", portPostgreSQL
	c.DBPasswordFile = path.Join(mountIdentity, confdir.IdentityDBPassword)
	c.ServerKey = path.Join(mountIdentity, confdir.IdentityServerKey)
	c.Keyring = path.Join(mountIdentity, confdir.IdentityKeyring)
	c.SessionKey = path.Join(mountIdentity, confdir.IdentitySessionKey)
	c.ReplicationPasswordFile = path.Join(mountReplication, confdir.ReplicationPassword)
	c.DBListenAddresses = "*"
	c.DBSocketDir = mountRun
	// Any address: the NetworkPolicy lets only the other member and the
	// server's backup Jobs reach port 5432, and both need a password.
	c.ReplicationFrom = []string{"0.0.0.0/0", "::/0"}
	c.DBClientsFrom = c.ReplicationFrom
	// Replication and backups cross the pod network over TLS with the
	// servers' certificate, verified against its CA (hostssl beyond
	// loopback; the server itself connects over 127.0.0.1).
	c.DBTLS = true
	c.DBParameters = nil
	for _, p := range spec.PostgreSQL.Parameters {
		if c.DBParameters == nil {
			c.DBParameters = map[string]string{}
		}
		c.DBParameters[p.Name] = p.Value
	}
	c.AdminListenAddress = fmt.Sprintf(":%d", portAdmin)
	c.AdminCAFile = path.Join(mountAdminCA, "ca.crt")
	c.Role = config.RoleActive
	c.StandbyName = ""
	if in.KTS.HighAvailabilityEnabled() {
		c.StandbyName = standbyName
	}
	if in.role(member) == config.RolePassive {
		c.Role = config.RolePassive
		c.ActiveURL = fmt.Sprintf("https://%s:%d", n.PodHost(in.active()), portAPI)
		c.ActiveCA = path.Join(mountTLS, "ca.crt")
		c.ActiveDB = fmt.Sprintf("%s:%d", n.PodHost(in.active()), portPostgreSQL)
	}
	if h := spec.HSM; h != nil {
		c.HSMModule, c.HSMTokenLabel = h.Module, h.TokenLabel
		c.HSMPINFile = path.Join(mountHSM, h.PINSecretRef.Key)
		// The identity stays in its Secret as it is (kts member setup seals
		// nothing on a read-only mount); the HSM holds the deposit keys.
		c.HSMSealState = false
		if h.DataKeyCacheSeconds != nil {
			c.HSMDataKeyCacheSeconds = int(*h.DataKeyCacheSeconds)
		}
	}
	c.ExternalURL = fmt.Sprintf("https://%s:%d", n.ServiceHost(n.ReadWrite()), portAPI)
	if m := spec.SMTP; m != nil {
		c.SMTPHost, c.SMTPPort, c.SMTPTLS, c.SMTPFrom = m.Host, int(m.Port), m.Security, m.From
		if m.ExternalURL != "" {
			c.ExternalURL = m.ExternalURL
		}
		if m.AuthSecretRef != nil {
			c.SMTPUser = in.SMTPUser
			c.SMTPPasswordFile = path.Join(mountSMTPAuth, corev1.BasicAuthPasswordKey)
		}
		if m.CASecretRef != nil {
			c.SMTPCAFile = path.Join(mountSMTPCA, m.CASecretRef.Key)
		}
	}
	return c
}

// configMap holds each member's keytrustee.conf.
func (in serverInputs) configMap() (*corev1.ConfigMap, error) {
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: in.meta(in.names().Config()),
		Data:       map[string]string{},
	}
	for _, m := range in.members() {
		b, err := json.MarshalIndent(in.memberConfig(m), "", "  ")
		if err != nil {
			return nil, err
		}
		cm.Data[m+".conf"] = string(b) + "\n"
	}
	return cm, nil
}

// tlsSecretName is the Secret holding the servers' certificate.
func (in serverInputs) tlsSecretName() string {
	if s := in.KTS.Spec.TLS.SecretName; s != "" {
		return s
	}
	return in.names().ServerTLSSecret()
}

// serviceDNSNames are the names the servers are reached by: every Service
// in its short and qualified forms, each member's pod, and spec.tls.dnsNames.
func (in serverInputs) serviceDNSNames() []string {
	n := in.names()
	var out []string
	svcs := []string{n.ReadWrite(), n.Read(), n.StatefulSet(memberA), n.StatefulSet(memberB), n.Members()}
	for _, s := range svcs {
		out = append(out, s, s+"."+n.namespace, n.ServiceHost(s), n.ServiceHost(s)+".cluster.local")
	}
	for _, m := range []string{memberA, memberB} {
		out = append(out, n.PodHost(m), n.PodHost(m)+".cluster.local")
	}
	for _, d := range in.KTS.Spec.TLS.DNSNames {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func ecdsaKey() *cmv1.CertificatePrivateKey {
	return &cmv1.CertificatePrivateKey{Algorithm: cmv1.ECDSAKeyAlgorithm, Size: 256, RotationPolicy: cmv1.RotationPolicyAlways}
}

func (in serverInputs) certificate(name, secret string, issuer cmmeta.IssuerReference) *cmv1.Certificate {
	return &cmv1.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.CertificateKind},
		ObjectMeta: in.meta(name),
		Spec: cmv1.CertificateSpec{SecretName: secret, IssuerRef: issuer, PrivateKey: ecdsaKey(),
			SecretTemplate: &cmv1.CertificateSecretTemplate{Labels: in.names().labels()}},
	}
}

// serverCertificate asks cert-manager for the servers' certificate; nil when
// spec.tls names an existing Secret instead.
func (in serverInputs) serverCertificate() *cmv1.Certificate {
	ref := in.KTS.Spec.TLS.IssuerRef
	if ref == nil {
		return nil
	}
	n := in.names()
	c := in.certificate(n.ServerCertificate(), n.ServerTLSSecret(), cmmeta.IssuerReference{
		Name: ref.Name, Kind: orDefault(ref.Kind, cmv1.IssuerKind), Group: orDefault(ref.Group, "cert-manager.io")})
	c.Spec.DNSNames = in.serviceDNSNames()
	// The passive also presents it when it forwards writes to the active.
	c.Spec.Usages = []cmv1.KeyUsage{cmv1.UsageDigitalSignature, cmv1.UsageServerAuth, cmv1.UsageClientAuth}
	return c
}

// adminPKI is the private CA that signs admin client certificates of this
// server, and the operator's certificate from it.
func (in serverInputs) adminPKI() (selfSigned *cmv1.Issuer, ca *cmv1.Certificate, caIssuer *cmv1.Issuer, operator *cmv1.Certificate) {
	n := in.names()
	issuer := func(name string) *cmv1.Issuer {
		return &cmv1.Issuer{TypeMeta: metav1.TypeMeta{APIVersion: cmv1.SchemeGroupVersion.String(), Kind: cmv1.IssuerKind}, ObjectMeta: in.meta(name)}
	}
	selfSigned = issuer(n.AdminSelfSigned())
	selfSigned.Spec.SelfSigned = &cmv1.SelfSignedIssuer{}
	ca = in.certificate(n.AdminCA(), n.AdminCA(), cmmeta.IssuerReference{Name: n.AdminSelfSigned(), Kind: cmv1.IssuerKind, Group: "cert-manager.io"})
	ca.Spec.IsCA, ca.Spec.CommonName = true, n.server+" admin CA"
	ca.Spec.Usages = []cmv1.KeyUsage{cmv1.UsageCertSign, cmv1.UsageCRLSign, cmv1.UsageDigitalSignature}
	caIssuer = issuer(n.AdminCA())
	caIssuer.Spec.CA = &cmv1.CAIssuer{SecretName: n.AdminCA()}
	operator = in.certificate(n.OperatorAdmin(), n.OperatorAdmin(), cmmeta.IssuerReference{Name: n.AdminCA(), Kind: cmv1.IssuerKind, Group: "cert-manager.io"})
	operator.Spec.CommonName = adminCommon
	operator.Spec.Usages = []cmv1.KeyUsage{cmv1.UsageDigitalSignature, cmv1.UsageClientAuth}
	return selfSigned, ca, caIssuer, operator
}

func servicePort(name string, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Port: port, TargetPort: intstr.FromString(name), Protocol: corev1.ProtocolTCP}
}

// services: read-write (the active), read (both), one per member, and the
// headless Service that names the pods.
func (in serverInputs) services() []*corev1.Service {
	n := in.names()
	svc := func(name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: in.meta(name),
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector, Ports: ports},
		}
	}
	api := servicePort("api", portAPI)
	out := []*corev1.Service{
		svc(n.ReadWrite(), n.memberLabels(in.active()), api),
		svc(n.Read(), n.serverSelector(), api),
	}
	for _, m := range in.members() {
		out = append(out, svc(n.StatefulSet(m), n.memberLabels(m), api))
	}
	headless := svc(n.Members(), n.serverSelector(), api, servicePort("admin", portAdmin), servicePort("postgresql", portPostgreSQL))
	headless.Spec.ClusterIP = corev1.ClusterIPNone
	headless.Spec.PublishNotReadyAddresses = true
	return append(out, headless)
}

// podDisruptionBudget lets a drain take at most one member at a time.
func (in serverInputs) podDisruptionBudget() *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: in.meta(in.names().PDB()),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &one,
			Selector:       &metav1.LabelSelector{MatchLabels: in.names().serverSelector()},
		},
	}
}

// networkPolicy: the API from anywhere, the admin API from the operator,
// PostgreSQL from the server's own pods (the other member, backup Jobs).
func (in serverInputs) networkPolicy() *networkingv1.NetworkPolicy {
	n := in.names()
	port := func(p int32) []networkingv1.NetworkPolicyPort {
		tcp, v := corev1.ProtocolTCP, intstr.FromInt32(p)
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: &v}}
	}
	admin := networkingv1.NetworkPolicyIngressRule{Ports: port(portAdmin)}
	if in.OperatorNamespace != "" {
		admin.From = []networkingv1.NetworkPolicyPeer{{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: in.OperatorNamespace}},
			PodSelector:       &metav1.LabelSelector{MatchLabels: in.OperatorLabels},
		}}
	}
	return &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: in.meta(n.NetworkPolicy()),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: n.peerSelector()},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{
				{Ports: port(portAPI)},
				admin,
				{Ports: port(portPostgreSQL), From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: n.peerSelector()}}}},
			},
		},
	}
}

// statefulSet runs one member: its pod holds the server and its
// PostgreSQL, set up by the setup init container, on the member's volume.
func (in serverInputs) statefulSet(member string, cm *corev1.ConfigMap) *appsv1.StatefulSet {
	n, spec := in.names(), in.KTS.Spec
	podLabels := mergeLabels(n.labels(), n.memberLabels(member))
	conf := path.Join(mountConfig, member+".conf")
	sum := sha256.Sum256([]byte(cm.Data[member+".conf"]))

	container := func(name string, args ...string) corev1.Container {
		return corev1.Container{
			Name: name, Image: in.image(), ImagePullPolicy: spec.ImagePullPolicy,
			Command: []string{"kts"}, Args: args,
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			VolumeMounts: in.volumeMounts(),
		}
	}
	role := in.role(member)
	args := contract.Setup{Member: role, ConfigFile: conf, Dir: stateDir,
		Name: member, ActiveMarker: path.Join(mountState, contract.KeyActiveMember)}
	volumes := in.volumes()
	var bootstrapMounts []corev1.VolumeMount
	if role == config.RoleActive {
		// Once the database exists, an empty volume is a loss, not a start.
		args.CreatedMarker = path.Join(mountState, contract.KeyDatabaseCreated)
		vols, mounts := in.bootstrapVolumes(&args)
		volumes = append(volumes, vols...)
		bootstrapMounts = mounts
	}
	setup := container(contract.ContainerSetup, args.Args()...)
	setup.VolumeMounts = append(setup.VolumeMounts, bootstrapMounts...)
	setup.Resources = spec.PostgreSQL.Resources
	postgres := container(contract.ContainerPostgreSQL, "db", "run", "--confdir", stateDir)
	postgres.Ports = []corev1.ContainerPort{{Name: "postgresql", ContainerPort: portPostgreSQL, Protocol: corev1.ProtocolTCP}}
	postgres.Resources = spec.PostgreSQL.Resources
	postgres.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("postgresql")}}, PeriodSeconds: 5}
	server := container(contract.ContainerServer, "server", "--confdir", stateDir)
	server.Ports = []corev1.ContainerPort{
		{Name: "api", ContainerPort: portAPI, Protocol: corev1.ProtocolTCP},
		{Name: "admin", ContainerPort: portAdmin, Protocol: corev1.ProtocolTCP},
	}
	server.Resources = spec.Resources
	httpsGet := func(p string) corev1.ProbeHandler {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: p, Port: intstr.FromString("api"), Scheme: corev1.URISchemeHTTPS}}
	}
	server.ReadinessProbe = &corev1.Probe{ProbeHandler: httpsGet(contract.ReadyzPath), PeriodSeconds: 5, FailureThreshold: 2}
	server.LivenessProbe = &corev1.Probe{ProbeHandler: httpsGet("/healthz"), PeriodSeconds: 10, FailureThreshold: 6}
	server.StartupProbe = &corev1.Probe{ProbeHandler: httpsGet("/healthz"), PeriodSeconds: 2, FailureThreshold: 150}

	size := in.storageSize()
	if q, ok := in.ClaimTemplates[member]; ok {
		size = q
	}
	claimLabels := mergeLabels(n.labels(), n.memberLabels(member))
	if l, ok := in.ClaimLabels[member]; ok {
		claimLabels = l
	}
	topology := orDefault(spec.Scheduling.TopologyKey, corev1.LabelHostname)
	replicas := int32(1)
	meta := in.meta(n.StatefulSet(member))
	meta.Labels[labelRole] = role
	if in.FenceFor != "" && role == config.RoleActive {
		replicas = 0
		meta.Annotations = map[string]string{promoteAnnotation: in.FenceFor}
	}
	return withTemplateHash(&appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To(replicas),
			ServiceName: n.Members(),
			Selector:    &metav1.LabelSelector{MatchLabels: n.memberLabels(member)},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: map[string]string{configHashKey: hex.EncodeToString(sum[:])}},
				Spec: corev1.PodSpec{
					InitContainers:                []corev1.Container{setup},
					Containers:                    []corev1.Container{postgres, server},
					Volumes:                       volumes,
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](60),
					ImagePullSecrets:              spec.ImagePullSecrets,
					NodeSelector:                  spec.Scheduling.NodeSelector,
					Tolerations:                   spec.Scheduling.Tolerations,
					PriorityClassName:             spec.Scheduling.PriorityClassName,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](imageUID), RunAsGroup: ptr.To[int64](imageUID),
						FSGroup: ptr.To[int64](imageUID), FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
							LabelSelector: &metav1.LabelSelector{MatchLabels: n.serverSelector()},
							TopologyKey:   topology,
						}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: claimTemplate, Labels: claimLabels},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					StorageClassName: spec.Storage.StorageClassName,
					Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
				},
			}},
		},
	})
}

// storageSize is the size of each member's volume the spec asks for.
func (in serverInputs) storageSize() resource.Quantity {
	if q := in.KTS.Spec.Storage.Size; q != nil {
		return q.DeepCopy()
	}
	return resource.MustParse(defaultStorage)
}

// secretVolume mounts a Secret readable by the pod's group only.
func secretVolume(name, secret string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, DefaultMode: ptr.To[int32](0o440)}}}
}

func (in serverInputs) volumes() []corev1.Volume {
	n, spec := in.names(), in.KTS.Spec
	empty := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	vs := []corev1.Volume{
		secretVolume("identity", n.Identity()),
		secretVolume("state", n.State()),
		secretVolume("replication", n.Replication()),
		secretVolume("tls", in.tlsSecretName()),
		secretVolume("admin-ca", n.AdminCA()),
		{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: n.Config()}}}},
		empty("run"), empty("tmp"),
	}
	if spec.HSM != nil {
		vs = append(vs, secretVolume("hsm", spec.HSM.PINSecretRef.Name))
	}
	if m := spec.SMTP; m != nil {
		if m.AuthSecretRef != nil {
			vs = append(vs, secretVolume("smtp-auth", m.AuthSecretRef.Name))
		}
		if m.CASecretRef != nil {
			vs = append(vs, secretVolume("smtp-ca", m.CASecretRef.Name))
		}
	}
	return vs
}

func (in serverInputs) volumeMounts() []corev1.VolumeMount {
	spec := in.KTS.Spec
	ro := func(name, at string) corev1.VolumeMount {
		return corev1.VolumeMount{Name: name, MountPath: at, ReadOnly: true}
	}
	ms := []corev1.VolumeMount{
		{Name: claimTemplate, MountPath: mountData},
		ro("identity", mountIdentity), ro("state", mountState), ro("replication", mountReplication), ro("tls", mountTLS),
		ro("admin-ca", mountAdminCA), ro("config", mountConfig),
		{Name: "run", MountPath: mountRun}, {Name: "tmp", MountPath: "/tmp"},
	}
	if spec.HSM != nil {
		ms = append(ms, ro("hsm", mountHSM))
	}
	if m := spec.SMTP; m != nil {
		if m.AuthSecretRef != nil {
			ms = append(ms, ro("smtp-auth", mountSMTPAuth))
		}
		if m.CASecretRef != nil {
			ms = append(ms, ro("smtp-ca", mountSMTPCA))
		}
	}
	return ms
}

// endpoints are the URLs the status shows.
func (in serverInputs) endpoints() *trusteev1.ServerEndpoints {
	n := in.names()
	url := func(svc string) string { return fmt.Sprintf("https://%s:%d", n.ServiceHost(svc), portAPI) }
	return &trusteev1.ServerEndpoints{ReadWrite: url(n.ReadWrite()), Read: url(n.Read())}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
