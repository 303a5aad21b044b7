package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Fixture builders: a minimal valid object, changed by option functions.

type ktsOption func(*KeyTrusteeServer)

func newKTS(name string, opts ...ktsOption) *KeyTrusteeServer {
	k := &KeyTrusteeServer{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "KeyTrusteeServer"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "keys"},
		Spec: KeyTrusteeServerSpec{
			TLS: TLSSpec{IssuerRef: &IssuerReference{Name: "ca"}},
		},
	}
	for _, o := range opts {
		o(k)
	}
	return k
}

func withHA(on bool) ktsOption {
	return func(k *KeyTrusteeServer) { k.Spec.HighAvailability.Enabled = &on }
}

func withStorage(size, class string) ktsOption {
	return func(k *KeyTrusteeServer) {
		q := resource.MustParse(size)
		k.Spec.Storage = StorageSpec{Size: &q, StorageClassName: &class}
	}
}

func withHSM() ktsOption {
	return func(k *KeyTrusteeServer) {
		cache := int32(30)
		k.Spec.HSM = &HSMSpec{
			Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "kts",
			PINSecretRef: SecretKeySelector{Name: "hsm-pin", Key: "pin"}, DataKeyCacheSeconds: &cache,
		}
	}
}

func withSMTP() ktsOption {
	return func(k *KeyTrusteeServer) {
		k.Spec.SMTP = &SMTPSpec{
			Host: "mail.example.com", Port: 587, Security: SMTPSecurityStartTLS, From: "kts@example.com",
			AuthSecretRef: &LocalSecretReference{Name: "smtp"},
			CASecretRef:   &SecretKeySelector{Name: "smtp-ca", Key: "ca.crt"},
			ExternalURL:   "https://kts.example.com:11371",
		}
	}
}

func withScheduling() ktsOption {
	return func(k *KeyTrusteeServer) {
		k.Spec.Scheduling = SchedulingSpec{
			NodeSelector: map[string]string{"disk": "ssd"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "kts", Effect: corev1.TaintEffectNoSchedule}},
			TopologyKey:  "topology.kubernetes.io/zone",
		}
		k.Spec.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
		}
		k.Spec.PostgreSQL = PostgreSQLSpec{
			Parameters: []PostgreSQLParameter{{Name: "shared_buffers", Value: "256MB"}},
			Resources:  corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		}
	}
}

func withStatus() ktsOption {
	return func(k *KeyTrusteeServer) {
		k.Status = KeyTrusteeServerStatus{
			ObservedGeneration: 3,
			Conditions: []metav1.Condition{{
				Type: ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonReconciled,
				ObservedGeneration: 3, LastTransitionTime: metav1.Unix(1_800_000_000, 0),
			}},
			Active: k.Name + "-active-0", Passive: k.Name + "-passive-0",
			Fingerprint: "4096R/4EDC46882386C827E20DEEA2D850ACA33BEDB0D1",
			Endpoints:   &ServerEndpoints{ReadWrite: "https://" + k.Name + "-rw.keys.svc:11371"},
		}
	}
}

// fullKTS sets every optional part, for round trips.
func fullKTS() *KeyTrusteeServer {
	return newKTS("kts", withHA(true), withStorage("20Gi", "fast"), withHSM(), withSMTP(), withScheduling(), withStatus())
}

type orgOption func(*Organization)

func newOrg(name string, opts ...orgOption) *Organization {
	o := &Organization{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "Organization"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "keys"},
		Spec: OrganizationSpec{
			ServerRef:         ServerReference{Name: "kts"},
			Contacts:          []string{"admin@example.com"},
			AuthCodeSecretRef: SecretKeySelector{Name: name + "-auth", Key: "code"},
		},
	}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

func withClients(enable, disable []string) orgOption {
	return func(o *Organization) { o.Spec.Clients = OrganizationClients{Enable: enable, Disable: disable} }
}

type backupOption func(*BackupSchedule)

func newBackup(name string, opts ...backupOption) *BackupSchedule {
	b := &BackupSchedule{
		TypeMeta:   metav1.TypeMeta{APIVersion: GroupVersion.String(), Kind: "BackupSchedule"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "keys"},
		Spec: BackupScheduleSpec{
			ServerRef: ServerReference{Name: "kts"},
			Schedule:  "*/30 * * * *",
			GPGRecipient: &GPGRecipient{
				Recipient:       "4EDC46882386C827E20DEEA2D850ACA33BEDB0D1",
				ConfigMapKeyRef: &ConfigMapKeySelector{Name: "backup-key", Key: "key.asc"},
			},
			Destination: BackupDestination{ClaimName: "backups"},
		},
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

func withRoll(n int32) backupOption {
	return func(b *BackupSchedule) { b.Spec.Roll = &n }
}

func withCleartext() backupOption {
	return func(b *BackupSchedule) { b.Spec.GPGRecipient = nil; b.Spec.Cleartext = true }
}
