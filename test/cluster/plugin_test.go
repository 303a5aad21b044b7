package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/harness"
)

// kubectlTrustee runs `kubectl trustee ARGS` as a user would: the real
// kubectl finds the plugin, a link named kubectl-trustee to kts, on PATH.
// It returns standard output and standard error, and whether it exited 0.
func kubectlTrustee(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, ok bool) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(kts, filepath.Join(dir, "kubectl-trustee")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("kubectl", append([]string{"trustee"}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatalf("kubectl trustee %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("kubectl trustee %s:\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), errOut.String(), err == nil
}

// refused runs `kubectl trustee ARGS`, which must fail saying want.
func refused(t *testing.T, args []string, want string) {
	t.Helper()
	out, errOut, ok := kubectlTrustee(t, cluster.Kubeconfig(), args...)
	if ok || !strings.Contains(errOut, want) {
		t.Fatalf("kubectl trustee %s: exit 0 %v, stdout %q, stderr %q; want it refused with %q", strings.Join(args, " "), ok, out, errOut, want)
	}
}

// jobsIn are the Jobs of namespace ns carrying label.
func jobsIn(t *testing.T, ns string, label string) []batchv1.Job {
	t.Helper()
	var jobs batchv1.JobList
	if err := cluster.Client.List(background(), &jobs, client.InNamespace(ns), client.HasLabels{label}); err != nil {
		t.Fatal(err)
	}
	return jobs.Items
}

// TestKubectlTrustee: the plugin through the real kubectl against a server,
// a BackupSchedule and an Organization the operator runs: the status it
// prints is what the operator wrote; a switchover of a pair that is not in
// sync, of a member that is no member or already the active, a backup of
// a schedule that does not exist, a drill without an archive are refused,
// changing nothing; a backup and a drill make their Jobs from the
// schedule's CronJob.
func TestKubectlTrustee(t *testing.T) {
	t.Parallel()
	showOperatorLogs(t)
	sharedOperator(t)
	ns := cluster.Namespace(t)
	apply(t, cluster, ns, serverYAML("kts", corev1.LabelHostname)+`---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: archives
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: trustee.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: nightly
spec:
  serverRef:
    name: kts
  schedule: "30 2 * * *"
  suspend: true
  cleartext: true
  destination:
    claimName: archives
    subPath: kts
---
apiVersion: v1
kind: Secret
metadata:
  name: acme-auth
stringData:
  code: a-long-random-auth-code
---
apiVersion: trustee.dev/v1alpha1
kind: Organization
metadata:
  name: acme
spec:
  serverRef:
    name: kts
  contacts: [security@acme.example]
  authCodeSecretRef:
    name: acme-auth
    key: code
`)
	condition(t, cluster, ns, "kts", trusteev1.ConditionActiveReady, metav1.ConditionTrue, "is ready", 2*time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionPassiveReady, metav1.ConditionTrue, "is ready", time.Minute)
	condition(t, cluster, ns, "kts", trusteev1.ConditionReplicating, metav1.ConditionFalse, "did not report on its standby", time.Minute)
	var cj *batchv1.CronJob
	harness.Eventually(t, time.Minute, "the schedule's CronJob", func() (bool, string) {
		cj = &batchv1.CronJob{}
		err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "nightly-backup"}, cj)
		return err == nil, fmt.Sprint(err)
	})

	t.Run("status", func(t *testing.T) {
		// The kubeconfig's context names the namespace: no -n needed.
		kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
		b, err := os.ReadFile(cluster.Kubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cluster.Kubectl(t, "config", "set-context", "--current", "--namespace", ns, "--kubeconfig", kubeconfig)
		out, _, ok := kubectlTrustee(t, kubeconfig, "status", "kts")
		if !ok {
			t.Fatal("kubectl trustee status failed")
		}
		k := &trusteev1.KeyTrusteeServer{}
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil {
			t.Fatal(err)
		}
		a, p := member(t, cluster, ns, "kts-a-0"), member(t, cluster, ns, "kts-b-0")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^KeyTrusteeServer ` + ns + `/kts$`),
			regexp.MustCompile(`(?m)^  a +active +kts-a-0 +` + a.Spec.NodeName + ` +True +- +trustee:test$`),
			regexp.MustCompile(`(?m)^  b +passive +kts-b-0 +` + p.Spec.NodeName + ` +True +False \(NotStreaming\) +trustee:test$`),
			regexp.MustCompile(`(?m)^  Replicating False \(NotStreaming\): ` + regexp.QuoteMeta(condOf(k, trusteev1.ConditionReplicating).Message) + `$`),
			regexp.MustCompile(`(?m)^Fingerprint: +` + regexp.QuoteMeta(k.Status.Fingerprint) + `$`),
			regexp.MustCompile(`(?m)^  nightly +\S+.* +never +-$`),
			regexp.MustCompile(`(?m)^  acme +acme +\S+`),
		} {
			if !want.MatchString(out) {
				t.Errorf("status lacks %s", want)
			}
		}
		if k.Status.Fingerprint == "" {
			t.Errorf("the operator reported no fingerprint")
		}
		_, errOut, ok := kubectlTrustee(t, kubeconfig, "status", "nope")
		if ok || !strings.Contains(errOut, "KeyTrusteeServer nope not found in namespace "+ns+" (it has: kts)") {
			t.Errorf("status of a server that does not exist: %q", errOut)
		}
	})

	t.Run("switchover refused", func(t *testing.T) {
		refused(t, []string{"switchover", "kts", "-n", ns}, "a switchover needs both members ready and the passive in sync, and Replicating is False (NotStreaming)")
		refused(t, []string{"switchover", "kts", "-n", ns, "--to", "kts-b-0"}, `--to "kts-b-0": a member is a or b`)
		refused(t, []string{"switchover", "kts", "-n", ns, "--to", "a"}, "member a (kts-a-0) is already the active of kts: nothing changed")
		refused(t, []string{"switchover", "nope", "-n", ns}, "KeyTrusteeServer nope not found")
		apply(t, cluster, ns, `apiVersion: trustee.dev/v1alpha1
kind: KeyTrusteeServer
metadata:
  name: solo
spec:
  highAvailability:
    enabled: false
  tls:
    issuerRef:
      name: selfsigned
`)
		refused(t, []string{"switchover", "solo", "-n", ns, "--to", "b"}, "high availability is off for solo (spec.highAvailability.enabled): there is no passive to switch to")
		solo := &trusteev1.KeyTrusteeServer{}
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "solo"}, solo); err != nil || solo.Spec.ActiveMember != "" {
			t.Errorf("a refused switchover changed solo: %q %v", solo.Spec.ActiveMember, err)
		}
		k := &trusteev1.KeyTrusteeServer{}
		if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "kts"}, k); err != nil {
			t.Fatal(err)
		}
		if k.Spec.ActiveMember != "" || k.Generation != 1 {
			t.Errorf("a refused switchover changed the server: activeMember %q, generation %d", k.Spec.ActiveMember, k.Generation)
		}
	})

	t.Run("drill", func(t *testing.T) {
		refused(t, []string{"drill", "nightly", "-n", ns}, "BackupSchedule nightly has no last archive")
		refused(t, []string{"drill", "nightly", "../../etc/passwd", "-n", ns}, `archive "../../etc/passwd": give the file name`)
		refused(t, []string{"drill", "weekly", "-n", ns}, "BackupSchedule weekly not found in namespace "+ns+" (it has: nightly)")
		if jobs := jobsIn(t, ns, "trustee.dev/restore-drill"); len(jobs) != 0 {
			t.Fatalf("refused drills made Jobs: %v", jobs)
		}
		// What a backup that succeeded records (kwok runs no kts backup to
		// write it): the drill takes it.
		const archive = "kts_bak_kts-b-0_2026-12-07_02-30-00.tar"
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"lastArchive":"`+archive+`"}}`))
		if err := cluster.Client.Status().Patch(background(), &trusteev1.BackupSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nightly"}}, patch); err != nil {
			t.Fatal(err)
		}
		out, _, ok := kubectlTrustee(t, cluster.Kubeconfig(), "drill", "nightly", "-n", ns, "--wait", "--timeout", "2m")
		if !ok || !strings.Contains(out, "a restore drill of "+archive+" (BackupSchedule nightly)") || !strings.Contains(out, "the restore drill passed") {
			t.Fatalf("drill: %s", out)
		}
		jobs := jobsIn(t, ns, "trustee.dev/restore-drill")
		if len(jobs) != 1 || !strings.Contains(out, "job.batch/"+jobs[0].Name+" created") {
			t.Fatalf("drill Jobs: %v", jobs)
		}
		j := jobs[0]
		pod, tmpl := j.Spec.Template.Spec, cj.Spec.JobTemplate.Spec.Template.Spec
		if c := pod.Containers[0]; len(pod.Containers) != 1 || !slices.Equal(c.Command, []string{"kts"}) ||
			!slices.Equal(c.Args, []string{"backup", "verify", "/backup/kts/" + archive}) || c.Image != tmpl.Containers[0].Image {
			t.Errorf("the drill runs %+v", pod.Containers)
		}
		if !sameYAML(t, pod.Volumes, tmpl.Volumes) || !sameYAML(t, pod.InitContainers, tmpl.InitContainers) || !sameYAML(t, pod.SecurityContext, tmpl.SecurityContext) {
			t.Errorf("the drill's pod is not the CronJob's:\n%s", toYAML(t, pod))
		}
		if _, ok := j.Labels["trustee.dev/backup-schedule"]; ok || len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Kind != "BackupSchedule" {
			t.Errorf("drill Job %+v", j.ObjectMeta)
		}
		refused(t, []string{"drill", "nightly", "-n", ns, "--timeout", "0", "--wait"}, "--timeout 0s: give a positive duration")

		// An archive written for another key: the drill mounts the Secret
		// key named, that key alone, in its container alone.
		refused(t, []string{"drill", "nightly", "-n", ns, "--decryption-key", "old-backup-key/secret.asc"},
			"--decryption-key: Secret old-backup-key not found in namespace "+ns+": nothing created")
		apply(t, cluster, ns, `apiVersion: v1
kind: Secret
metadata:
  name: old-backup-key
stringData:
  secret.asc: what the test's Secret holds in place of an armored key
`)
		refused(t, []string{"drill", "nightly", "-n", ns, "--decryption-key", "old-backup-key/2025.asc"}, `--decryption-key: Secret old-backup-key has no key "2025.asc": nothing created`)
		refused(t, []string{"drill", "nightly", "-n", ns, "--decryption-key", "old-backup-key"}, `--decryption-key "old-backup-key": give SECRET/KEY`)
		if jobs := jobsIn(t, ns, "trustee.dev/restore-drill"); len(jobs) != 1 {
			t.Fatalf("refused drills made Jobs: %v", jobs)
		}
		out, _, ok = kubectlTrustee(t, cluster.Kubeconfig(), "drill", "nightly", "-n", ns, "--decryption-key", "old-backup-key/secret.asc")
		if !ok || !strings.Contains(out, "its verdict: kubectl logs -n "+ns+" job/nightly-drill-") {
			t.Fatalf("drill: %s", out)
		}
		var keyed *batchv1.Job
		for _, j := range jobsIn(t, ns, "trustee.dev/restore-drill") {
			if j.Name != jobs[0].Name {
				keyed = &j
			}
		}
		if keyed == nil {
			t.Fatal("no second drill Job")
		}
		c := keyed.Spec.Template.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{"backup", "verify", "/backup/kts/" + archive, "--gpg-keyring", "/etc/kts/drill-key/secret.asc"}) {
			t.Errorf("the drill runs %v", c.Args)
		}
		v := keyed.Spec.Template.Spec.Volumes
		if last := v[len(v)-1]; last.Secret == nil || last.Secret.SecretName != "old-backup-key" || len(last.Secret.Items) != 1 || last.Secret.Items[0].Key != "secret.asc" {
			t.Errorf("the key's volume: %+v", last)
		}
	})

	t.Run("backup", func(t *testing.T) {
		refused(t, []string{"backup", "weekly", "-n", ns}, "BackupSchedule weekly not found in namespace "+ns+" (it has: nightly)")
		if jobs := jobsIn(t, ns, "trustee.dev/backup-schedule"); len(jobs) != 0 {
			t.Fatalf("Jobs before the backup: %v", jobs)
		}
		out, _, ok := kubectlTrustee(t, cluster.Kubeconfig(), "backup", "nightly", "-n", ns, "--wait", "--timeout", "2m")
		if !ok || !strings.Contains(out, "a backup of BackupSchedule nightly") || !strings.Contains(out, "succeeded; its pod left no archive name") {
			t.Fatalf("backup: %s", out)
		}
		jobs := jobsIn(t, ns, "trustee.dev/backup-schedule")
		if len(jobs) != 1 || !strings.HasPrefix(jobs[0].Name, "nightly-backup-manual-") || !strings.Contains(out, "job.batch/"+jobs[0].Name+" created") {
			t.Fatalf("backup Jobs: %v", jobs)
		}
		j := jobs[0]
		if !metav1.IsControlledBy(&j, cj) || j.Annotations["cronjob.kubernetes.io/instantiate"] != "manual" {
			t.Errorf("backup Job %+v", j.ObjectMeta)
		}
		if !sameYAML(t, j.Spec.Template.Spec, cj.Spec.JobTemplate.Spec.Template.Spec) {
			t.Errorf("the backup's pod is not the CronJob's:\n%s", toYAML(t, j.Spec.Template.Spec))
		}
		// The schedule's status reports it, as it does the CronJob's own.
		harness.Eventually(t, time.Minute, "the schedule reports the backup", func() (bool, string) {
			bs := &trusteev1.BackupSchedule{}
			if err := cluster.Client.Get(background(), client.ObjectKey{Namespace: ns, Name: "nightly"}, bs); err != nil {
				return false, err.Error()
			}
			c := condOfSchedule(bs, trusteev1.ConditionLastBackupSucceeded)
			return c != nil && strings.Contains(c.Message, j.Name), fmt.Sprintf("%+v", bs.Status)
		})
	})

	t.Run("with the Role docs/OPERATOR.md gives", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "docs", "OPERATOR.md"))
		if err != nil {
			t.Fatal(err)
		}
		_, section, _ := strings.Cut(string(b), "\n## kubectl trustee\n")
		_, role, _ := strings.Cut(section, "```yaml\n")
		role, _, _ = strings.Cut(role, "```")
		if !strings.Contains(role, "kind: Role") {
			t.Fatalf("docs/OPERATOR.md has no Role in its kubectl trustee section")
		}
		role = strings.ReplaceAll(role, "resourceNames: [backup-secret-key]", "resourceNames: [old-backup-key]")
		apply(t, cluster, ns, role+`---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kubectl-trustee
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kubectl-trustee
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: sre
`)
		_, kubeconfig := cluster.AddUser(t, "sre")
		for _, args := range [][]string{
			{"status", "kts"},
			{"drill", "nightly", "kts_bak_kts-b-0_2026-12-06_02-30-00.tar", "--decryption-key", "old-backup-key/secret.asc", "--wait", "--timeout", "2m"},
			{"backup", "nightly", "--wait", "--timeout", "2m"},
		} {
			if _, errOut, ok := kubectlTrustee(t, kubeconfig, append(args, "-n", ns)...); !ok {
				t.Errorf("kubectl trustee %s as sre: %s", strings.Join(args, " "), errOut)
			}
		}
		// What the Role does not grant is refused by the API server.
		if _, errOut, ok := kubectlTrustee(t, kubeconfig, "drill", "nightly", "kts_bak_kts-b-0_2026-12-06_02-30-00.tar", "--decryption-key", "acme-auth/code", "-n", ns); ok || !strings.Contains(errOut, "forbidden") {
			t.Errorf("reading another Secret: %s", errOut)
		}
	})
}

func condOf(k *trusteev1.KeyTrusteeServer, typ string) metav1.Condition {
	for _, c := range k.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func condOfSchedule(bs *trusteev1.BackupSchedule, typ string) *metav1.Condition {
	for i, c := range bs.Status.Conditions {
		if c.Type == typ {
			return &bs.Status.Conditions[i]
		}
	}
	return nil
}

func toYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameYAML compares what the API server returned for two objects'
// fields (defaults filled in alike).
func sameYAML(t *testing.T, a, b any) bool {
	t.Helper()
	return toYAML(t, a) == toYAML(t, b)
}
