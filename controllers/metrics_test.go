package controllers

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	trusteev1 "trustee.dev/trustee/api/v1alpha1"
	"trustee.dev/trustee/test/fixtures"
	"trustee.dev/trustee/test/harness"
	"trustee.dev/trustee/test/monitoring"
)

// backupSeries reads trustee_backup_last_success_timestamp_seconds of the
// schedules in ns from the operator's registry, as its /metrics serves
// it: value by schedule, and the label names each series carries.
func backupSeries(t *testing.T, ns string) (map[string]float64, [][]string) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	var labels [][]string
	for _, f := range families {
		if f.GetName() != "trustee_backup_last_success_timestamp_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			var names []string
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
				names = append(names, p.GetName())
			}
			if l["namespace"] == ns {
				values[l["backupschedule"]] = m.GetGauge().GetValue()
				labels = append(labels, names)
			}
		}
	}
	return values, labels
}

// The operator exports, by BackupSchedule, when its last backup succeeded,
// from the schedule's status: nothing before the first success, the time
// once there is one, nothing once the schedule is gone.
func TestBackupLastSuccessMetric(t *testing.T) {
	ctx, ns := testContext(t), env.Namespace(t)
	bs := fixtures.BackupSchedule("nightly", fixtures.BackupScheduleIn(ns), fixtures.Schedule("30 2 * * *"),
		fixtures.Recipient("backup@example.com", "key", "key.asc"), fixtures.Claim("archives"))
	if err := env.Client.Create(ctx, bs); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, time.Minute, "the schedule reconciled", func() (bool, string) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(bs), bs); err != nil {
			return false, err.Error()
		}
		c := conditionOf(bs.Status.Conditions, trusteev1.ConditionReady)
		return c.Reason == trusteev1.ReasonServerNotFound, c.Reason
	})
	if got, _ := backupSeries(t, ns); len(got) != 0 {
		t.Fatalf("before any backup: %v, want no series", got)
	}

	done := metav1.NewTime(time.Date(2026, 11, 30, 2, 31, 7, 0, time.UTC))
	bs.Status.LastSuccessfulTime, bs.Status.LastArchive = &done, "kts-backup-20261130T023000Z.tar.gpg"
	if err := env.Client.Status().Update(ctx, bs); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, "the metric shows the last success", func() (bool, string) {
		got, labels := backupSeries(t, ns)
		if len(labels) == 1 && fmt.Sprint(labels[0]) != "[backupschedule namespace]" {
			t.Fatalf("labels %v, want the schedule's namespace and name only", labels[0])
		}
		return got["nightly"] == float64(done.Unix()), fmt.Sprint(got)
	})

	// Every operator metric the alerts and the dashboard name is one the
	// operator exports.
	used, err := monitoring.UsedMetricNames()
	if err != nil {
		t.Fatal(err)
	}
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	if missing := monitoring.Missing(used, "trustee_", exported); len(missing) > 0 {
		t.Errorf("config/monitoring names operator metrics the operator does not export: %v", missing)
	}

	if err := env.Client.Delete(ctx, bs); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, "the series goes with the schedule", func() (bool, string) {
		got, _ := backupSeries(t, ns)
		return len(got) == 0, fmt.Sprint(got)
	})
}
