package operator

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	hist "trustee.dev/trustee/test/history"
	"trustee.dev/trustee/test/memberpods"
)

// TestBootstrapFromBackup makes a pair, fills it, backs it up encrypted to
// a key made with GnuPG, and starts a new KeyTrusteeServer in another
// namespace from that archive and key, each in a Secret: the new pair has
// the old one's identity (its fingerprint), organizations, clients and
// deposits, which the old client reads from it.
func TestBootstrapFromBackup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	// The pair backed up.
	_, root, a, _, dir := pairWithClient(t, ctx, env.Namespace(t))
	kept := registered{dir: dir}
	put(t, kept, "disk-1", "key of disk 1")
	put(t, kept, "disk-2", "key of disk 2")
	fingerprint := fingerprintOf(t, a)

	pub, sec := gpgKey(t, root)
	out := filepath.Join(root, "archives")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	archive := strings.TrimSpace(kts(t, "backup", "--confdir", a.State, "--gpg-recipient", "restore@example.com", "--gpg-keyring", pub, "--output", out, "-q"))
	put(t, kept, "after-backup", "not in the archive")

	// A new server from it, elsewhere.
	ns2 := env.Namespace(t)
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	create(t, ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "from-backup", Namespace: ns2}, Data: map[string][]byte{"archive": data}})
	create(t, ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "backup-key", Namespace: ns2}, Data: map[string][]byte{"key.asc": sec}})
	restored := newServer(t, ctx, ns2, func(k *trusteev1.KeyTrusteeServer) {
		k.Spec.Bootstrap = &trusteev1.BootstrapSpec{Backup: trusteev1.BackupSource{
			ArchiveSecretRef: trusteev1.SecretKeySelector{Name: "from-backup", Key: "archive"},
			DecryptionKeyRef: &trusteev1.SecretKeySelector{Name: "backup-key", Key: "key.asc"},
		}}
	})
	identity := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns2, Name: "kts-identity"}, identity); err != nil {
		t.Fatal(err)
	}
	if from := string(identity.Data["bootstrapped-from"]); !strings.Contains(from, "the backup of") {
		t.Fatalf("the identity Secret says it came from %q", from)
	}
	a2, b2 := runPair(t, ctx, ns2, root+"/restored", restored)
	waitServer(t, ctx, restored, trusteev1.ConditionReady, metav1.ConditionTrue, "")
	if got := fingerprintOf(t, a2); got != fingerprint {
		t.Fatalf("the new server's fingerprint is %s; the backed-up one's %s", got, fingerprint)
	}
	got := &trusteev1.KeyTrusteeServer{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(restored), got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Fingerprint != fingerprint {
		t.Fatalf("status.fingerprint %s, want %s", got.Status.Fingerprint, fingerprint)
	}
	if orgs := kts(t, "org", "list", "--confdir", a2.State); !strings.Contains(orgs, `"acme"`) {
		t.Fatalf("the new server's organizations:\n%s", orgs)
	}
	// The old client, pointed at the new pair, reads its deposits from it
	// — from the passive alone too — and not the one made after the backup.
	for _, m := range []*memberpods.Member{a2, b2} {
		moved := movedClient(t, dir, filepath.Join(root, "clients", "moved-"+m.Name), a2.CAFile(), m.URL())
		if v := get(t, moved, "disk-2", false); v != "key of disk 2" {
			t.Fatalf("member %s reads disk-2 as %q", m.Name, v)
		}
		get(t, moved, "after-backup", true)
	}
	put(t, movedClient(t, dir, filepath.Join(root, "clients", "writer"), a2.CAFile(), a2.URL(), b2.URL()), "after-restore", "new")
}

// movedClient is a copy of the client in from that uses servers, whose
// certificates the CA in caFile signs.
func movedClient(t *testing.T, from, to, caFile string, servers ...string) registered {
	t.Helper()
	dir := hist.ClientWithServers(t, from, to, servers...)
	file := filepath.Join(dir, "client.json")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["ca_file"] = caFile
	if raw, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return registered{dir: dir}
}

// gpgKey makes an encryption key with GnuPG, as a backup's recipient
// does, and returns the file of its public key and its secret key.
func gpgKey(t *testing.T, root string) (pubFile string, secret []byte) {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	gpg := func(args ...string) []byte {
		cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %v: %v", args, err)
		}
		return out
	}
	gpg("--quick-gen-key", "Restore Drill <restore@example.com>", "default", "default", "never")
	pubFile = filepath.Join(root, "recipient.asc")
	if err := os.WriteFile(pubFile, gpg("--armor", "--export", "restore@example.com"), 0o600); err != nil {
		t.Fatal(err)
	}
	return pubFile, gpg("--armor", "--export-secret-keys", "restore@example.com")
}
