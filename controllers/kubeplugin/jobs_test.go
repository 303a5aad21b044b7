package kubeplugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

// operatorCronJob is the CronJob of a golden file of controllers/ (what
// the operator renders for a BackupSchedule), as the cluster would hold
// it.
func operatorCronJob(t *testing.T, golden string) *batchv1.CronJob {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "golden", golden))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		if !strings.Contains(doc, "\nkind: CronJob\n") {
			continue
		}
		cj := &batchv1.CronJob{}
		if err := yaml.UnmarshalStrict([]byte(doc), cj); err != nil {
			t.Fatal(err)
		}
		cj.UID = "cronjob-uid"
		return cj
	}
	t.Fatalf("%s holds no CronJob", golden)
	return nil
}

func schedule(name, lastArchive string) *trusteev1.BackupSchedule {
	return &trusteev1.BackupSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: "schedule-uid"},
		Status:     trusteev1.BackupScheduleStatus{LastArchive: lastArchive},
	}
}

func finished(name string, typ batchv1.JobConditionType) batchv1.Job {
	j := batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if typ != "" {
		j.Status.Conditions = []batchv1.JobCondition{{Type: typ, Status: corev1.ConditionTrue}}
	}
	return j
}

func TestBackupJob(t *testing.T) {
	for _, tc := range []struct {
		name    string
		golden  string
		jobs    []batchv1.Job
		wantErr string
	}{
		{name: "first", golden: "backup-passive-configmap-key.yaml"},
		{name: "after finished ones", golden: "backup-active-secret-key.yaml",
			jobs: []batchv1.Job{finished("done", batchv1.JobComplete), finished("failed", batchv1.JobFailed)}},
		{name: "one running", golden: "backup-standalone-cleartext.yaml",
			jobs:    []batchv1.Job{finished("done", batchv1.JobComplete), finished("nightly-backup-29000000", "")},
			wantErr: "the backup Job nightly-backup-29000000 of CronJob nightly-backup is still running: nothing created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cj := operatorCronJob(t, tc.golden)
			job, err := backupJob(cj, tc.jobs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || job != nil {
					t.Fatalf("got %v, %v; want the error %q", job, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if job.GenerateName != cj.Name+"-manual-" || job.Namespace != cj.Namespace || job.Name != "" {
				t.Errorf("name %q/%q%q", job.Namespace, job.GenerateName, job.Name)
			}
			if !metav1.IsControlledBy(job, cj) || len(job.OwnerReferences) != 1 || job.OwnerReferences[0].Kind != "CronJob" {
				t.Errorf("owners %+v", job.OwnerReferences)
			}
			if job.Annotations[annotationInstantiate] != "manual" {
				t.Errorf("annotations %v", job.Annotations)
			}
			if job.Labels[labelBackup] != "nightly" {
				t.Errorf("labels %v: the schedule's status reports Jobs by %s", job.Labels, labelBackup)
			}
			want := cj.Spec.JobTemplate.Spec.DeepCopy()
			if !equalYAML(t, job.Spec, *want) {
				t.Errorf("the Job's spec is not the CronJob's template")
			}
		})
	}
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(x) == string(y)
}

func TestDrillJob(t *testing.T) {
	for _, tc := range []struct {
		name, golden, lastArchive, archive string
		key                                *trusteev1.SecretKeySelector
		wantArgs                           []string
		wantErr                            string
	}{
		{name: "encrypted, the key given", golden: "backup-passive-configmap-key.yaml", lastArchive: "a.tar.gpg",
			key:      &trusteev1.SecretKeySelector{Name: "backup-secret-key", Key: "secret.asc"},
			wantArgs: []string{"backup", "verify", "/backup/kts/a.tar.gpg", "--gpg-keyring", "/etc/kts/drill-key/secret.asc"}},
		{name: "the key given over spec.verify's", golden: "backup-active-secret-key.yaml", lastArchive: "a.tar.gpg",
			key:      &trusteev1.SecretKeySelector{Name: "old-key", Key: "2025.asc"},
			wantArgs: []string{"backup", "verify", "/backup/kts/a.tar.gpg", "--gpg-keyring", "/etc/kts/drill-key/2025.asc"}},
		{name: "last archive, with spec.verify's key", golden: "backup-active-secret-key.yaml", lastArchive: "kts_bak_kts-a-0_2026-12-07_02-30-00.tar.gpg",
			wantArgs: []string{"backup", "verify", "/backup/kts/kts_bak_kts-a-0_2026-12-07_02-30-00.tar.gpg", "--gpg-keyring", "/etc/kts/decryption-key/secret.asc"}},
		{name: "named archive, cleartext", golden: "backup-standalone-cleartext.yaml", lastArchive: "newer.tar", archive: "kts_bak_kts-a-0_2026-12-01_02-30-00.tar",
			wantArgs: []string{"backup", "verify", "/backup/kts_bak_kts-a-0_2026-12-01_02-30-00.tar"}},
		{name: "no last archive", golden: "backup-standalone-cleartext.yaml",
			wantErr: "BackupSchedule nightly has no last archive (status.lastArchive is empty"},
		{name: "encrypted, no key to open it", golden: "backup-passive-configmap-key.yaml", lastArchive: "a.tar.gpg",
			wantErr: "encrypted for backup@example.com, and a restore drill needs the secret key that opens them: give --decryption-key SECRET/KEY, or set spec.verify.decryptionKeyRef"},
		{name: "a path", golden: "backup-standalone-cleartext.yaml", archive: "../etc/passwd", wantErr: `archive "../etc/passwd": give the file name`},
		{name: "a flag", golden: "backup-standalone-cleartext.yaml", archive: "--help", wantErr: `archive "--help"`},
		{name: "dot dot", golden: "backup-standalone-cleartext.yaml", archive: "..", wantErr: `archive ".."`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cj := operatorCronJob(t, tc.golden)
			bs := schedule("nightly", tc.lastArchive)
			job, err := drillJob(bs, cj, tc.archive, tc.key)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || job != nil {
					t.Fatalf("got %v, %v; want the error %q", job, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pod := job.Spec.Template.Spec
			tmpl := cj.Spec.JobTemplate.Spec.Template.Spec
			if len(pod.Containers) != 1 || pod.Containers[0].Name != drillContainer {
				t.Fatalf("containers %+v", pod.Containers)
			}
			c := pod.Containers[0]
			if !slices.Equal(c.Args, tc.wantArgs) || !slices.Equal(c.Command, []string{"kts"}) {
				t.Errorf("command %v %v, want kts %v", c.Command, c.Args, tc.wantArgs)
			}
			volumes, mounts := pod.Volumes, c.VolumeMounts
			if tc.key != nil { // mounted for the drill alone, that key alone
				v, m := volumes[len(volumes)-1], mounts[len(mounts)-1]
				if v.Name != drillKeyVolume || v.Secret == nil || v.Secret.SecretName != tc.key.Name || len(v.Secret.Items) != 1 ||
					v.Secret.Items[0].Key != tc.key.Key || *v.Secret.DefaultMode != 0o440 || m.Name != drillKeyVolume || m.MountPath != mountDrillKey || !m.ReadOnly {
					t.Errorf("the key's volume %+v, mount %+v", v, m)
				}
				volumes, mounts = volumes[:len(volumes)-1], mounts[:len(mounts)-1]
			}
			// The CronJob's pod otherwise: its volumes, mounts, image, user.
			if !equalYAML(t, volumes, tmpl.Volumes) || !equalYAML(t, mounts, tmpl.Containers[0].VolumeMounts) ||
				c.Image != tmpl.Containers[0].Image || !equalYAML(t, pod.SecurityContext, tmpl.SecurityContext) ||
				!equalYAML(t, pod.InitContainers, tmpl.InitContainers) {
				t.Errorf("the drill's pod is not the CronJob's")
			}
			for what, labels := range map[string]map[string]string{"job": job.Labels, "pod": job.Spec.Template.Labels} {
				if _, ok := labels[labelBackup]; ok || labels[labelDrill] != "nightly" || labels[labelComponent] != componentDrill {
					t.Errorf("%s labels %v", what, labels)
				}
			}
			if _, ok := cj.Spec.JobTemplate.Labels[labelBackup]; !ok {
				t.Errorf("the CronJob's own labels were changed")
			}
			o := job.OwnerReferences
			if len(o) != 1 || o[0].Kind != "BackupSchedule" || o[0].UID != bs.UID || (o[0].Controller != nil && *o[0].Controller) {
				t.Errorf("owners %+v", o)
			}
			if *job.Spec.BackoffLimit != 0 || job.Spec.TTLSecondsAfterFinished == nil || job.GenerateName != "nightly-drill-" {
				t.Errorf("job %+v", job.ObjectMeta)
			}
		})
	}
}

func TestTerminationMessage(t *testing.T) {
	pod := func(container string, code int32, msg string) corev1.Pod {
		return corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: container,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: msg}}}}}}
	}
	for _, tc := range []struct {
		name      string
		pods      []corev1.Pod
		succeeded bool
		want      string
	}{
		{"success", []corev1.Pod{pod("backup", 0, "a.tar.gpg\n")}, true, "a.tar.gpg"},
		{"failure after a failed try", []corev1.Pod{pod("backup", 0, "ignored"), pod("backup", 1, "no database")}, false, "no database"},
		{"other container", []corev1.Pod{pod("setup", 0, "x")}, true, ""},
		{"no pods", nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := terminationMessage(tc.pods, "backup", tc.succeeded); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseSecretKey(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want *trusteev1.SecretKeySelector
		err  bool
	}{
		{in: ""},
		{in: "backup-secret-key/secret.asc", want: &trusteev1.SecretKeySelector{Name: "backup-secret-key", Key: "secret.asc"}},
		{in: "backup-secret-key", err: true},
		{in: "/secret.asc", err: true},
		{in: "backup-secret-key/", err: true},
		{in: "Backup_Key/secret.asc", err: true},
		{in: "key/a/b", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSecretKey(tc.in)
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), "give SECRET/KEY") {
					t.Fatalf("got %+v, %v; want an error", got, err)
				}
				return
			}
			if err != nil || (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
