package controllers

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/server/member/contract"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
)

func TestBackupScheduleRunsItsCronJobAndReportsItsJobs(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	bs := fixtures.BackupSchedule("nightly", fixtures.BackupScheduleIn(ns), fixtures.Schedule("30 2 * * *"),
		fixtures.Recipient("backup@example.com", "key", "key.asc"), fixtures.Roll(5), fixtures.Claim("archives"))
	if err := env.Client.Create(ctx, bs); err != nil {
		t.Fatal(err)
	}
	status := func(check func(trusteev1.BackupScheduleStatus) (bool, string)) {
		t.Helper()
		harness.Eventually(t, time.Minute, "backup status", func() (bool, string) {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bs), bs); err != nil {
				return false, err.Error()
			}
			return check(bs.Status)
		})
	}
	condition := func(typ string, want metav1.ConditionStatus, msg string) func(trusteev1.BackupScheduleStatus) (bool, string) {
		return func(st trusteev1.BackupScheduleStatus) (bool, string) {
			c := conditionOf(st.Conditions, typ)
			return c.Status == want && strings.Contains(c.Message, msg), fmt.Sprintf("%s=%s: %s", typ, c.Status, c.Message)
		}
	}
	status(condition(trusteev1.ConditionReady, metav1.ConditionFalse, "KeyTrusteeServer kts does not exist"))

	testCA(t, ctx, ns)
	if err := env.Client.Create(ctx, newServer(ns, "kts")); err != nil {
		t.Fatal(err)
	}
	status(condition(trusteev1.ConditionReady, metav1.ConditionTrue, `on the schedule "30 2 * * *"`))
	status(condition(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionUnknown, "no backup has finished yet"))

	cj := &batchv1.CronJob{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly-backup"}, cj); err != nil {
		t.Fatal(err)
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent || cj.Spec.Schedule != "30 2 * * *" || !metav1.IsControlledBy(cj, bs) {
		t.Fatalf("CronJob: policy %s schedule %q owners %v", cj.Spec.ConcurrencyPolicy, cj.Spec.Schedule, cj.OwnerReferences)
	}
	args := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args
	for _, want := range [][]string{{"--gpg-recipient", "backup@example.com"}, {"--roll", "5"}, {"--output", "/backup"}} {
		if i := slices.Index(args, want[0]); i < 0 || args[i+1] != want[1] {
			t.Errorf("backup args %v lack %v", args, want)
		}
	}

	// The CronJob controller would start Jobs from the template; here the
	// test plays it and the Jobs' pods.
	job := func(name string, at time.Time, ok bool, message string) {
		t.Helper()
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: cj.Spec.JobTemplate.Labels},
			Spec: *cj.Spec.JobTemplate.Spec.DeepCopy()}
		j.Spec.Template.Labels = mergeLabels(j.Spec.Template.Labels, map[string]string{batchv1.JobNameLabel: name, batchv1.ControllerUidLabel: name})
		j.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{batchv1.ControllerUidLabel: name}}
		j.Spec.ManualSelector = ptr.To(true)
		if err := env.Client.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name + "-pod", Namespace: ns, Labels: j.Spec.Template.Labels},
			Spec: *j.Spec.Template.Spec.DeepCopy()}
		if err := env.Client.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		code := int32(0)
		if !ok {
			code = 1
		}
		pod.Status.Phase = corev1.PodSucceeded
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "backup", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message}}}}
		if err := env.Client.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		done := metav1.NewTime(at.Add(time.Minute))
		j.Status.StartTime = &metav1.Time{Time: at}
		if ok {
			j.Status.Succeeded, j.Status.CompletionTime = 1, &done
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: done},
				{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: done}}
		} else {
			j.Status.Failed = 1
			j.Status.Conditions = []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: done, Reason: batchv1.JobReasonBackoffLimitExceeded},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: done, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: "Job has reached the specified backoff limit"}}
		}
		if err := env.Client.Status().Update(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	job("nightly-backup-1", time.Now().Add(-2*time.Hour), true, "kts_bak_kts-b-0_2026-11-27_02-30-00.tar.gpg")
	status(condition(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionTrue, "wrote kts_bak_kts-b-0_2026-11-27_02-30-00.tar.gpg"))
	if bs.Status.LastArchive != "kts_bak_kts-b-0_2026-11-27_02-30-00.tar.gpg" || bs.Status.LastSuccessfulTime == nil {
		t.Errorf("status after a good backup: %+v", bs.Status)
	}

	job("nightly-backup-2", time.Now().Add(-time.Hour), false, "Error: the database does not answer: dial tcp: connection refused")
	status(condition(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionFalse, "the database does not answer"))
	if bs.Status.LastFailureTime == nil || !strings.Contains(bs.Status.LastFailureReason, "nightly-backup-2") ||
		bs.Status.LastArchive != "kts_bak_kts-b-0_2026-11-27_02-30-00.tar.gpg" {
		t.Errorf("status after a failed backup: %+v", bs.Status)
	}

	// With spec.verify the result says what the restore drill found, and a
	// drill that fails is a failed backup, with its own reason.
	drilled := "restore drill: ok, 11 tables and 72 rows restored as they were backed up (1 organizations, 3 clients, 20 deposits)"
	job("nightly-backup-3", time.Now().Add(-50*time.Minute), true, "kts_bak_kts-b-0_2026-11-27_03-30-00.tar.gpg\n"+drilled)
	status(condition(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionTrue, "wrote kts_bak_kts-b-0_2026-11-27_03-30-00.tar.gpg; "+drilled))
	if bs.Status.LastArchive != "kts_bak_kts-b-0_2026-11-27_03-30-00.tar.gpg" || bs.Status.LastVerification != drilled {
		t.Errorf("status after a verified backup: %+v", bs.Status)
	}
	job("nightly-backup-4", time.Now().Add(-40*time.Minute), false,
		"kts_bak_kts-b-0_2026-11-27_04-30-00.tar.gpg: restore drill failed: its database dump does not load: ERROR: syntax error")
	status(func(st trusteev1.BackupScheduleStatus) (bool, string) {
		c := conditionOf(st.Conditions, trusteev1.ConditionLastBackupSucceeded)
		return c.Status == metav1.ConditionFalse && c.Reason == trusteev1.ReasonRestoreDrillFailed && strings.Contains(c.Message, "does not load"), fmt.Sprintf("%+v", c)
	})
	if bs.Status.LastArchive != "kts_bak_kts-b-0_2026-11-27_03-30-00.tar.gpg" {
		t.Errorf("an archive that failed its drill became the last archive: %+v", bs.Status)
	}

	// Suspending reaches the CronJob.
	orig := bs.DeepCopy()
	bs.Spec.Suspend = true
	if err := env.Client.Patch(ctx, bs, client.MergeFrom(orig)); err != nil {
		t.Fatal(err)
	}
	status(condition(trusteev1.ConditionReady, metav1.ConditionTrue, "suspended"))
	harness.Eventually(t, 30*time.Second, "CronJob suspended", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKeyFromObject(cj), cj)
		return err == nil && cj.Spec.Suspend != nil && *cj.Spec.Suspend, fmt.Sprint(err)
	})

	// A switchover: the Jobs back up the member that is now the passive.
	dbHost := func() string {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "nightly-backup"}, cm); err != nil {
			return err.Error()
		}
		var c struct {
			Host string `json:"DB_HOST"`
		}
		json.Unmarshal([]byte(cm.Data[backupConfKey]), &c)
		return c.Host
	}
	if h := dbHost(); !strings.HasPrefix(h, "kts-b-0.") {
		t.Fatalf("the backup reads %s; want the passive kts-b-0", h)
	}
	harness.Eventually(t, time.Minute, "b recorded as the active", func() (bool, string) {
		state := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "kts-state"}, state); err != nil {
			return false, err.Error()
		}
		if state.Data == nil {
			state.Data = map[string][]byte{}
		}
		state.Data[contract.KeyActiveMember] = []byte(memberB)
		err := env.Client.Update(ctx, state)
		return err == nil, fmt.Sprint(err)
	})
	harness.Eventually(t, time.Minute, "the backup reading the new passive", func() (bool, string) {
		h := dbHost()
		return strings.HasPrefix(h, "kts-a-0."), h
	})

}
