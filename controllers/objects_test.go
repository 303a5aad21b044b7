package controllers

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/config"
	"trustee.dev/trustee/test/fixtures"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden from the builders")

// Server fixtures: what users write, from the smallest spec to every field.
func minimalServer() *trusteev1.KeyTrusteeServer {
	return fixtures.Server("kts", fixtures.Stored("0f3c3a4e-0000-4000-8000-000000000001", 1))
}

func standaloneServer() *trusteev1.KeyTrusteeServer {
	k := minimalServer()
	k.Spec.HighAvailability.Enabled = ptr.To(false)
	k.Spec.TLS = trusteev1.TLSSpec{SecretName: "kts-tls", MinVersion: trusteev1.TLSVersion13}
	return k
}

func fullServer() *trusteev1.KeyTrusteeServer {
	k := minimalServer()
	size := resource.MustParse("50Gi")
	k.Spec = trusteev1.KeyTrusteeServerSpec{
		Image: "registry.example.com/trustee:1.2.3", ImagePullPolicy: corev1.PullIfNotPresent,
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}},
		PostgreSQL: trusteev1.PostgreSQLSpec{
			Parameters: []trusteev1.PostgreSQLParameter{{Name: "shared_buffers", Value: "256MB"}, {Name: "max_connections", Value: "200"}},
			Resources:  corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")}},
		},
		Storage: trusteev1.StorageSpec{Size: &size, StorageClassName: ptr.To("fast")},
		TLS: trusteev1.TLSSpec{
			IssuerRef: &trusteev1.IssuerReference{Name: "corp-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"},
			DNSNames:  []string{"kts.example.com"}, MinVersion: trusteev1.TLSVersion12, CipherList: "ECDHE+AESGCM:!SHA1",
		},
		HSM: &trusteev1.HSMSpec{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "kts",
			PINSecretRef: trusteev1.SecretKeySelector{Name: "hsm-pin", Key: "pin"}, DataKeyCacheSeconds: ptr.To[int32](30)},
		SMTP: &trusteev1.SMTPSpec{Host: "mail.example.com", Port: 587, Security: trusteev1.SMTPSecurityStartTLS, From: "kts@example.com",
			AuthSecretRef: &trusteev1.LocalSecretReference{Name: "smtp"}, CASecretRef: &trusteev1.SecretKeySelector{Name: "smtp-ca", Key: "ca.crt"},
			ExternalURL: "https://kts.example.com:11371"},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}},
		Bootstrap: &trusteev1.BootstrapSpec{Backup: trusteev1.BackupSource{
			ArchiveSecretRef: trusteev1.SecretKeySelector{Name: "kts-archive", Key: "archive"},
			DecryptionKeyRef: &trusteev1.SecretKeySelector{Name: "backup-secret-key", Key: "secret.asc"}}},
		Scheduling: trusteev1.SchedulingSpec{
			NodeSelector: map[string]string{"kubernetes.io/os": "linux"},
			Tolerations:  []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "keys", Effect: corev1.TaintEffectNoSchedule}},
			TopologyKey:  "topology.kubernetes.io/zone", PriorityClassName: "critical",
		},
		Monitoring: trusteev1.MonitoringSpec{EnablePodMonitor: true, PodMonitorLabels: map[string]string{"release": "prometheus"}},
	}
	return k
}

func inputsFor(k *trusteev1.KeyTrusteeServer) serverInputs {
	return serverInputs{KTS: k, DefaultImage: "trustee:test", OperatorNamespace: "trustee-system",
		OperatorLabels: map[string]string{"app.kubernetes.io/name": "trustee-operator"}, SMTPUser: "mailer"}
}

// serverObjects are every object the builders make for a server, in the
// order the reconciler applies them.
func serverObjects(t *testing.T, in serverInputs) []client.Object {
	t.Helper()
	cm, err := in.configMap()
	if err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{cm}
	if c := in.serverCertificate(); c != nil {
		objs = append(objs, c)
	}
	a, b, c, d := in.adminPKI()
	objs = append(objs, a, b, c, d)
	for _, s := range in.services() {
		objs = append(objs, s)
	}
	objs = append(objs, in.podDisruptionBudget(), in.networkPolicy())
	for _, m := range in.members() {
		objs = append(objs, in.statefulSet(m, cm))
	}
	if in.KTS.Spec.Monitoring.EnablePodMonitor {
		objs = append(objs, in.podMonitor())
	}
	return objs
}

// golden compares objects, as multi-document YAML, with testdata/golden/name.
func golden(t *testing.T, name string, objs []client.Object) {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(b)
	}
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./controllers -run Golden -update to create it)", err)
	}
	if !bytes.Equal(want, buf.Bytes()) {
		t.Errorf("the objects built differ from %s; review the change and run go test ./controllers -run Golden -update\n%s", path, lineDiff(string(want), buf.String()))
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + string(a) + "\n  got:  " + string(b)
		}
	}
	return ""
}

