package v1alpha1

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"trustee.dev/trustee/test/envtestenv"
)

// TestValidationOnAPIServer installs the generated CRDs in a real
// kube-apiserver and checks that it accepts good specs (filling in the
// defaults), and refuses bad ones, and bad changes, with the rule's message.
func TestValidationOnAPIServer(t *testing.T) {
	env, err := envtestenv.StartShared(envtestenv.Options{
		CRDDirs:     []string{crdDir},
		AddToScheme: []func(*runtime.Scheme) error{AddToScheme},
	})
	if err != nil {
		t.Fatalf("envtestenv: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("envtestenv: %v", err)
		}
	})
	ns := env.Namespace(t)
	c := env.Client

	inNS := func(obj client.Object) client.Object {
		obj.SetNamespace(ns)
		return obj
	}

	t.Run("defaults", func(t *testing.T) {
		k := inNS(newKTS("defaults")).(*KeyTrusteeServer)
		if err := c.Create(t.Context(), k); err != nil {
			t.Fatal(err)
		}
		s := k.Spec
		switch {
		case s.HighAvailability.Enabled == nil || !*s.HighAvailability.Enabled:
			t.Errorf("highAvailability.enabled = %v, want the default true", s.HighAvailability.Enabled)
		case s.Storage.Size == nil || s.Storage.Size.Cmp(resource.MustParse("10Gi")) != 0:
			t.Errorf("storage.size = %v, want the default 10Gi", s.Storage.Size)
		case s.Scheduling.TopologyKey != "kubernetes.io/hostname":
			t.Errorf("scheduling.topologyKey = %q, want the default kubernetes.io/hostname", s.Scheduling.TopologyKey)
		case s.TLS.MinVersion != TLSVersion12:
			t.Errorf("tls.minVersion = %q, want the default %s", s.TLS.MinVersion, TLSVersion12)
		case s.TLS.IssuerRef.Kind != "Issuer" || s.TLS.IssuerRef.Group != "cert-manager.io":
			t.Errorf("tls.issuerRef = %+v, want kind Issuer and group cert-manager.io by default", *s.TLS.IssuerRef)
		}

		b := inNS(newBackup("defaults")).(*BackupSchedule)
		if err := c.Create(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		if b.Spec.Member != BackupMemberPassive {
			t.Errorf("member = %q, want the default %s", b.Spec.Member, BackupMemberPassive)
		}

		m := inNS(newKTS("smtp-defaults", withSMTP())).(*KeyTrusteeServer)
		m.Spec.SMTP.Port, m.Spec.SMTP.Security = 0, ""
		if err := c.Create(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if m.Spec.SMTP.Port != 25 || m.Spec.SMTP.Security != SMTPSecurityStartTLS {
			t.Errorf("smtp port %d, security %q, want the defaults 25 and starttls", m.Spec.SMTP.Port, m.Spec.SMTP.Security)
		}
	})

	fp := "4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"
	cases := []struct {
		name    string
		obj     client.Object
		wantErr string // "" = accepted
	}{
		// KeyTrusteeServer
		{"kts minimal", newKTS("minimal"), ""},
		{"kts everything", newKTS("full", withHA(true), withStorage("20Gi", "fast"), withHSM(), withSMTP(), withScheduling()), ""},
		{"kts standalone", newKTS("standalone", withHA(false)), ""},
		{"kts existing secret", ktsWith("secret", func(k *KeyTrusteeServer) { k.Spec.TLS = TLSSpec{SecretName: "kts-tls"} }), ""},
		{"kts tls 1.3", ktsWith("tls13", func(k *KeyTrusteeServer) { k.Spec.TLS.MinVersion = TLSVersion13 }), ""},
		{"kts cipher list", ktsWith("ciphers", func(k *KeyTrusteeServer) { k.Spec.TLS.CipherList = "ECDHE+AESGCM:!SHA1" }), ""},
		{"kts tls both", ktsWith("tls-both", func(k *KeyTrusteeServer) { k.Spec.TLS.SecretName = "kts-tls" }), "exactly one of issuerRef"},
		{"kts tls neither", ktsWith("tls-neither", func(k *KeyTrusteeServer) { k.Spec.TLS.IssuerRef = nil }), "exactly one of issuerRef"},
		{"kts dnsNames with secret", ktsWith("dns-secret", func(k *KeyTrusteeServer) {
			k.Spec.TLS = TLSSpec{SecretName: "kts-tls", DNSNames: []string{"kts.example.com"}}
		}), "tls.dnsNames adds names"},
		{"kts ciphers with 1.3", ktsWith("ciphers13", func(k *KeyTrusteeServer) {
			k.Spec.TLS.MinVersion, k.Spec.TLS.CipherList = TLSVersion13, "AES256"
		}), "no effect with minVersion tlsv1.3"},
		{"kts tls 1.1", ktsWith("tls11", func(k *KeyTrusteeServer) { k.Spec.TLS.MinVersion = "tlsv1.1" }), `Unsupported value: "tlsv1.1"`},
		{"kts cipher list quote", ktsWith("cipher-quote", func(k *KeyTrusteeServer) { k.Spec.TLS.CipherList = `AES"` }), "spec.tls.cipherList"},
		{"kts long name", newKTS(strings.Repeat("k", 41)), "at most 40 characters"},
		{"kts dotted name", newKTS("kts.example"), "must start with a letter"},
		{"kts hsm relative module", ktsWith("hsm-rel", func(k *KeyTrusteeServer) {
			withHSM()(k)
			k.Spec.HSM.Module = "libsofthsm2.so"
		}), "absolute path"},
		{"kts hsm long label", ktsWith("hsm-label", func(k *KeyTrusteeServer) {
			withHSM()(k)
			k.Spec.HSM.TokenLabel = strings.Repeat("t", 33)
		}), "spec.hsm.tokenLabel"},
		{"kts hsm no pin", ktsWith("hsm-pin", func(k *KeyTrusteeServer) {
			withHSM()(k)
			k.Spec.HSM.PINSecretRef = SecretKeySelector{}
		}), "spec.hsm.pinSecretRef.name"},
		{"kts smtp password in clear", ktsWith("smtp-none", func(k *KeyTrusteeServer) {
			withSMTP()(k)
			k.Spec.SMTP.Security = SMTPSecurityNone
		}), "clear text"},
		{"kts smtp http link", ktsWith("smtp-http", func(k *KeyTrusteeServer) {
			withSMTP()(k)
			k.Spec.SMTP.ExternalURL = "http://kts.example.com"
		}), "https:// URL"},
		{"kts zero storage", ktsWith("size0", func(k *KeyTrusteeServer) { withStorage("0", "fast")(k) }), "larger than zero"},
		{"kts managed pg parameter", ktsWith("pg-port", func(k *KeyTrusteeServer) {
			k.Spec.PostgreSQL.Parameters = []PostgreSQLParameter{{Name: "synchronous_commit", Value: "off"}}
		}), "set by the operator"},
		{"kts bad pg parameter", ktsWith("pg-name", func(k *KeyTrusteeServer) {
			k.Spec.PostgreSQL.Parameters = []PostgreSQLParameter{{Name: "work_mem\nport", Value: "1"}}
		}), "spec.postgresql.parameters[0].name"},
		{"kts bad topology key", ktsWith("topology", func(k *KeyTrusteeServer) { k.Spec.Scheduling.TopologyKey = "not a key" }), "spec.scheduling.topologyKey"},
		{"kts active member b", ktsWith("active-b", func(k *KeyTrusteeServer) { k.Spec.ActiveMember = "b" }), ""},
		{"kts active member unknown", ktsWith("active-c", func(k *KeyTrusteeServer) { k.Spec.ActiveMember = "c" }), `Unsupported value: "c"`},
		{"kts bootstrap", ktsWith("bootstrap", withBootstrap), ""},
		{"kts bootstrap without archive key", ktsWith("bootstrap-nokey", func(k *KeyTrusteeServer) {
			withBootstrap(k)
			k.Spec.Bootstrap.Backup.ArchiveSecretRef.Key = ""
		}), "spec.bootstrap.backup.archiveSecretRef.key"},

		// Organization
		{"org minimal", newOrg("acme"), ""},
		{"org clients", newOrg("clients", withClients([]string{fp}, []string{strings.Repeat("A", 40)})), ""},
		{"org dotted name with organizationName", orgWith("acme.corp", func(o *Organization) { o.Spec.OrganizationName = "acme_corp" }), ""},
		{"org dotted name", newOrg("acme.corp"), "set spec.organizationName"},
		{"org client in both lists", newOrg("both", withClients([]string{fp}, []string{fp})), "in both clients.enable and clients.disable"},
		{"org lower-case fingerprint", newOrg("lower", withClients([]string{strings.ToLower(fp)}, nil)), "spec.clients.enable[0]"},
		{"org no contacts", orgWith("nocontacts", func(o *Organization) { o.Spec.Contacts = nil }), "spec.contacts"},
		{"org bad contact", orgWith("badcontact", func(o *Organization) { o.Spec.Contacts = []string{"admin at example.com"} }), "spec.contacts[0]"},
		{"org bad name", orgWith("badname", func(o *Organization) { o.Spec.OrganizationName = "-acme" }), "spec.organizationName"},

		// BackupSchedule
		{"backup minimal", newBackup("minimal"), ""},
		{"backup cleartext", newBackup("cleartext", withCleartext()), ""},
		{"backup every", backupWith("every", func(b *BackupSchedule) { b.Spec.Schedule = "@every 6h" }), ""},
		{"backup roll 1", newBackup("roll1", withRoll(1)), ""},
		{"backup secret key", backupWith("secretkey", func(b *BackupSchedule) {
			b.Spec.GPGRecipient.ConfigMapKeyRef = nil
			b.Spec.GPGRecipient.SecretKeyRef = &SecretKeySelector{Name: "backup-key", Key: "key.asc"}
		}), ""},
		{"backup bad schedule", backupWith("schedule", func(b *BackupSchedule) { b.Spec.Schedule = "61 * * * *" }), "schedule must be a cron expression"},
		{"backup time zone in schedule", backupWith("tz", func(b *BackupSchedule) { b.Spec.Schedule = "CRON_TZ=UTC 0 0 * * *" }), "schedule must be a cron expression"},
		{"backup roll 0", newBackup("roll0", withRoll(0)), "roll must be at least 1"},
		{"backup unencrypted by default", backupWith("norecipient", func(b *BackupSchedule) { b.Spec.GPGRecipient = nil }), "backups hold every key"},
		{"backup recipient and cleartext", backupWith("both", func(b *BackupSchedule) { b.Spec.Cleartext = true }), "contradict each other"},
		{"backup key in two places", backupWith("twokeys", func(b *BackupSchedule) {
			b.Spec.GPGRecipient.SecretKeyRef = &SecretKeySelector{Name: "backup-key", Key: "key.asc"}
		}), "exactly one of secretKeyRef or configMapKeyRef"},
		{"backup absolute subPath", backupWith("abs", func(b *BackupSchedule) { b.Spec.Destination.SubPath = "/kts" }), "relative"},
		{"backup subPath up", backupWith("up", func(b *BackupSchedule) { b.Spec.Destination.SubPath = "kts/../../x" }), "must not contain '..'"},
		{"backup member", backupWith("member", func(b *BackupSchedule) { b.Spec.Member = "Both" }), `Unsupported value: "Both"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Create(t.Context(), inNS(tc.obj))
			checkAdmission(t, err, tc.wantErr)
		})
	}

	updates := []struct {
		name    string
		obj     client.Object
		change  func(client.Object)
		wantErr string
	}{
		{"kts storage grows", newKTS("grow", withStorage("10Gi", "fast")), func(o client.Object) {
			q := resource.MustParse("20Gi")
			o.(*KeyTrusteeServer).Spec.Storage.Size = &q
		}, ""},
		{"kts storage shrinks before any volume is recorded", newKTS("shrink", withStorage("10Gi", "fast")), func(o client.Object) {
			q := resource.MustParse("5Gi")
			o.(*KeyTrusteeServer).Spec.Storage.Size = &q
		}, ""},
		{"kts storage class changes", newKTS("class", withStorage("10Gi", "fast")), func(o client.Object) {
			*o.(*KeyTrusteeServer).Spec.Storage.StorageClassName = "slow"
		}, "storageClassName cannot change"},
		{"kts high availability on", newKTS("haon", withHA(false)), func(o client.Object) {
			withHA(true)(o.(*KeyTrusteeServer))
		}, ""},
		{"kts hsm added", newKTS("hsmadd"), func(o client.Object) { withHSM()(o.(*KeyTrusteeServer)) }, ""},
		{"kts hsm removed", newKTS("hsmremove", withHSM()), func(o client.Object) { o.(*KeyTrusteeServer).Spec.HSM = nil }, "hsm cannot be removed"},
		{"kts hsm token changes", newKTS("hsmtoken", withHSM()), func(o client.Object) {
			o.(*KeyTrusteeServer).Spec.HSM.TokenLabel = "other"
		}, "tokenLabel cannot change"},
		{"kts switchover asked", newKTS("switch"), func(o client.Object) { o.(*KeyTrusteeServer).Spec.ActiveMember = "b" }, ""},
		{"kts bootstrap added", newKTS("bootadd"), func(o client.Object) { withBootstrap(o.(*KeyTrusteeServer)) }, "bootstrap is read when the server is created"},
		{"kts bootstrap changed", ktsWith("bootchange", withBootstrap), func(o client.Object) {
			o.(*KeyTrusteeServer).Spec.Bootstrap.Backup.ArchiveSecretRef.Name = "other"
		}, "bootstrap is read when the server is created"},
		{"kts bootstrap removed", ktsWith("bootremove", withBootstrap), func(o client.Object) { o.(*KeyTrusteeServer).Spec.Bootstrap = nil },
			"bootstrap is read when the server is created"},
		{"org contacts change", newOrg("contacts"), func(o client.Object) {
			o.(*Organization).Spec.Contacts = []string{"a@example.com", "b@example.com"}
		}, ""},
		{"org server changes", newOrg("server"), func(o client.Object) {
			o.(*Organization).Spec.ServerRef.Name = "other"
		}, "serverRef cannot change"},
		{"org renamed", orgWith("renamed", func(o *Organization) { o.Spec.OrganizationName = "acme" }), func(o client.Object) {
			o.(*Organization).Spec.OrganizationName = "acme2"
		}, "organizationName cannot change"},
		{"org name added", newOrg("nameadded"), func(o client.Object) {
			o.(*Organization).Spec.OrganizationName = "nameadded"
		}, "organizationName cannot be added or removed"},
		{"backup schedule changes", newBackup("reschedule"), func(o client.Object) {
			o.(*BackupSchedule).Spec.Schedule = "@daily"
		}, ""},
	}
	// spec.storage.size against status.storageSize, the size the claims
	// have (which the operator records): a growth not yet applied can be
	// reverted, going below what the claims have cannot.
	sizes := []struct {
		name                   string
		spec, recorded, change string
		wantErr                string
	}{
		{"kts storage grows past the claims", "10Gi", "10Gi", "20Gi", ""},
		{"kts storage growth reverted before it is applied", "20Gi", "10Gi", "10Gi", ""},
		{"kts storage reverted in other units", "20Gi", "10Gi", "10240Mi", ""},
		{"kts storage below the claims", "20Gi", "10Gi", "5Gi", "spec.storage.size cannot go below 10Gi"},
		{"kts storage growth applied cannot be reverted", "20Gi", "20Gi", "10Gi", "spec.storage.size cannot go below 20Gi"},
		{"kts storage unchanged while claims are larger", "10Gi", "30Gi", "", ""},
	}
	for i, tc := range sizes {
		t.Run(tc.name, func(t *testing.T) {
			k := inNS(newKTS(fmt.Sprintf("size%d", i), withStorage(tc.spec, "fast"))).(*KeyTrusteeServer)
			if err := c.Create(t.Context(), k); err != nil {
				t.Fatal(err)
			}
			recorded := resource.MustParse(tc.recorded)
			k.Status.StorageSize = &recorded
			if err := c.Status().Update(t.Context(), k); err != nil {
				t.Fatalf("recording status.storageSize %s: %v", tc.recorded, err)
			}
			if tc.change == "" {
				k.Spec.Image = "trustee:other" // another change of the spec
			} else {
				q := resource.MustParse(tc.change)
				k.Spec.Storage.Size = &q
			}
			checkAdmission(t, c.Update(t.Context(), k), tc.wantErr)
		})
	}

	for _, tc := range updates {
		t.Run(tc.name, func(t *testing.T) {
			obj := inNS(tc.obj)
			if err := c.Create(t.Context(), obj); err != nil {
				t.Fatal(err)
			}
			tc.change(obj)
			checkAdmission(t, c.Update(t.Context(), obj), tc.wantErr)
		})
	}
}

// checkAdmission checks the API server's answer: accepted when wantErr is
// empty, else refused as invalid with a message containing wantErr.
func checkAdmission(t *testing.T, err error, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("refused: %v", err)
	case wantErr != "" && err == nil:
		t.Errorf("accepted, want refused with %q", wantErr)
	case wantErr != "" && !apierrors.IsInvalid(err):
		t.Errorf("refused, but not as invalid: %v", err)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Errorf("refused with %v\nwant a message containing %q", err, wantErr)
	case err != nil:
		t.Logf("refused: %v", err)
	}
}

func ktsWith(name string, change func(*KeyTrusteeServer)) *KeyTrusteeServer {
	return newKTS(name, change)
}

func orgWith(name string, change func(*Organization)) *Organization {
	return newOrg(name, change)
}

func backupWith(name string, change func(*BackupSchedule)) *BackupSchedule {
	return newBackup(name, change)
}

func withBootstrap(k *KeyTrusteeServer) {
	k.Spec.Bootstrap = &BootstrapSpec{Backup: BackupSource{
		ArchiveSecretRef: SecretKeySelector{Name: "kts-archive", Key: "archive"},
		DecryptionKeyRef: &SecretKeySelector{Name: "backup-key", Key: "secret.asc"}}}
}
