package kubeplugin

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var now = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) *metav1.Time { return ptr.To(metav1.NewTime(now.Add(-d))) }

func memberPod(name, node, image string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "postgresql", Image: image}, {Name: serverContainer, Image: image}}}}
}

func TestStatusReport(t *testing.T) {
	rolling := pair("a",
		cond(trusteev1.ConditionReady, metav1.ConditionFalse, trusteev1.ReasonNotStreaming, "the passive is not streaming from the active: writes are refused, reads go on"),
		cond(trusteev1.ConditionDegraded, metav1.ConditionTrue, trusteev1.ReasonNotStreaming, "not ready: [Replicating]; reads are served by both members; writes are refused until the passive is in sync"),
		cond(trusteev1.ConditionReplicating, metav1.ConditionFalse, trusteev1.ReasonNotStreaming, "the passive is not streaming from the active: writes are refused, reads go on"),
		cond(trusteev1.ConditionUpgrading, metav1.ConditionTrue, trusteev1.ReasonWaitingForSync, "the passive kts-b-0 runs the new template; the active restarts once it is in sync"))
	rolling.Generation = 3
	rolling.Status.Fingerprint = "4096R/4EDC46882386C827E20DEEA2D850ACA33BEDB0D1"
	rolling.Status.Endpoints = &trusteev1.ServerEndpoints{ReadWrite: "https://kts-rw.ns.svc:11371", Read: "https://kts-ro.ns.svc:11371"}

	standalone := pair("a", cond(trusteev1.ConditionPassiveReady, metav1.ConditionFalse, trusteev1.ReasonHighAvailabilityDisabled, "high availability is off: the server runs without a passive"),
		cond(trusteev1.ConditionReplicating, metav1.ConditionFalse, trusteev1.ReasonHighAvailabilityDisabled, "high availability is off: nothing replicates"),
		cond(trusteev1.ConditionReady, metav1.ConditionTrue, trusteev1.ReasonReconciled, "the server answers"))
	standalone.Spec.HighAvailability.Enabled = ptr.To(false)
	standalone.Status.Passive = ""

	unreported := pair("a")
	unreported.Status = trusteev1.KeyTrusteeServerStatus{}
	unreported.Generation = 1

	schedules := []trusteev1.BackupSchedule{
		{ObjectMeta: metav1.ObjectMeta{Name: "nightly"}, Status: trusteev1.BackupScheduleStatus{
			LastSuccessfulTime: at(9 * time.Hour), LastArchive: "kts_bak_kts-b-0_2026-12-07_03-00-00.tar.gpg",
			LastVerification: "restore drill: ok, 9 tables and 412 rows restored as they were backed up",
			Conditions:       []metav1.Condition{cond(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionTrue, trusteev1.ReasonBackupSucceeded, "")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "hourly"}, Status: trusteev1.BackupScheduleStatus{
			LastSuccessfulTime: at(26 * time.Hour), LastArchive: "kts_bak_kts-b-0_2026-12-06_10-00-00.tar.gpg",
			LastFailureTime: at(40 * time.Minute), LastFailureReason: "Job hourly-backup-29420 failed: connecting to the database: timeout",
			Conditions: []metav1.Condition{cond(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionFalse, trusteev1.ReasonBackupFailed, "")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "new"}, Status: trusteev1.BackupScheduleStatus{
			Conditions: []metav1.Condition{cond(trusteev1.ConditionLastBackupSucceeded, metav1.ConditionUnknown, trusteev1.ReasonNoBackupYet, "")}}},
	}
	orgs := []trusteev1.Organization{
		{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: trusteev1.OrganizationSpec{OrganizationName: "ACME_Corp"},
			Status: trusteev1.OrganizationStatus{Clients: trusteev1.ClientCounts{Active: 12, Pending: 1, Disabled: 2},
				Conditions: []metav1.Condition{cond(trusteev1.ConditionReady, metav1.ConditionTrue, trusteev1.ReasonSynced, "")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "globex"},
			Status: trusteev1.OrganizationStatus{Conditions: []metav1.Condition{cond(trusteev1.ConditionReady, metav1.ConditionFalse, trusteev1.ReasonServerNotReady, "")}}},
	}

	for _, tc := range []struct {
		golden string
		v      statusView
	}{
		{"rolling.txt", statusView{Server: rolling, Now: now, Schedules: schedules, Orgs: orgs, Pods: map[string]*corev1.Pod{
			"kts-a-0": memberPod("kts-a-0", "node-1", "trustee:1.4.0"), "kts-b-0": memberPod("kts-b-0", "node-2", "trustee:1.5.0")}}},
		{"standalone.txt", statusView{Server: standalone, Now: now, Pods: map[string]*corev1.Pod{"kts-a-0": memberPod("kts-a-0", "", "trustee:1.5.0")}}},
		{"unreported.txt", statusView{Server: unreported, Now: now}},
		{"passive-pod-gone.txt", statusView{Server: pair("b"), Now: now, Pods: map[string]*corev1.Pod{"kts-b-0": memberPod("kts-b-0", "node-3", "trustee:1.5.0")}}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got := statusReport(tc.v)
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update once)", err)
			}
			if got != string(want) {
				t.Errorf("status differs from %s:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