func TestGoldenServerObjects(t *testing.T) {
	for name, k := range map[string]*trusteev1.KeyTrusteeServer{
		"server-minimal.yaml":    minimalServer(),
		"server-standalone.yaml": standaloneServer(),
		"server-full.yaml":       fullServer(),
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, serverObjects(t, inputsFor(k))) })
	}
	// After a switchover to b, while a is fenced.
	switched := inputsFor(minimalServer())
	switched.Active = memberB
	golden(t, "server-switched-to-b.yaml", serverObjects(t, switched))
	switched.FenceFor = memberA
	golden(t, "server-b-fenced-for-a.yaml", serverObjects(t, switched))
}

func TestGoldenBackupObjects(t *testing.T) {
	bs := func(mut func(*trusteev1.BackupSchedule)) *trusteev1.BackupSchedule {
		b := &trusteev1.BackupSchedule{
			TypeMeta:   metav1.TypeMeta{APIVersion: trusteev1.GroupVersion.String(), Kind: "BackupSchedule"},
			ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "keys", UID: "0f3c3a4e-0000-4000-8000-000000000002"},
			Spec: trusteev1.BackupScheduleSpec{
				ServerRef: trusteev1.ServerReference{Name: "kts"}, Schedule: "30 2 * * *", Member: trusteev1.BackupMemberPassive,
				GPGRecipient: &trusteev1.GPGRecipient{Recipient: "backup@example.com",
					ConfigMapKeyRef: &trusteev1.ConfigMapKeySelector{Name: "backup-key", Key: "key.asc"}},
				Roll: ptr.To[int32](7), Destination: trusteev1.BackupDestination{ClaimName: "archives", SubPath: "kts"},
			},
		}
		mut(b)
		return b
	}
	for name, c := range map[string]struct {
		bs  *trusteev1.BackupSchedule
		kts *trusteev1.KeyTrusteeServer
	}{
		"backup-passive-configmap-key.yaml": {bs(func(*trusteev1.BackupSchedule) {}), minimalServer()},
		"backup-active-secret-key.yaml": {bs(func(b *trusteev1.BackupSchedule) {
			b.Spec.Member, b.Spec.TimeZone, b.Spec.Suspend = trusteev1.BackupMemberActive, ptr.To("Europe/Paris"), true
			b.Spec.GPGRecipient = &trusteev1.GPGRecipient{Recipient: "ABCD", SecretKeyRef: &trusteev1.SecretKeySelector{Name: "backup-key", Key: "pub"}}
			b.Spec.Verify = &trusteev1.BackupVerify{DecryptionKeyRef: &trusteev1.SecretKeySelector{Name: "backup-secret-key", Key: "secret.asc"}}
		}), fullServer()},
		"backup-standalone-cleartext.yaml": {bs(func(b *trusteev1.BackupSchedule) {
			b.Spec.GPGRecipient, b.Spec.Cleartext, b.Spec.Roll, b.Spec.Destination.SubPath = nil, true, nil, ""
			b.Spec.Verify = &trusteev1.BackupVerify{}
		}), standaloneServer()},
	} {
		t.Run(name, func(t *testing.T) {
			in := backupInputs{Schedule: c.bs, Server: inputsFor(c.kts)}
			cm, err := in.configMap()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, []client.Object{cm, in.cronJob()})
		})
	}
}

// The rendered keytrustee.conf of each member is a valid configuration
// whose files all live on the pod's mounts.
func TestMemberConfigsAreValid(t *testing.T) {
	for _, k := range []*trusteev1.KeyTrusteeServer{minimalServer(), standaloneServer(), fullServer()} {
		in := inputsFor(k)
		for _, m := range in.members() {
			c := in.memberConfig(m)
			if err := c.Validate(); err != nil {
				t.Errorf("%s %s: %v", k.Name, m, err)
			}
			if want := map[string]string{memberA: config.RoleActive, memberB: config.RolePassive}[m]; c.Role != want {
				t.Errorf("%s: ROLE %q", m, c.Role)
			}
			for _, f := range []string{c.ServerKey, c.Keyring, c.SessionKey, c.DBPasswordFile, c.SSLCertificate, c.SSLPrivateKey, c.AdminCAFile} {
				if !filepath.IsAbs(f) {
					t.Errorf("%s %s: %q is not on a mount", k.Name, m, f)
				}
			}
		}
	}
	if c := inputsFor(standaloneServer()).memberConfig(memberA); c.StandbyName != "" {
		t.Errorf("a standalone server waits for a standby %q", c.StandbyName)
	}
	if c := inputsFor(minimalServer()).memberConfig(memberA); c.StandbyName != standbyName {
		t.Errorf("the active of a pair names standby %q", c.StandbyName)
	}
}
